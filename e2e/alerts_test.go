package e2e_test

import (
	"encoding/json"
	"fmt"
	"html"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the store and the demo source
	"github.com/prometheus/common/model"

	"github.com/carewatch/carewatch/demo"
	"github.com/carewatch/carewatch/e2e"
	"github.com/carewatch/carewatch/pglocal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	caseloadKPI = "children_sw_caseload_average"
	// caseloadTitle is how alerts name it: its help text in the demo's
	// catalogue, up to the first bracket.
	caseloadTitle = "Average caseload per case-holding FTE children's social worker"
	// pushedTeam is the team the test pushes over its red threshold (22,
	// amber 18) through the demo's own data; it opens green.
	pushedTeam = "Family Support North"
	// staleKPI is given a max_age of one second: its data, which describes
	// today, is stale at once, while every other KPI (36h) stays fresh.
	staleKPI = "adults_assessment_waiting_people"
	// grafanaURL is the test Prometheus' grafana_url external label.
	grafanaURL = "http://grafana.test"
)

// How long each step may take. The collectors run every 2s, Prometheus
// scrapes and evaluates every second, the rules' `for`s are a few seconds
// and Alertmanager groups for a second, so each is reached in well under
// these bounds.
const (
	notificationWithin = 60 * time.Second
	readyWithin        = 60 * time.Second
)

// The test copy of the shipped rules: the same expressions, labels and
// text, with `for`s a test can wait for. Amber waits longer than red, so
// that the red alert is in Alertmanager before the amber alert of the same
// series fires and is inhibited. Rules not listed keep their `for`
// (CarewatchDown's 5m keeps the restart below quiet).
var testFors = map[string]time.Duration{
	"CarewatchKPIRed":           2 * time.Second,
	"CarewatchKPIAmber":         15 * time.Second,
	"CarewatchCollectorFailing": 2 * time.Second,
}

// The whole alert path with the real programs: the demo council's data →
// carewatch (subprocess) → PostgreSQL → /metrics → Prometheus with the
// shipped rules → Alertmanager with the shipped routing and inhibition →
// a webhook receiver, an SMTP server and, through carewatch-teams, a Teams
// webhook. A team pushed over its red threshold through the demo's own
// data is alerted with the right labels and words, and resolved when it
// comes back; red silences that series' amber; stale data and a broken
// source are alerted; the store keeps both status changes with their
// values and thresholds, and a restart does not record them again. This
// runs Debian's Prometheus and Alertmanager.
func TestABreachInTheDemoDataIsAlertedAndResolvedThroughPrometheusAndAlertmanager(t *testing.T) {
	alertPath(t, "", "")
}

// The same alert path on the Prometheus and Alertmanager releases the
// Compose stack ships, built from their Go modules.
func TestABreachIsAlertedAndResolvedOnTheReleasesComposeShips(t *testing.T) {
	alertPath(t, e2e.ComposePrometheus(t).Command("prometheus"), e2e.ComposeAlertmanager(t).Command("alertmanager"))
}

