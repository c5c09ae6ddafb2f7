// SPDX-License-Identifier: BSL-1.0
// The fine-grained workload on Go (see ../workload.cpp for its definition and output line):
// 256 request goroutines; each, 300 to 1000 times, starts a child goroutine that burns a fixed
// amount of CPU and reads the request id from its context.Context, waits for its result on a
// channel, then yields (runtime.Gosched). GOMAXPROCS is the thread count.
package main

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"
)

type key struct{}

const requests = 256

var sink uint64

func roundsOf(request uint64) uint64 { return 300 + (request*7919)%701 }

//go:noinline
func burn(iterations, seed uint64) uint64 {
	x := seed | 1
	for i := uint64(0); i < iterations; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

func calibrate(ns float64) uint64 {
	if ns <= 0 {
		return 0
	}
	const probe = 2000000
	best := 1e300
	for i := uint64(0); i < 5; i++ {
		t0 := time.Now()
		sink += burn(probe, 7+i)
		if el := float64(time.Since(t0).Nanoseconds()); el < best {
			best = el
		}
	}
	return uint64(ns*probe/best + 0.5)
}

func request(ctx context.Context, i, iterations uint64) uint64 {
	ctx = context.WithValue(ctx, key{}, i)
	acc := uint64(0)
	for r := uint64(0); r < roundsOf(i); r++ {
		done := make(chan uint64, 1)
		go func(r uint64) {
			x := burn(iterations, r)
			done <- x + ctx.Value(key{}).(uint64)
		}(r)
		acc += <-done
		runtime.Gosched()
	}
	return acc
}

func repetition(iterations uint64) float64 {
	total := uint64(0)
	for i := uint64(0); i < requests; i++ {
		total += roundsOf(i)
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	results := make([]uint64, requests)
	for i := uint64(0); i < requests; i++ {
		wg.Add(1)
		go func(i uint64) {
			defer wg.Done()
			results[i] = request(context.Background(), i, iterations)
		}(i)
	}
	wg.Wait()
	el := float64(time.Since(t0).Nanoseconds())
	for _, r := range results {
		sink += r
	}
	return el / float64(total)
}

func main() {
	threads := flag.Int("threads", 1, "GOMAXPROCS")
	grain := flag.Float64("grain", 0, "CPU per child, ns")
	minTime := flag.Float64("min-time", 1.0, "seconds of repetitions at least")
	flag.Parse()
	runtime.GOMAXPROCS(*threads)
	iterations := calibrate(*grain)
	var reps []float64
	start := time.Now()
	for len(reps) < 5 || time.Since(start).Seconds() < *minTime {
		reps = append(reps, repetition(iterations))
		if len(reps) >= 200 {
			break
		}
	}
	sort.Float64s(reps)
	fmt.Printf("ns_per_round %.1f %.1f %.1f reps %d\n", reps[len(reps)/2], reps[0],
		reps[len(reps)-1], len(reps))
}
