// skynet, the fan-out benchmark, and a spawn burst, in Go: the peer of hilos's
// examples/skynet.rs. Usage: skynet [LEAVES] [skynet|burst]; GOMAXPROCS sets the workers.
// Prints: go MODE leaves=.. workers=.. sum=.. ms=.. maxrss_kb=..
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// skynet sends on out the sum of the size leaves numbered from num: each inner node starts its
// 10 children as goroutines and sums what they send on its own channel.
func skynet(out chan<- uint64, num, size uint64) {
	if size == 1 {
		out <- num
		return
	}
	rc := make(chan uint64)
	step := size / 10
	for i := uint64(0); i < 10; i++ {
		go skynet(rc, num+i*step, step)
	}
	var sum uint64
	for i := 0; i < 10; i++ {
		sum += <-rc
	}
	out <- sum
}

// burst starts n goroutines that each return their number on a channel of their own (Go has no
// join handle; a one-slot channel per goroutine is the closest), then receives from each.
func burst(n uint64) uint64 {
	done := make([]chan uint64, n)
	for i := uint64(0); i < n; i++ {
		c := make(chan uint64, 1)
		done[i] = c
		go func(i uint64) { c <- i }(i)
	}
	var sum uint64
	for _, c := range done {
		sum += <-c
	}
	return sum
}

func main() {
	leaves := uint64(1000000)
	mode := "skynet"
	if len(os.Args) > 1 {
		v, err := strconv.ParseUint(os.Args[1], 10, 64)
		if err != nil {
			panic(err)
		}
		leaves = v
	}
	if len(os.Args) > 2 {
		mode = os.Args[2]
	}
	start := time.Now()
	var sum uint64
	if mode == "burst" {
		sum = burst(leaves)
	} else {
		c := make(chan uint64)
		go skynet(c, 0, leaves)
		sum = <-c
	}
	ms := float64(time.Since(start).Nanoseconds()) / 1e6
	if sum != leaves*(leaves-1)/2 {
		panic("wrong sum")
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("go %s leaves=%d workers=%d sum=%d ms=%.1f maxrss_kb=%d\n",
		mode, leaves, runtime.GOMAXPROCS(0), sum, ms, ru.Maxrss)
}
