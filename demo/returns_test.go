package demo_test

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/xuri/excelize/v2"

	"github.com/carewatch/carewatch/demo"
)

func buildReturns(t *testing.T, db *sqlx.DB) *demo.Returns {
	t.Helper()
	r, err := demo.BuildReturns(context.Background(), db)
	if err != nil {
		t.Fatalf("BuildReturns: %v", err)
	}
	return r
}

func TestReturnsAreDeterministicAndTellTheSameStoryLater(t *testing.T) {
	db := setUp(t, 7)
	first := buildReturns(t, db)
	if again := buildReturns(t, db); !reflect.DeepEqual(first, again) {
		t.Fatal("two builds of the same council's returns differ")
	}
	advance(t, db, 10)
	later := buildReturns(t, db)
	if !later.AsAt.Equal(first.AsAt.AddDate(0, 0, 10)) {
		t.Fatalf("later returns as at %v", later.AsAt)
	}
	// Every episode that had ended by the first date is still there, the same.
	ended := map[string]demo.Episode{}
	for _, e := range later.SSDA903.Episodes {
		ended[e.Child+e.Start.String()] = e
	}
	stillIn := map[string]bool{}
	for _, h := range later.SSDA903.Header {
		stillIn[h.Child] = true
	}
	n := 0
	for _, e := range first.SSDA903.Episodes {
		if e.End.IsZero() || !stillIn[e.Child] {
			continue
		}
		n++
		if got, ok := ended[e.Child+e.Start.String()]; !ok || got != e {
			t.Errorf("episode %+v became %+v", e, got)
		}
	}
	if n == 0 {
		t.Error("no ended episode to compare")
	}
	for _, c := range first.CPPlans {
		if !c.End.IsZero() {
			continue
		}
		if ch, ok := later.Children[c.Child]; !ok || ch != first.Children[c.Child] {
			t.Errorf("child %s changed from %+v to %+v", c.Child, first.Children[c.Child], ch)
		}
	}
}

