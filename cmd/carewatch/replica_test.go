package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/kpi"
)

// kpiExposition is the part of a scrape that the snapshot serves: KPI and
// collector families, without the process's own self-metrics.
func (in *instance) kpiExposition(t *testing.T) string {
	t.Helper()
	_, body := in.scrape(t)
	var out []string
	for line := range strings.SplitSeq(string(body), "\n") {
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if !strings.HasPrefix(name, "carewatch_") || strings.HasPrefix(name, "carewatch_config_") ||
			strings.HasPrefix(name, "carewatch_build_info") || strings.HasPrefix(name, "carewatch_store_up") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// waitForSame waits until the replica serves what the writer serves.
func waitForSame(t *testing.T, what string, writer, replica *instance) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		w, r := writer.kpiExposition(t), replica.kpiExposition(t)
		if w == r {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the replica's metrics differ from the writer's:\n%s\n--- writer\n%s", what, r, w)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A run publishes only what it changed, on the replica that ran it and on
// every other, which reads that run's series only; all of them serve what a
// replica building its snapshot from the whole store serves.
func TestAReplicaServesWhatTheWriterServesAfterEachRun(t *testing.T) {
	c := newCouncil(t)
	file := withoutRunOnStart(t)
	writer := startDaemon(t, file)
	replica := startDaemon(t, file)

	for _, name := range demoCollectors {
		if err := writer.d.runNow(context.Background(), name); err != nil {
			t.Fatalf("run %s: %v", name, err)
		}
		waitForSame(t, "after the first run of "+name, writer, replica)
	}

	// A change in one team: the caseload run revises a few series only.
	if err := demo.AddCases(t.Context(), c.source, "Family Support North", 30); err != nil {
		t.Fatal(err)
	}
	before := writer.kpiExposition(t)
	if err := writer.d.runNow(context.Background(), "caseload"); err != nil {
		t.Fatalf("run caseload: %v", err)
	}
	after := waitForSame(t, "after a run that changed a few series", writer, replica)
	if after == before {
		t.Fatal("the run changed nothing on /metrics; the test proves nothing")
	}

	// Both equal a snapshot built from scratch from the store.
	fresh := startDaemon(t, file)
	if got := fresh.kpiExposition(t); got != after {
		t.Errorf("a replica started now serves other metrics than the ones published run by run:\n%s\n--- published\n%s", got, after)
	}
	if n := strings.Count(writer.logs.String(), "publishing a run"); n != 0 {
		t.Errorf("the writer failed to publish %d runs:\n%s", n, writer.logs.String())
	}
}

func TestThresholdsMovedOnlyWithATrajectoryStepInTheInterval(t *testing.T) {
	step := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	cat := kpi.Catalogue{
		"plain": &kpi.KPI{Name: "plain", Thresholds: kpi.Thresholds{Amber: kpi.At(1)}},
		"plan":  &kpi.KPI{Name: "plan", Overrides: []kpi.Override{{Trajectory: []kpi.Step{{From: step}}}}},
	}
	for _, c := range []struct {
		from, to time.Time
		want     bool
	}{
		{step.Add(-time.Hour), step, true},
		{step.Add(-time.Hour), step.Add(time.Hour), true},
		{step, step.Add(time.Hour), false},
		{step.Add(-2 * time.Hour), step.Add(-time.Hour), false},
	} {
		if got := thresholdsMoved(cat, c.from, c.to); got != c.want {
			t.Errorf("thresholdsMoved(%v, %v) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}
