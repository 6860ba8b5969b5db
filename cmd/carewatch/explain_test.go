package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

// explain and history read the store alone: a DfE figure is traced to the
// run and the file (with its checksum) that produced it and to the run it
// revised, and its history comes out as CSV a spreadsheet opens as columns.
func TestExplainAndHistoryTraceAStoredValueToItsRunFileAndRevisions(t *testing.T) {
	t.Setenv(demo.StoreDSNEnv, pgtest.NewDatabase(t))
	configFile, workforce := dfeCopy(t)
	logger := slog.New(slog.DiscardHandler)
	var out bytes.Buffer
	if err := runCollect(t.Context(), configFile, "dfe_workforce", false, &out, logger); err != nil {
		t.Fatal(err)
	}
	// DfE revises Croydon's 2025 caseload from 19.1 to 19.4.
	b, err := os.ReadFile(workforce)
	if err != nil {
		t.Fatal(err)
	}
	const croydon2025 = "2025,Reporting year,Local authority,E92000001,England,E13000002,Outer London,306,E09000008,Croydon,"
	i := bytes.Index(b, []byte(croydon2025))
	j := i + bytes.IndexByte(b[i:], '\n')
	line := strings.Replace(string(b[i:j]), ",3448,19.1,", ",3448,19.4,", 1)
	b = append(append(append([]byte{}, b[:i]...), line...), b[j:]...)
	if err := os.WriteFile(workforce, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runCollect(t.Context(), configFile, "dfe_workforce", false, &out, logger); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)

	out.Reset()
	o := provenanceOptions{KPI: "children_sw_dfe_caseload_average", Labels: []string{"la_code=E09000008", "scope=council"}}
	if err := runExplain(t.Context(), configFile, o, &out, logger); err != nil {
		t.Fatalf("explain: %v", err)
	}
	text := out.String()
	for _, want := range []string{
		`children_sw_dfe_caseload_average{la_code="E09000008",la_name="Croydon",scope="council"}`,
		"2025-09-30", "19.4 cases", "red", "amber 15, red 18 (in force for 2025-09-30)",
		"dfe_workforce", "file csww_indicators_2017_to_2025.csv: " + strconv.Itoa(len(b)) + " bytes", "sha256 " + hex.EncodeToString(sum[:]),
		"revisions (1)", "19.1 cases -> 19.4 cases, by run 2 (dfe_workforce) replacing run 1 (dfe_workforce)",
		"status history", "none -> red for 2025-09-30",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("explain does not say %q:\n%s", want, text)
		}
	}

	out.Reset()
	o.Period = "2021-01-15"
	if err := runExplain(t.Context(), configFile, o, &out, logger); err != nil || !strings.Contains(out.String(), "2020-09-30") || !strings.Contains(out.String(), "revisions: none") {
		t.Errorf("explain --period 2021-01-15 (the census of 30 September 2020): %v\n%s", err, out.String())
	}
	if err := runExplain(t.Context(), configFile, provenanceOptions{KPI: "children_sw_dfe_caseload_average"}, &out, logger); err == nil || !strings.Contains(err.Error(), "series of children_sw_dfe_caseload_average match; name one") {
		t.Errorf("explain of a KPI with many series: %v", err)
	}

	out.Reset()
	o = provenanceOptions{KPI: "children_sw_dfe_caseload_average", Labels: []string{"scope=council"}, From: "2019-01-01", Format: "csv"}
	if err := runHistory(t.Context(), configFile, o, &out, logger); err != nil {
		t.Fatalf("history: %v", err)
	}
	if !bytes.HasPrefix(out.Bytes(), []byte("\ufeff")) {
		t.Error("the CSV has no byte-order mark: Excel would misread accented names")
	}
	recs, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(out.String(), "\ufeff"))).ReadAll()
	if err != nil {
		t.Fatalf("the CSV does not parse: %v\n%s", err, out.String())
	}
	header := strings.Join(recs[0], ",")
	if header != "kpi,la_code,la_name,scope,period,value,unit,status,amber,red,benchmark,collected_at,run,collector,revisions" {
		t.Errorf("header %s", header)
	}
	if len(recs) != 1+7 {
		t.Fatalf("%d rows, want Croydon's 2019 to 2025 (7):\n%s", len(recs)-1, out.String())
	}
	last := recs[len(recs)-1]
	if last[1] != "E09000008" || last[4] != "2025-09-30" || last[5] != "19.4" || last[7] != "red" || last[9] != "18" || last[10] != "false" || last[14] != "1" {
		t.Errorf("the 2025 row: %q", last)
	}
	for _, r := range recs[1:] {
		if _, err := strconv.ParseFloat(r[5], 64); err != nil && r[5] != "" {
			t.Errorf("value %q is not a plain number", r[5])
		}
	}

	out.Reset()
	o.Format, o.Labels = "json", []string{"la_code=E92000001"}
	if err := runHistory(t.Context(), configFile, o, &out, logger); err != nil {
		t.Fatal(err)
	}
	var rows []historyRecord
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || len(rows) != 7 || !rows[0].Benchmark || rows[0].Labels["scope"] != "england" {
		t.Errorf("history as JSON: %v %+v", err, rows)
	}
}
