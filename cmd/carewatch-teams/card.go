package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/carewatch/carewatch/internal/amwebhook"
)

// Notification is the JSON body Alertmanager's webhook receiver POSTs.
type Notification = amwebhook.Notification

// Alert is one alert of a Notification.
type Alert = amwebhook.Alert

// The Teams message: an Adaptive Card in the "message" envelope that both
// Teams incoming webhooks and Teams workflows ("Post to a channel when a
// webhook request is received") accept.
type teamsMessage struct {
	Type        string       `json:"type"`
	Attachments []attachment `json:"attachments"`
}

type attachment struct {
	ContentType string       `json:"contentType"`
	ContentURL  *string      `json:"contentUrl"`
	Content     adaptiveCard `json:"content"`
}

type adaptiveCard struct {
	Schema  string            `json:"$schema"`
	Type    string            `json:"type"`
	Version string            `json:"version"`
	Body    []element         `json:"body"`
	Actions []action          `json:"actions,omitempty"`
	MSTeams map[string]string `json:"msteams,omitempty"`
}

// element is a RichTextBlock. Its TextRuns are plain text, never markdown,
// so a KPI name such as children_sw_caseload_average is shown as written
// instead of half in italics.
type element struct {
	Type      string    `json:"type"`
	Inlines   []textRun `json:"inlines"`
	Separator bool      `json:"separator,omitempty"`
	Spacing   string    `json:"spacing,omitempty"`
}

type textRun struct {
	Type         string  `json:"type"`
	Text         string  `json:"text"`
	Weight       string  `json:"weight,omitempty"`
	Size         string  `json:"size,omitempty"`
	Color        string  `json:"color,omitempty"`
	IsSubtle     bool    `json:"isSubtle,omitempty"`
	SelectAction *action `json:"selectAction,omitempty"`
}

type action struct {
	Type  string `json:"type"`
	Title string `json:"title,omitempty"`
	URL   string `json:"url"`
}

// CardOptions bound and localise a card.
type CardOptions struct {
	// MaxAlerts is how many alerts are listed; the rest are counted.
	MaxAlerts int
	// MaxBytes bounds the JSON of the whole message: Teams refuses
	// messages much over 28 KB. Alerts are left out until it fits.
	MaxBytes int
	// MaxTextRunes bounds each summary and description.
	MaxTextRunes int
	// Location is the time zone "since" and "resolved at" are shown in.
	Location *time.Location
}

// RenderCard renders n as a Teams message: a title that says what and
// where, then every resolved alert and every firing one (summary,
// description, since when, a link to its dashboard), within o's bounds. It returns
// the JSON to post.
func RenderCard(n *Notification, o CardOptions) ([]byte, error) {
	firing, resolved := split(n.Alerts)
	listed := min(len(n.Alerts), max(o.MaxAlerts, 1))
	for {
		b, err := json.Marshal(card(n, firing, resolved, listed, o))
		if err != nil {
			return nil, fmt.Errorf("rendering the Teams card: %w", err)
		}
		if len(b) <= o.MaxBytes || listed == 0 {
			if len(b) > o.MaxBytes {
				return nil, fmt.Errorf("the Teams card is %d bytes with no alert listed, more than %d", len(b), o.MaxBytes)
			}
			return b, nil
		}
		listed--
	}
}

func split(alerts []Alert) (firing, resolved []Alert) {
	for _, a := range alerts {
		if a.Status == "resolved" {
			resolved = append(resolved, a)
		} else {
			firing = append(firing, a)
		}
	}
	// Critical first, then by summary, so that the message reads the same
	// whatever order Alertmanager sent.
	sort.SliceStable(firing, func(i, j int) bool {
		si, sj := severityRank(firing[i].Labels["severity"]), severityRank(firing[j].Labels["severity"])
		if si != sj {
			return si < sj
		}
		return firing[i].Annotations["summary"] < firing[j].Annotations["summary"]
	})
	sort.SliceStable(resolved, func(i, j int) bool {
		return resolved[i].Annotations["summary"] < resolved[j].Annotations["summary"]
	})
	return firing, resolved
}

func severityRank(s string) int {
	switch s {
	case "critical":
		return 0
	case "warning":
		return 1
	}
	return 2
}

