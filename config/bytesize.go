package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ByteSize is a size in bytes, written as a whole number of bytes or with a
// unit: 512KiB, 10MB, 1GiB (KB, MB and GB are powers of ten, KiB, MiB and GiB
// powers of two).
type ByteSize int64

var byteUnits = []struct {
	suffix string
	factor float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// ParseByteSize reads a size such as 64MiB.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	factor := 1.0
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, factor = strings.TrimSpace(rest), u.factor
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsNaN(f) || f*factor > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a size (e.g. 512KiB, 10MB, 1GiB)", s)
	}
	return ByteSize(f * factor), nil
}

// UnmarshalYAML reads a ByteSize; a bad one is reported like any other
// value of the wrong type, with its line.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal !!%s `%s` into config.ByteSize", n.Line, strings.TrimPrefix(n.ShortTag(), "!!"), n.Value)}}
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal !!str `%s` into config.ByteSize", n.Line, n.Value)}}
	}
	*b = v
	return nil
}

// String formats b in the largest binary unit it reaches, to one decimal
// place when it is not a whole number of them: 64MiB, 97.7KiB, 512B.
func (b ByteSize) String() string {
	for _, u := range []struct {
		name string
		size ByteSize
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b >= u.size {
			if b%u.size == 0 {
				return fmt.Sprintf("%d%s", b/u.size, u.name)
			}
			return fmt.Sprintf("%.1f%s", float64(b)/float64(u.size), u.name)
		}
	}
	return fmt.Sprintf("%dB", int64(b))
}
