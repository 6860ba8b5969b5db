package store

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/carewatch/carewatch/kpi"
)

func TestLabelReaderReadsWhatEncodingJSONReads(t *testing.T) {
	k := &kpi.KPI{Name: "k", Labels: []string{"team", "service"}}
	docs := []string{
		`{"team": "north", "service": "children"}`,
		`{"service": "adults", "team": ""}`,
		`{"team": "say \"hi\"", "service": "C:\\temp"}`,
		`{"team": "Ünïcode ✓", "service": "children"}`,
		`{"team":"compact","service":"form"}`,
		`{"team": "north"}`,
		`{"team": "north", "service": "children", "zone": "z"}`,
		`{"team": "north", "team": "south"}`,
		`{"team": "north", "zone": "children"}`,
		`{}`,
	}
	r := newLabelReader()
	// Values are cut from shared slices: every series read keeps its own.
	var kept [][]string
	var keptWant [][]string
	for range labelSlab {
		docs = append(docs, docs[0], docs[2])
	}
	for _, doc := range docs {
		got, ok, err := r.values(k, []byte(doc))
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		want, wantOK := alignLabels(k, m)
		if ok != wantOK || (ok && !slices.Equal(got, want)) {
			t.Errorf("%s: got %q, %v; want %q, %v", doc, got, ok, want, wantOK)
		}
		if ok {
			kept, keptWant = append(kept, got), append(keptWant, want)
		}
	}
	for i := range kept {
		if !slices.Equal(kept[i], keptWant[i]) {
			t.Fatalf("series %d read as %q, now %q", i, keptWant[i], kept[i])
		}
	}
	if _, _, err := r.values(k, []byte(`{"team": 1, "service": "x"}`)); err == nil {
		t.Error("a label value that is not a string was accepted")
	}
}
