package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// Duration is a length of time written as Prometheus writes one: a number
// and a unit (30s, 5m, 36h, 7d, 2w, 1y), or several (1h30m).
type Duration time.Duration

// UnmarshalYAML reads a Duration; a bad one (36 hours, 1.5h) is reported
// like any other value of the wrong type, with its line and path, and
// decoding goes on to find the file's other problems.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal !!%s `%s` into config.Duration", n.Line, strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)}}
	}
	v, err := model.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal !!str `%s` into config.Duration", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes d as Prometheus writes a duration.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String formats d as Prometheus writes a duration (36h, 1d12h, 0s).
func (d Duration) String() string { return model.Duration(d).String() }
