package exporter

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// members returns n gzip members of numbered lines and their text.
func members(t *testing.T, n int) ([][]byte, []byte) {
	t.Helper()
	c := newCompressor()
	var ms [][]byte
	var want []byte
	for i := range n {
		var text []byte
		for j := range 1 + i%300 {
			text = fmt.Appendf(text, "carewatch_kpi_value{kpi=\"k%d\",team=\"t%d\"} %d\n", i, j, i*j)
		}
		m := c.compress(text)
		if c.err != nil {
			t.Fatal(c.err)
		}
		ms = append(ms, m)
		want = append(want, text...)
	}
	return ms, want
}

// A plain scrape inflated on every core writes the members' text in
// order, whatever the number of batches.
func TestWritePlainWritesTheMembersInOrder(t *testing.T) {
	for _, n := range []int{0, 1, 2, 50, 1500} {
		ms, want := members(t, n)
		if n == 1500 && len(splitMembers(ms, plainBatch)) < 4*runtime.GOMAXPROCS(0) {
			t.Fatalf("%d members make only %d batches: the test would not run many ahead", n, len(splitMembers(ms, plainBatch)))
		}
		var got bytes.Buffer
		if err := writePlain(&got, ms); err != nil {
			t.Fatalf("%d members: %v", n, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%d members: wrote %d bytes, want the members' %d bytes of text in order", n, got.Len(), len(want))
		}
	}
}

// failAfter takes n bytes, then fails as a scraper gone away does.
type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		return 0, errors.New("connection reset")
	}
	f.n -= len(p)
	return len(p), nil
}

// A scraper that goes away stops the scrape: the error is returned and the
// batches being inflated end without anyone waiting for them.
func TestWritePlainStopsWhenTheScraperGoesAway(t *testing.T) {
	ms, want := members(t, 1500)
	before := runtime.NumGoroutine()
	if err := writePlain(&failAfter{n: len(want) / 3}, ms); err == nil {
		t.Fatal("writePlain to a writer that failed returned no error")
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after the scrape, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A member that is not gzip fails the scrape with the reader's error.
func TestWritePlainReportsACorruptMember(t *testing.T) {
	ms, _ := members(t, 1500)
	ms[700] = append([]byte(nil), ms[700]...)
	ms[700][len(ms[700])-6] ^= 0xff // the CRC
	if err := writePlain(&bytes.Buffer{}, ms); err == nil {
		t.Fatal("writePlain of a member with a wrong checksum returned no error")
	}
}