// alertPath runs the alert path with the prometheus and alertmanager
// binaries given, Debian's where one is empty.
func alertPath(t *testing.T, prometheus, alertmanager string) {
	root := e2e.RepoRoot(t)
	storeDSN, sourceDSN := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	source, store := sqlx.MustOpen("postgres", sourceDSN), sqlx.MustOpen("postgres", storeDSN)
	t.Cleanup(func() { source.Close(); store.Close() })
	// The demo's clock stays still (nothing calls demo.Advance): the data
	// describe today, so only staleKPI, with its tiny max_age, is stale.
	if err := demo.Setup(t.Context(), source, demo.Options{Seed: 7}); err != nil {
		t.Fatalf("demo.Setup: %v", err)
	}

	// The sinks that stand in for the council's people.
	hook := e2e.StartWebhook(t)
	smtp := e2e.StartSMTPSink(t)
	teamsHook := e2e.StartWebhook(t)
	relay := e2e.StartTeamsRelay(t, map[string]string{
		"children":  teamsHook.URL + "/teams/children",
		"adults":    teamsHook.URL + "/teams/adults",
		"operators": teamsHook.URL + "/teams/operators",
	})
	am := e2e.StartAlertmanagerBinary(t, alertmanager, e2e.AlertmanagerTestConfig(t, filepath.Join(root, "deploy", "alertmanager", "alertmanager.yml"),
		e2e.AlertmanagerTestOptions{Webhook: hook.URL + "/alerts", SMTP: smtp.Addr, TeamsRelay: relay.Addr, Group: time.Second}))

	// The DfE files are read from a copy, which the test cuts short.
	dfeDir := t.TempDir()
	dfeFiles, err := filepath.Glob(filepath.Join(root, "examples", "dfe", "data", "*.csv"))
	if err != nil || len(dfeFiles) == 0 {
		t.Fatalf("no DfE files: %v", err)
	}
	for _, f := range dfeFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dfeDir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cw := e2e.StartCarewatch(t, e2e.CarewatchOptions{
		ConfigFile: e2e.DemoConfig(t, e2e.DemoConfigOptions{
			Every: 2 * time.Second, NoRetries: true, MaxAge: map[string]time.Duration{staleKPI: time.Second},
			Directories: map[string]string{"dfe": dfeDir},
		}),
		Env: []string{e2e.StoreDSNEnv + "=" + storeDSN, e2e.SourceDSNEnv + "=" + sourceDSN},
	})
	prom := e2e.StartPrometheus(t, e2e.PrometheusOptions{
		Binary:         prometheus,
		Targets:        []string{cw.Addr},
		RuleFiles:      []string{e2e.RulesWithFor(t, filepath.Join(root, "deploy", "prometheus", "rules", "carewatch.rules.yml"), testFors)},
		Alertmanager:   am.Addr,
		Interval:       time.Second,
		ExternalLabels: map[string]string{"grafana_url": grafanaURL},
	})

	prom.WaitForVector(t, pushedTeam+" green in Prometheus",
		fmt.Sprintf(`carewatch_kpi_status{kpi=%q,service="children",team=%q}`, caseloadKPI, pushedTeam),
		readyWithin, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 0 })
	before := expected(t, source)
	if before >= 18 {
		t.Fatalf("%s opens with a caseload of %v, not green: pick another team", pushedTeam, before)
	}
	checkStatuses(t, prom)

	// The breach, through the demo's own data: cases added to the team
	// until an independent computation over the source says red.
	added, value := pushRed(t, source)
	t.Logf("%s: caseload %.4g → %.4g after %d cases added", pushedTeam, before, value, added)

	isPushedRed := func(status string) func(e2e.Notification, e2e.Alert) bool {
		return func(n e2e.Notification, a e2e.Alert) bool {
			return a.Status == status && a.Labels["alertname"] == "CarewatchKPIRed" && a.Labels["kpi"] == caseloadKPI && a.Labels["team"] == pushedTeam
		}
	}
	// Routing by service and severity: by email, and to the service's
	// Teams channel (at all hours in this test).
	inReceiver := func(receiver string, p func(e2e.Notification, e2e.Alert) bool) func(e2e.Notification, e2e.Alert) bool {
		return func(n e2e.Notification, a e2e.Alert) bool { return n.Receiver == receiver && p(n, a) }
	}
	_, red := hook.WaitForAlert(t, "the red alert for "+pushedTeam+" to children-critical", notificationWithin, inReceiver("children-critical", isPushedRed("firing")))
	hook.WaitForAlert(t, "the red alert for "+pushedTeam+" to children-teams", notificationWithin, inReceiver("children-teams", isPushedRed("firing")))
	for k, want := range map[string]string{
		"alertname": "CarewatchKPIRed", "severity": "critical", "service": "children", "team": pushedTeam,
		"kpi": caseloadKPI, "job": "carewatch", "series": fmt.Sprintf(`service="children",team=%q`, pushedTeam),
	} {
		if got := red.Labels[k]; got != want {
			t.Errorf("red alert label %s = %q, want %q", k, got, want)
		}
	}
	summary := fmt.Sprintf("%s is red for %s in children's services", caseloadTitle, pushedTeam)
	wantText := fmt.Sprintf("%s for team %s in children's services is %.4g cases, above its red threshold of 22 cases. Red since ", caseloadTitle, pushedTeam, value)
	if red.Annotations["summary"] != summary {
		t.Errorf("summary %q, want %q", red.Annotations["summary"], summary)
	}
	if d := red.Annotations["description"]; !strings.HasPrefix(d, wantText) || !strings.Contains(d, "The value describes ") {
		t.Errorf("description %q, want it to start %q and say the period", d, wantText)
	}
	// The KPI detail dashboard on the series, over 30 days: twenty times
	// the daily KPI's max_age of 36 hours.
	wantLink := grafanaURL + "/d/carewatch-kpi?var-kpi=" + caseloadKPI + "&var-service=children&var-team=" + url.QueryEscape(pushedTeam) + "&from=now-30d&to=now"
	if got := red.Annotations["dashboard"]; got != wantLink {
		t.Errorf("dashboard link %q, want %q", got, wantLink)
	}

	// The same words by email and, through carewatch-teams, in Teams.
	mail := smtp.WaitFor(t, "the red alert by email", notificationWithin, func(e e2e.Email) bool {
		return strings.Contains(e.Text, summary) && strings.HasPrefix(e.Subject, "[FIRING")
	})
	if !slices.Contains(mail.To, "children-performance@council.example") {
		t.Errorf("the email went to %v", mail.To)
	}
	for _, want := range []string{wantText, "Firing since ", "Dashboard: " + wantLink} {
		if !strings.Contains(mail.Text, want) {
			t.Errorf("the email's text does not say %q:\n%s", want, mail.Text)
		}
	}
	if !strings.Contains(html.UnescapeString(mail.HTML), `<a href="`+wantLink+`">`) {
		t.Errorf("the email's HTML does not link to the dashboard:\n%s", mail.HTML)
	}
	teamsHook.WaitForPost(t, "the red alert in the children's Teams channel", notificationWithin, func(p e2e.Post) bool {
		return p.Path == "/teams/children" && cardSays(t, p.Body, summary) && cardSays(t, p.Body, wantText)
	})

	// Red silences amber for the same series: the amber alert ("amber or
	// worse") fires in Prometheus and Alertmanager holds it inhibited.
	e2e.Eventually(t, "the amber alert for "+pushedTeam+" inhibited by its red alert", notificationWithin, func() (bool, string) {
		as := am.Alerts(t, `alertname="CarewatchKPIAmber"`, fmt.Sprintf(`team=%q`, pushedTeam), `kpi="`+caseloadKPI+`"`)
		return len(as) == 1 && as[0].Status.State == "suppressed" && len(as[0].Status.InhibitedBy) > 0, fmt.Sprintf("%+v", as)
	})
	// Other series' ambers do reach their service, as warnings.
	n, amber := hook.WaitForAlert(t, "an amber alert of another series", notificationWithin, func(n e2e.Notification, a e2e.Alert) bool {
		return a.Status == "firing" && a.Labels["alertname"] == "CarewatchKPIAmber"
	})
	if n.Receiver != "children-warning" && n.Receiver != "adults-warning" || amber.Labels["severity"] != "warning" {
		t.Errorf("an amber alert went to %q with severity %q, want a service's warning receiver", n.Receiver, amber.Labels["severity"])
	}

	// Benchmarks are rated but never alerted: DfE's statistical
	// neighbours, region and England are red and amber in Prometheus, while
	// no KPI alert, pending or firing, names one of them.
	benchmarksRated := prom.Vector(t, `carewatch_kpi_status >= 1 and carewatch_kpi_benchmark`)
	if len(benchmarksRated) == 0 {
		t.Error("no benchmark series is amber or red in Prometheus: the check below would prove nothing")
	}
	for _, s := range prom.Vector(t, `ALERTS{alertname=~"CarewatchKPI.*"} and on (kpi, la_code, la_name, scope) carewatch_kpi_benchmark`) {
		t.Errorf("a KPI alert for a benchmark series: %v", s.Metric)
	}
	for _, n := range hook.Notifications(t) {
		for _, a := range n.Alerts {
			if scope := a.Labels["scope"]; scope != "" && scope != "council" {
				t.Errorf("%s was notified for the benchmark series %v", a.Labels["alertname"], a.Labels)
			}
		}
	}
	// The council's own DfE series alerts like any other.
	hook.WaitForAlert(t, "a KPI alert for the council's own DfE series", notificationWithin, func(_ e2e.Notification, a e2e.Alert) bool {
		return a.Status == "firing" && strings.HasPrefix(a.Labels["alertname"], "CarewatchKPI") && a.Labels["scope"] == "council"
	})

	// A DfE file cut inside its last row is refused by the truncation
	// check: the quality alert fires, and the last good values stay served.
	workforce := filepath.Join(dfeDir, "csww_indicators_2017_to_2025.csv")
	whole, err := os.ReadFile(workforce)
	if err != nil {
		t.Fatal(err)
	}
	croydon := `carewatch_children_sw_dfe_caseload_average{la_code="E09000008",scope="council"}`
	servedBefore := prom.Vector(t, croydon)
	if err := os.WriteFile(workforce, whole[:len(whole)-2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, quality := hook.WaitForAlert(t, "the data-quality alert for the cut DfE file", notificationWithin, func(_ e2e.Notification, a e2e.Alert) bool {
		return a.Status == "firing" && a.Labels["alertname"] == "CarewatchCollectorCheckFailed" && a.Labels["collector"] == "dfe_workforce"
	})
	if quality.Labels["check"] != "truncation" || quality.Labels["action"] != "reject" ||
		!strings.Contains(quality.Annotations["description"], "keep their last good values") {
		t.Errorf("data-quality alert %v %v", quality.Labels, quality.Annotations)
	}
	if servedAfter := prom.Vector(t, croydon); len(servedBefore) != 1 || len(servedAfter) != 1 || servedAfter[0].Value != servedBefore[0].Value {
		t.Errorf("Croydon's caseload served %v before the cut file and %v after", servedBefore, servedAfter)
	}
	if err := os.WriteFile(workforce, whole, 0o644); err != nil {
		t.Fatal(err)
	}

	// Stale data goes to the operators and to the service.
	for _, receiver := range []string{"carewatch-operators", "adults-warning"} {
		_, stale := hook.WaitForAlert(t, "the stale alert to "+receiver, notificationWithin, func(n e2e.Notification, a e2e.Alert) bool {
			return n.Receiver == receiver && a.Status == "firing" && a.Labels["alertname"] == "CarewatchKPIStale" && a.Labels["kpi"] == staleKPI
		})
		if stale.Labels["service"] != "adults" || stale.Labels["severity"] != "warning" {
			t.Errorf("stale alert labels %v", stale.Labels)
		}
		if d := stale.Annotations["description"]; !strings.Contains(d, "this KPI's data is stale after 1s") {
			t.Errorf("stale alert description %q", d)
		}
	}
	for _, s := range prom.Vector(t, `ALERTS{alertname="CarewatchKPIStale"}`) {
		if k := string(s.Metric["kpi"]); k != staleKPI {
			t.Errorf("KPI %s is alerted stale; only %s should be", k, staleKPI)
		}
	}

	// The value comes back: the resolved notification arrives, everywhere.
	if err := demo.CloseCases(t.Context(), source, pushedTeam, added); err != nil {
		t.Fatalf("demo.CloseCases: %v", err)
	}
	after := expected(t, source)
	hook.WaitForAlert(t, "the red alert for "+pushedTeam+" resolved", notificationWithin, inReceiver("children-critical", isPushedRed("resolved")))
	smtp.WaitFor(t, "the resolved red alert by email", notificationWithin, func(e e2e.Email) bool {
		_, resolved, ok := strings.Cut(e.Text, "Resolved:")
		return ok && strings.Contains(resolved, summary)
	})
	teamsHook.WaitForPost(t, "the resolved red alert in Teams", notificationWithin, func(p e2e.Post) bool {
		return p.Path == "/teams/children" && cardSays(t, p.Body, "Resolved: "+summary)
	})
	// The inhibited amber alert was never sent firing. Its resolution may
	// be listed in the next message of the service's amber alerts (once its
	// red alert has resolved, nothing inhibits it), and then it says red.
	for _, n := range hook.Notifications(t) {
		for _, a := range n.Alerts {
			if a.Labels["alertname"] != "CarewatchKPIAmber" || a.Labels["team"] != pushedTeam || a.Labels["kpi"] != caseloadKPI {
				continue
			}
			if a.Status == "firing" {
				t.Errorf("amber for %s was notified firing to %s while its red alert fired", pushedTeam, n.Receiver)
			} else if a.Annotations["summary"] != summary {
				t.Errorf("the resolved amber alert for %s says %q, want %q", pushedTeam, a.Annotations["summary"], summary)
			}
		}
	}

	// A source breaks: the collector that reads it fails, and says so.
	if _, err := source.ExecContext(t.Context(), `ALTER TABLE cms.adult_assessment_request RENAME TO adult_assessment_request_gone`); err != nil {
		t.Fatal(err)
	}
	_, failing := hook.WaitForAlert(t, "the collector-failing alert", notificationWithin, inReceiver("carewatch-operators", func(n e2e.Notification, a e2e.Alert) bool {
		return a.Status == "firing" && a.Labels["alertname"] == "CarewatchCollectorFailing" && a.Labels["collector"] == "adults_waiting"
	}))
	if failing.Labels["severity"] != "warning" {
		t.Errorf("collector-failing alert labels %v", failing.Labels)
	}
	if d := failing.Annotations["description"]; !strings.Contains(d, "The latest run of collector adults_waiting failed; its last successful run finished at ") {
		t.Errorf("collector-failing description %q", d)
	}

	// PostgreSQL has both status changes, with values and thresholds.
	events := statusEvents(t, store)
	checkBreachAndRecovery(t, events, value, after)

	// A restart collects again (the same data) and records nothing new.
	total := countEvents(t, store)
	cw.Stop(t)
	restarted := time.Now()
	cw = e2e.StartCarewatch(t, cw.Options)
	e2e.Eventually(t, "the working collectors to run after the restart", readyWithin, func() (bool, string) {
		ran := e2e.CollectorGauge(cw.Metrics(t), "carewatch_collector_last_run_timestamp_seconds")
		for _, c := range []string{"caseload", "workforce", "children_assessments"} {
			if ran[c] < float64(restarted.Unix()) {
				return false, fmt.Sprintf("last runs %v", ran)
			}
		}
		return true, ""
	})
	if got := countEvents(t, store); got != total {
		t.Errorf("%d status events after the restart, %d before: the restart recorded status changes again\n%v", got, total, statusEvents(t, store))
	}
}

// expected is the pushed team's caseload as demo.Expected computes it from
// the source, independently of the collector's SQL.
func expected(t *testing.T, source *sqlx.DB) float64 {
	t.Helper()
	fig, err := demo.Expected(t.Context(), source)
	if err != nil {
		t.Fatalf("demo.Expected: %v", err)
	}
	v, ok := fig[demo.SeriesKey(caseloadKPI, map[string]string{"service": "children", "team": pushedTeam})]
	if !ok || !v.Valid {
		t.Fatalf("the demo has no caseload for %s", pushedTeam)
	}
	return v.V
}

// pushRed adds cases to the pushed team until its caseload is over the red
// threshold (22), in steps sized from the caseload's response to the first
// step; it returns the cases added and the caseload reached.
func pushRed(t *testing.T, source *sqlx.DB) (added int, value float64) {
	t.Helper()
	value = expected(t, source)
	perCase := 0.0
	for value <= 22 {
		step := 10
		if perCase > 0 {
			step = max(1, int(math.Ceil((22.5-value)/perCase)))
		}
		if err := demo.AddCases(t.Context(), source, pushedTeam, step); err != nil {
			t.Fatalf("demo.AddCases: %v", err)
		}
		next := expected(t, source)
		if perCase == 0 {
			perCase = (next - value) / float64(step)
		}
		added, value = added+step, next
		if added > 1000 {
			t.Fatalf("%d cases added and the caseload is only %v", added, value)
		}
	}
	return added, value
}

// cardSays reports whether a Teams card's text runs include s.
func cardSays(t *testing.T, body []byte, s string) bool {
	t.Helper()
	var card any
	if err := json.Unmarshal(body, &card); err != nil {
		t.Errorf("a Teams post is not JSON: %v", err)
		return false
	}
	found := false
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if text, ok := x["text"].(string); ok && strings.Contains(text, s) {
				found = true
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(card)
	return found
}

// event is a status change of the pushed team's caseload series.
type event struct {
	ID         int64    `db:"id"`
	FromStatus *string  `db:"from_status"`
	ToStatus   string   `db:"to_status"`
	Value      *float64 `db:"value"`
	Amber      *float64 `db:"amber"`
	Red        *float64 `db:"red"`
}

func (e event) String() string {
	f := func(p *float64) string {
		if p == nil {
			return "NULL"
		}
		return fmt.Sprint(*p)
	}
	from := "NULL"
	if e.FromStatus != nil {
		from = *e.FromStatus
	}
	return fmt.Sprintf("#%d %s→%s value %s amber %s red %s", e.ID, from, e.ToStatus, f(e.Value), f(e.Amber), f(e.Red))
}

func statusEvents(t *testing.T, store *sqlx.DB) []event {
	t.Helper()
	var es []event
	labels := fmt.Sprintf(`{"service": "children", "team": %q}`, pushedTeam)
	if err := store.SelectContext(t.Context(), &es, `
		SELECT e.id, e.from_status, e.to_status, e.value, e.amber, e.red
		FROM status_events e JOIN series s ON s.id = e.series_id
		WHERE s.kpi = $1 AND s.labels = $2::jsonb
		ORDER BY e.id`, caseloadKPI, labels); err != nil {
		t.Fatalf("reading status events: %v", err)
	}
	return es
}

func countEvents(t *testing.T, store *sqlx.DB) int {
	t.Helper()
	var n int
	if err := store.GetContext(t.Context(), &n, `SELECT count(*) FROM status_events`); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkBreachAndRecovery checks that the events show the series going red
// at the pushed value and then back to green at the value it came back to,
// each with the team's thresholds (amber 18, red 22).
func checkBreachAndRecovery(t *testing.T, es []event, redValue, backValue float64) {
	t.Helper()
	near := func(p *float64, want float64) bool { return p != nil && math.Abs(*p-want) < 1e-9 }
	redAt, backAt := -1, -1
	for i, e := range es {
		if !near(e.Amber, 18) || !near(e.Red, 22) {
			t.Errorf("event %v does not carry the team's thresholds (amber 18, red 22)", e)
		}
		if e.ToStatus == "red" && near(e.Value, redValue) {
			redAt = i
		}
		if redAt >= 0 && i > redAt && e.FromStatus != nil && *e.FromStatus == "red" && e.ToStatus == "green" && near(e.Value, backValue) {
			backAt = i
		}
	}
	if redAt < 0 || backAt < 0 {
		t.Errorf("want a change to red at %v, then from red back to green at %v; the store has:\n%v", redValue, backValue, es)
	}
	if backAt != len(es)-1 {
		t.Errorf("the change back to green is not the latest:\n%v", es)
	}
}

// checkStatuses checks, on what Prometheus scraped, the statuses carewatch
// exports: every series of a KPI with thresholds has one, agreeing with its
// value, its own thresholds and its KPI's direction (-1 when the value is
// missing); a KPI without thresholds has none, not a green one; and a
// team's override applies to its series only.
func checkStatuses(t *testing.T, prom *e2e.Prometheus) {
	t.Helper()
	key := func(m model.Metric) string {
		c := m.Clone()
		for _, l := range []model.LabelName{model.MetricNameLabel, "instance", "job", "level"} {
			delete(c, l)
		}
		return c.String()
	}
	direction := map[string]string{}
	values := map[string]float64{}
	for _, s := range prom.Vector(t, `carewatch_kpi_info`) {
		kpi := string(s.Metric["kpi"])
		direction[kpi] = string(s.Metric["direction"])
		for _, v := range prom.Vector(t, string(s.Metric["metric"])) {
			m := v.Metric.Clone()
			m["kpi"] = model.LabelValue(kpi)
			values[key(m)] = float64(v.Value)
		}
	}
	thresholds := map[string]map[string]float64{}
	for _, s := range prom.Vector(t, `carewatch_kpi_threshold`) {
		k := key(s.Metric)
		if thresholds[k] == nil {
			thresholds[k] = map[string]float64{}
		}
		thresholds[k][string(s.Metric["level"])] = float64(s.Value)
	}
	statuses := prom.Vector(t, `carewatch_kpi_status`)
	if len(statuses) == 0 {
		t.Fatal("Prometheus has no carewatch_kpi_status")
	}
	for _, s := range statuses {
		k, kpi := key(s.Metric), string(s.Metric["kpi"])
		v, known := values[k]
		th := thresholds[k]
		crossed := func(level string) bool {
			b, ok := th[level]
			if !ok {
				return false
			}
			if direction[kpi] == "higher_is_better" {
				return v < b
			}
			return v > b
		}
		want := 0.0
		switch {
		case !known:
			want = -1
		case crossed("red"):
			want = 2
		case crossed("amber"):
			want = 1
		}
		if float64(s.Value) != want {
			t.Errorf("%s: status %v, want %v (value %v, thresholds %v, %s)", k, s.Value, want, v, th, direction[kpi])
		}
	}
	if got := prom.Vector(t, `carewatch_kpi_status{kpi="`+staleKPI+`"}`); len(got) != 0 {
		t.Errorf("%s has no thresholds but has a status: %v", staleKPI, got)
	}
	if len(prom.Vector(t, `carewatch_kpi_period_timestamp_seconds{kpi="`+staleKPI+`"}`)) == 0 {
		t.Errorf("%s has no period timestamp", staleKPI)
	}
	for team, want := range map[string]float64{pushedTeam: 22, "all": 18} {
		got := prom.Vector(t, fmt.Sprintf(`carewatch_kpi_threshold{kpi=%q,level="red",team=%q}`, caseloadKPI, team))
		if len(got) != 1 || float64(got[0].Value) != want {
			t.Errorf("red threshold of %s for team %s: %v, want %v", caseloadKPI, team, got, want)
		}
	}
}