func TestReturnsAreWellFormedAndSynthetic(t *testing.T) {
	db := setUp(t, 2026)
	r := buildReturns(t, db)
	t.Logf("as at %s: %d contacts, %d referrals, %d assessments, %d S47s, %d CIN, %d CP plans, %d looked after; 903: %d children, %d episodes; CLD: %d rows",
		r.AsAt.Format(time.DateOnly), len(r.Contacts), len(r.Referrals), len(r.Assessments), len(r.S47s), len(r.CINs), len(r.CPPlans),
		len(r.Looked), len(r.SSDA903.Header), len(r.SSDA903.Episodes), len(r.CLD))

	t.Run("episodes chain as the return requires", func(t *testing.T) {
		by := map[string][]demo.Episode{}
		for _, e := range r.SSDA903.Episodes {
			by[e.Child] = append(by[e.Child], e)
		}
		if len(by) != len(r.SSDA903.Header) {
			t.Errorf("%d children with episodes, %d in the header", len(by), len(r.SSDA903.Header))
		}
		for child, es := range by {
			if es[0].RNE != "S" {
				t.Errorf("%s: first episode starts with RNE %s, not S", child, es[0].RNE)
			}
			for i, e := range es {
				last := i == len(es)-1
				if !e.End.IsZero() && !e.End.After(e.Start) {
					t.Errorf("%s: episode %+v does not end after it starts", child, e)
				}
				if !last && (!e.End.Equal(es[i+1].Start) || e.REC != "X1") {
					t.Errorf("%s: episode %d ends %v (%s), the next starts %v", child, i, e.End, e.REC, es[i+1].Start)
				}
				if last && !e.End.IsZero() && (e.REC == "X1" || e.REC == "") {
					t.Errorf("%s: the period ended with REC %q", child, e.REC)
				}
				if last && e.End.IsZero() && e.REC != "" {
					t.Errorf("%s: an open episode has REC %q", child, e.REC)
				}
				if e.Start.After(r.AsAt) || e.End.After(r.AsAt) {
					t.Errorf("%s: episode %+v after the reporting date", child, e)
				}
				if e.Place == "K3" {
					dob := r.Children[child].DOB
					if e.Start.Before(dob.AddDate(16, 0, 0)) {
						t.Errorf("%s: supported accommodation before 16 (born %v, placed %v)", child, dob, e.Start)
					}
				}
				if !e.Start.Before(r.Children[child].DOB.AddDate(18, 0, 0)) {
					t.Errorf("%s: looked after at 18 or over", child)
				}
			}
		}
	})

	t.Run("identifiers are synthetic", func(t *testing.T) {
		for id, c := range r.Children {
			if !strings.HasPrefix(id, "DEMO-") || !strings.HasPrefix(c.UPN, "X999") || len(c.UPN) != 13 {
				t.Fatalf("child %q, UPN %q", id, c.UPN)
			}
		}
		for _, e := range r.SSDA903.Episodes {
			if !strings.HasPrefix(e.Postcode, "QX") || !strings.HasPrefix(e.HomePostcode, "QX") {
				t.Fatalf("postcodes %q %q", e.Postcode, e.HomePostcode)
			}
		}
		for _, e := range r.CLD {
			if !strings.HasPrefix(e.Person, "DEMO-A") {
				t.Fatalf("adult %q", e.Person)
			}
		}
	})

	t.Run("the same people as the case-management database", func(t *testing.T) {
		from := demo.AnnexAFrom(r.AsAt)
		var referrals, cla, cp int
		if err := db.Get(&referrals, `SELECT count(*) FROM cms.child_assessment WHERE referral_date BETWEEN $1 AND $2`, from, r.AsAt); err != nil {
			t.Fatal(err)
		}
		if len(r.Referrals) != referrals || len(r.Assessments) != referrals {
			t.Errorf("Annex A has %d referrals and %d assessments; the database %d referrals in its six months", len(r.Referrals), len(r.Assessments), referrals)
		}
		// Annex A's assessments are the database's: the same share within
		// 45 working days, counted from the database's own rows.
		var done []struct {
			Referral  time.Time `db:"referral_date"`
			Completed time.Time `db:"completed_date"`
		}
		if err := db.Select(&done, `SELECT referral_date, completed_date FROM cms.child_assessment
			WHERE referral_date BETWEEN $1 AND $2 AND completed_date <= $2`, from, r.AsAt); err != nil {
			t.Fatal(err)
		}
		within := 0
		for _, a := range done {
			if demo.WorkingDays(a.Referral, a.Completed) <= 45 {
				within++
			}
		}
		if got := demo.AssessmentsWithin45WDRatio(r.Assessments); len(done) == 0 || got.V != float64(within)/float64(len(done)) {
			t.Errorf("Annex A's assessments within 45 working days %v; the database's %d of %d", got, within, len(done))
		}
		if err := db.Get(&cla, `SELECT count(*) FROM cms.child_case, cms.reporting_date
			WHERE case_type = 'cla' AND opened <= today AND (closed IS NULL OR closed > today)`); err != nil {
			t.Fatal(err)
		}
		open := 0
		for _, e := range r.SSDA903.Episodes {
			if e.End.IsZero() {
				open++
			}
		}
		if open != cla {
			t.Errorf("%d open episodes in the 903, %d looked-after cases open in the database", open, cla)
		}
		if err := db.Get(&cp, `SELECT count(*) FROM cms.child_case, cms.reporting_date
			WHERE case_type = 'cp' AND opened <= today AND (closed IS NULL OR closed > today)`); err != nil {
			t.Fatal(err)
		}
		openPlans := 0
		for _, p := range r.CPPlans {
			if p.End.IsZero() {
				openPlans++
			}
		}
		if openPlans != cp {
			t.Errorf("%d open plans in Annex A, %d child protection cases open in the database", openPlans, cp)
		}
		// The CLD waits are the database's requests and assessments.
		sub := demo.LatestCLDSubmission(r.CLD)
		var waits []int
		if err := db.Select(&waits, `SELECT assessed - requested FROM cms.adult_assessment_request WHERE assessed IS NOT NULL
			AND request_id = ANY($1::int[])`, assessedRequestIDs(sub)); err != nil {
			t.Fatal(err)
		}
		if len(waits) == 0 {
			t.Fatal("no assessment in the latest CLD submission")
		}
		sort.Ints(waits)
		mid := float64(waits[(len(waits)-1)/2]+waits[len(waits)/2]) / 2
		if median, _ := demo.RequestToAssessment(r.CLD); median.V != mid*86400 {
			t.Errorf("CLD median wait %v s, the database's %v days", median, mid)
		}
	})

	t.Run("figures are there and plausible", func(t *testing.T) {
		f := r.Figures()
		ranges := map[string][2]float64{
			"children_rereferral_12m_ratio":                 {0.08, 0.35},
			"children_annex_a_assessment_within_45wd_ratio": {0.7, 0.98},
			"children_icpc_within_15wd_ratio":               {0.6, 0.98},
			"children_cp_plan_repeat_ratio":                 {0.1, 0.4},
			"children_cp_plan_ended_2y_plus_ratio":          {0.005, 0.2},
			"children_cla_3plus_placements_ratio":           {0.02, 0.25},
			"children_cla_long_term_stability_ratio":        {0.3, 0.95},
			"adults_ascof_2e_home_or_family_ratio":          {0.6, 0.95},
			"adults_ascof_3d_self_directed_ratio":           {0.5, 0.9},
			"adults_ascof_3d_direct_payments_ratio":         {0.15, 0.45},
			"adults_ascof_2b_admissions_per_100k":           {0.5, 60},
			"adults_ascof_2c_admissions_per_100k":           {50, 1500},
			"adults_request_to_assessment_median_seconds":   {2 * 86400, 60 * 86400},
			"adults_request_to_assessment_over_28d_ratio":   {0.1, 0.7},
		}
		for name, rg := range ranges {
			found := false
			for k, v := range f {
				if k.KPI != name || (strings.Contains(k.Labels, "team=") && !strings.Contains(k.Labels, "team=all")) {
					continue
				}
				found = true
				if !v.Valid || v.V < rg[0] || v.V > rg[1] {
					t.Errorf("%s = %v, want within %v", k, v, rg)
				} else {
					t.Logf("%s = %.4g", k, v.V)
				}
			}
			if !found {
				t.Errorf("no series of %s", name)
			}
		}
	})

	t.Run("written as councils' files are", func(t *testing.T) {
		dir := t.TempDir()
		if err := demo.WriteReturns(r, dir); err != nil {
			t.Fatal(err)
		}
		wb, err := excelize.OpenFile(filepath.Join(dir, demo.AnnexADir, demo.AnnexAFile))
		if err != nil {
			t.Fatal(err)
		}
		defer wb.Close()
		var want []string
		for i := 1; i <= 11; i++ {
			want = append(want, "List "+strconv.Itoa(i))
		}
		if got := wb.GetSheetList(); !slices.Equal(got, want) {
			t.Errorf("sheets %v", got)
		}
		// List 4's dates are date cells, List 5's dd/mm/yyyy text.
		typ, _ := wb.GetCellType("List 4", "G2")
		raw, _ := wb.GetCellValue("List 4", "G2", excelize.Options{RawCellValue: true})
		if typ == excelize.CellTypeSharedString || typ == excelize.CellTypeInlineString || strings.Contains(raw, "/") {
			t.Errorf("List 4 G2 is %v %q, want a date cell", typ, raw)
		}
		text, _ := wb.GetCellValue("List 5", "G2", excelize.Options{RawCellValue: true})
		if _, err := time.Parse("02/01/2006", text); err != nil {
			t.Errorf("List 5 G2 = %q, want dd/mm/yyyy text", text)
		}
		for _, f := range demo.SSDA903Files {
			rows := readCSV(t, filepath.Join(dir, demo.SSDA903Dir, f.Name))
			if got := strings.Join(rows[0], ","); got != f.Columns {
				t.Errorf("%s header %q", f.Name, got)
			}
			if len(rows) < 2 {
				t.Errorf("%s has no rows", f.Name)
			}
		}
		cldRows := readCSV(t, filepath.Join(dir, demo.CLDDir, demo.CLDFile))
		if len(cldRows)-1 != len(r.CLD) || len(demo.LatestCLDSubmission(r.CLD)) >= len(r.CLD) {
			t.Errorf("CLD file has %d rows for %d events", len(cldRows)-1, len(r.CLD))
		}
		for _, sub := range []string{demo.AnnexADir, demo.SSDA903Dir, demo.CLDDir} {
			entries, _ := os.ReadDir(filepath.Join(dir, sub))
			for _, e := range entries {
				info, _ := e.Info()
				t.Logf("%s/%s: %d bytes", sub, e.Name(), info.Size())
			}
		}
	})
}

func assessedRequestIDs(sub []demo.CLDEvent) string {
	var ids []string
	for _, e := range sub {
		if e.EventType == "Assessment" {
			ids = append(ids, strings.TrimLeft(strings.TrimPrefix(e.EventRef, "AS"), "0"))
		}
	}
	return "{" + strings.Join(ids, ",") + "}"
}

func readCSV(t *testing.T, name string) [][]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return rows
}
