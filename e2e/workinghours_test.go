package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/carewatch/carewatch/e2e"
)

// The shipped routing sends a red KPI by email at any time and to the
// service's Teams channel in working hours only (the time interval
// working-hours). Debian's Alertmanager, given the shipped file with
// working hours that include now and then with working hours that do not,
// shows both halves: inside, the red alert reaches children-critical (email)
// and children-teams; outside, only children-critical.
func TestRedAlertsReachTeamsInWorkingHoursAndEmailAtAnyTime(t *testing.T) {
	root := e2e.RepoRoot(t)
	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	today := strings.ToLower(time.Now().In(london).Weekday().String())
	tomorrow := strings.ToLower(time.Now().In(london).Add(24 * time.Hour).Weekday().String())
	for _, tc := range []struct {
		name      string
		weekday   string
		wantTeams bool
	}{
		{"inside working hours", today, true},
		{"outside working hours", tomorrow, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hook := e2e.StartWebhook(t)
			am := e2e.StartAlertmanager(t, e2e.AlertmanagerTestConfig(t, filepath.Join(root, "deploy", "alertmanager", "alertmanager.yml"),
				e2e.AlertmanagerTestOptions{Webhook: hook.URL + "/alerts", Group: time.Second, TimeIntervals: map[string][]map[string]any{
					// The whole of one day, in the shipped interval's zone.
					"working-hours": {{"weekdays": []string{tc.weekday}, "location": "Europe/London"}},
				}}))
			postAlert(t, am.URL, map[string]string{
				"alertname": "CarewatchKPIRed", "severity": "critical", "service": "children",
				"kpi": "children_sw_caseload_average", "team": "Family Support East", "job": "carewatch",
			})
			red := func(receiver string) func(e2e.Notification, e2e.Alert) bool {
				return func(n e2e.Notification, a e2e.Alert) bool {
					return n.Receiver == receiver && a.Status == "firing" && a.Labels["alertname"] == "CarewatchKPIRed"
				}
			}
			hook.WaitForAlert(t, "the red alert by email", 30*time.Second, red("children-critical"))
			if tc.wantTeams {
				hook.WaitForAlert(t, "the red alert in Teams", 30*time.Second, red("children-teams"))
				return
			}
			// Give the Teams route a few group intervals to show it is muted.
			time.Sleep(5 * time.Second)
			for _, n := range hook.Notifications(t) {
				if n.Receiver == "children-teams" {
					t.Errorf("the red alert went to Teams outside working hours: %+v", n)
				}
			}
		})
	}
}

// postAlert fires an alert with labels in Alertmanager, as Prometheus would.
func postAlert(t *testing.T, amURL string, labels map[string]string) {
	t.Helper()
	body, err := json.Marshal([]map[string]any{{
		"labels":      labels,
		"annotations": map[string]string{"summary": "a red KPI"},
		"startsAt":    time.Now().UTC().Format(time.RFC3339),
	}})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(amURL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatal(fmt.Errorf("posting the alert: %s", resp.Status))
	}
}