// card lays out the message with the first `listed` alerts.
func card(n *Notification, firing, resolved []Alert, listed int, o CardOptions) teamsMessage {
	body := []element{{
		Type: "RichTextBlock",
		Inlines: []textRun{{
			Type: "TextRun", Text: title(n, len(firing), len(resolved)), Weight: "Bolder", Size: "Large",
			Color: colour(n.Status, n.CommonLabels["severity"]),
		}},
	}}
	// Resolved alerts come first: Alertmanager sends a resolved alert in
	// one notification only, while firing ones are repeated in every
	// notification of their group, so the resolved ones are the news and
	// must not be the ones cut off.
	shown := 0
	for _, a := range resolved {
		if shown == listed {
			break
		}
		body = append(body, alertElements(a, o)...)
		shown++
	}
	for i, a := range firing {
		if shown == listed {
			break
		}
		els := alertElements(a, o)
		if i == 0 && shown > 0 {
			els[0].Separator = true
		}
		body = append(body, els...)
		shown++
	}
	if left := len(firing) + len(resolved) - shown + n.TruncatedAlerts; left > 0 {
		body = append(body, element{Type: "RichTextBlock", Separator: true, Inlines: []textRun{{
			Type: "TextRun", Text: fmt.Sprintf("…and %d more, listed in Alertmanager.", left), IsSubtle: true,
		}}})
	}
	var actions []action
	if d := dashboard(n); d != "" {
		actions = append(actions, action{Type: "Action.OpenUrl", Title: "Open the dashboard", URL: d})
	}
	if isWebURL(n.ExternalURL) {
		actions = append(actions, action{Type: "Action.OpenUrl", Title: "Open Alertmanager", URL: n.ExternalURL})
	}
	return teamsMessage{
		Type: "message",
		Attachments: []attachment{{
			ContentType: "application/vnd.microsoft.card.adaptive",
			Content: adaptiveCard{
				Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
				Type:    "AdaptiveCard",
				Version: "1.4",
				Body:    body,
				Actions: actions,
				MSTeams: map[string]string{"width": "Full"},
			},
		}},
	}
}

// alertElements are one alert's lines: its summary, its description, and
// since when it fires (or when it was resolved) with links to its dashboard
// and its runbook.
func alertElements(a Alert, o CardOptions) []element {
	summary := a.Annotations["summary"]
	if summary == "" {
		summary = a.Labels["alertname"]
	}
	resolved := a.Status == "resolved"
	head := textRun{Type: "TextRun", Text: clip(summary, o.MaxTextRunes), Weight: "Bolder", Color: colour(a.Status, a.Labels["severity"])}
	if resolved {
		head.Text = "Resolved: " + head.Text
	}
	els := []element{{Type: "RichTextBlock", Spacing: "Medium", Inlines: []textRun{head}}}
	if d := a.Annotations["description"]; d != "" {
		els = append(els, element{Type: "RichTextBlock", Spacing: "Small", Inlines: []textRun{{Type: "TextRun", Text: clip(d, o.MaxTextRunes)}}})
	}
	var when string
	if resolved {
		when = "Resolved at " + formatTime(a.EndsAt, o.Location) + "."
	} else {
		when = "Firing since " + formatTime(a.StartsAt, o.Location) + "."
	}
	last := []textRun{{Type: "TextRun", Text: when, IsSubtle: true}}
	if u := a.Annotations["dashboard"]; isWebURL(u) {
		last = append(last, textRun{Type: "TextRun", Text: " Open the dashboard", SelectAction: &action{Type: "Action.OpenUrl", URL: u}})
	}
	if u := a.Annotations["runbook_url"]; isWebURL(u) {
		last = append(last, textRun{Type: "TextRun", Text: " What to do", SelectAction: &action{Type: "Action.OpenUrl", URL: u}})
	}
	return append(els, element{Type: "RichTextBlock", Spacing: "Small", Inlines: last})
}

// title says what and where: the alert's own summary when there is one
// alert, else how many of which alert in which service.
func title(n *Notification, firing, resolved int) string {
	if len(n.Alerts) == 1 && n.Alerts[0].Annotations["summary"] != "" {
		prefix := "Firing"
		if n.Alerts[0].Status == "resolved" {
			prefix = "Resolved"
		}
		return prefix + ": " + n.Alerts[0].Annotations["summary"]
	}
	var b strings.Builder
	switch {
	case firing > 0 && resolved > 0:
		fmt.Fprintf(&b, "%d firing, %d resolved", firing, resolved)
	case firing > 0:
		fmt.Fprintf(&b, "%d firing", firing)
	default:
		fmt.Fprintf(&b, "%d resolved", resolved)
	}
	if name := n.GroupLabels["alertname"]; name != "" {
		b.WriteString(": " + name)
	} else if name := n.CommonLabels["alertname"]; name != "" {
		b.WriteString(": " + name)
	}
	if s := n.GroupLabels["service"]; s != "" {
		b.WriteString(" in " + s)
	}
	return b.String()
}

// dashboard is the link the alerts share, if they share one.
func dashboard(n *Notification) string {
	if d := n.CommonAnnotations["dashboard"]; isWebURL(d) {
		return d
	}
	return ""
}

func colour(status, severity string) string {
	switch {
	case status == "resolved":
		return "Good"
	case severity == "critical":
		return "Attention"
	case severity == "warning":
		return "Warning"
	}
	return "Default"
}

func formatTime(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return "an unknown time"
	}
	if loc == nil {
		loc = time.UTC
	}
	return t.In(loc).Format("2 January 2006 15:04 MST")
}

// clip shortens s to n runes, marking the cut.
func clip(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n-1, 0)]) + "…"
}

// isWebURL reports whether s is an absolute http(s) URL: Teams refuses a
// card whose Action.OpenUrl holds anything else.
func isWebURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}
