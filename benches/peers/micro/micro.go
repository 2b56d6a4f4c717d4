// Go's side of the peer table (run with GOMAXPROCS=1, as the others run on one worker): the same
// four figures as src/bin/*.rs, printed as "name value".
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const repeats = 5
const iters = 200000
const parkedN = 10000

// perIter runs f(iters) repeats times and prints the median time per iteration in ns.
func perIter(name string, f func(n int)) {
	t := make([]float64, repeats)
	for r := range t {
		start := time.Now()
		f(iters)
		t[r] = float64(time.Since(start).Nanoseconds()) / iters
	}
	sort.Float64s(t)
	fmt.Printf("%s %.1f\n", name, t[repeats/2])
}

// memory is this process's resident set (/proc/self/statm) plus the machine's kernel stacks and
// page tables (/proc/meminfo), in bytes, as the Rust peers measure it.
func memory() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	pages, err := strconv.ParseUint(strings.Fields(string(b))[1], 10, 64)
	if err != nil {
		panic(err)
	}
	m, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		panic(err)
	}
	var kib uint64
	for _, line := range strings.Split(string(m), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[0] == "KernelStack:" || f[0] == "PageTables:") {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				panic(err)
			}
			kib += v
		}
	}
	return pages*4096 + kib*1024
}

func main() {
	perIter("spawn_join_ns", func(n int) {
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() { wg.Done() }()
			wg.Wait()
		}
	})
	perIter("yield_round_trip_ns", func(n int) {
		done := make(chan struct{})
		go func() {
			for i := 0; i < n; i++ {
				runtime.Gosched()
			}
			close(done)
		}()
		for i := 0; i < n; i++ {
			runtime.Gosched()
		}
		<-done
	})
	perIter("ping_pong_ns", func(n int) {
		to, back := make(chan int), make(chan int)
		go func() {
			for v := range to {
				back <- v
			}
		}()
		for i := 0; i < n; i++ {
			to <- i
			<-back
		}
		close(to)
	})
	runtime.GC()
	before := memory()
	var started atomic.Int64
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < parkedN; i++ {
		wg.Add(1)
		go func() {
			started.Add(1)
			<-gate
			wg.Done()
		}()
	}
	for started.Load() < parkedN {
		runtime.Gosched()
	}
	fmt.Printf("parked_bytes %d\n", (memory()-before)/parkedN)
	close(gate)
	wg.Wait()
}
