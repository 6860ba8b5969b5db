// Package heapsample measures the Go heap for carewatch's benchmarks: the
// live heap once garbage is collected (what a process holds between pieces
// of work) and the peak of the heap while some work runs.
package heapsample

import (
	"runtime"
	"runtime/metrics"
	"sync"
	"time"
)

// Live collects garbage and returns the bytes of live heap objects.
func Live() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc)
}

// Peak samples the heap's object bytes (live and not yet collected) every
// millisecond until the returned function is called, which returns the
// largest sample. It reads runtime/metrics, which unlike ReadMemStats does
// not stop the world.
func Peak() func() float64 {
	const name = "/memory/classes/heap/objects:bytes"
	s := []metrics.Sample{{Name: name}}
	read := func() float64 {
		metrics.Read(s)
		return float64(s[0].Value.Uint64())
	}
	var (
		mu   sync.Mutex
		peak = read()
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				v := read()
				mu.Lock()
				peak = max(peak, v)
				mu.Unlock()
			}
		}
	})
	return func() float64 {
		close(done)
		wg.Wait()
		return max(peak, read())
	}
}
