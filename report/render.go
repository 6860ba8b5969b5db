package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"time"
)

//go:embed pack.html.tmpl
var packTemplate string

//go:embed pack.css
var packCSS string

// page is parsed once and never changed; executing it is safe from
// several goroutines.
var page = template.Must(template.New("pack").Funcs(template.FuncMap{
	"css":   func() template.CSS { return template.CSS(packCSS) },
	"month": func(t time.Time) string { return t.Format("January 2006") },
	"shape": func(class string) template.HTML {
		switch class {
		case "red":
			return shapeRed
		case "amber":
			return shapeAmber
		case "green":
			return shapeGreen
		}
		return shapeUnknown
	},
}).Parse(packTemplate))

// Render writes p as one self-contained HTML page.
func (p *Pack) Render(w io.Writer) error {
	var buf bytes.Buffer
	if err := page.Execute(&buf, p); err != nil {
		return fmt.Errorf("report: rendering the pack: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
