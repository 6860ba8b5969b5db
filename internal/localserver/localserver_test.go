package localserver_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/carewatch/carewatch/internal/localserver"
)

func TestTailKeepsTheLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"", 3, ""},
	} {
		if got := localserver.Tail(tc.in, tc.n); got != tc.want {
			t.Errorf("Tail(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestReadTailReadsFromTheOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "server.log")
	if err := os.WriteFile(path, []byte("old 1\nold 2\nnew 1\nnew 2\nnew 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := localserver.ReadTail(path, int64(len("old 1\nold 2\n")), 5), "new 1\nnew 2\nnew 3"; got != want {
		t.Errorf("ReadTail from the offset = %q, want %q", got, want)
	}
	if got := localserver.ReadTail(filepath.Join(t.TempDir(), "none.log"), 0, 5); !strings.HasPrefix(got, "(cannot read: ") {
		t.Errorf("ReadTail of a missing file = %q, want a note that it cannot be read", got)
	}
}

func TestFreePortCanBeListenedOn(t *testing.T) {
	port, err := localserver.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("listening on the free port %d: %v", port, err)
	}
	l.Close()
}
