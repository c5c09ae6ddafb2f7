// SPDX-License-Identifier: BSL-1.0
// to_thread's tokio twin (see ../blocking.cpp for the shape and the output line): 1000 tasks,
// each looping `spawn_blocking(|| 1).await`, or one task alone (the round trip).
//
//   blocking-tokio --mode sustained|round-trip --threads N [--min-time S]
//
// --threads is the number of worker threads; the blocking pool keeps tokio's default
// (up to 512 threads, started on demand), as a tokio service gets it.
use std::time::Instant;

const TASKS_IN_FLIGHT: u64 = 1000;
const CALLS_PER_TASK: u64 = 200;
const ROUND_TRIP_CALLS: u64 = 20_000;

async fn caller(calls: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..calls {
        sum += tokio::task::spawn_blocking(|| 1u64).await.unwrap();
    }
    sum
}

fn once(sustained: bool, threads: usize) -> (f64, u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .build()
        .unwrap();
    rt.block_on(async move {
        tokio::task::spawn_blocking(|| ()).await.unwrap(); // the pool's first thread exists
        let t0 = Instant::now();
        let (calls, sum) = if sustained {
            let handles: Vec<_> = (0..TASKS_IN_FLIGHT)
                .map(|_| tokio::spawn(caller(CALLS_PER_TASK)))
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap();
            }
            (TASKS_IN_FLIGHT * CALLS_PER_TASK, sum)
        } else {
            (ROUND_TRIP_CALLS, tokio::spawn(caller(ROUND_TRIP_CALLS)).await.unwrap())
        };
        assert_eq!(sum, calls);
        (t0.elapsed().as_nanos() as f64, calls)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut mode = String::from("sustained");
    let mut threads = 1usize;
    let mut min_time = 1.0f64;
    let mut i = 1;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--mode" => mode = value,
            "--threads" => threads = value.parse().expect("--threads N"),
            "--min-time" => min_time = value.parse().expect("--min-time S"),
            other => panic!("unknown option {}", other),
        }
        i += 2;
    }
    let sustained = mode == "sustained";
    once(sustained, threads); // warm-up
    let mut per_call = Vec::new();
    let mut total = 0.0;
    while per_call.len() < 3 || (total < min_time * 1e9 && per_call.len() < 50) {
        let (ns, calls) = once(sustained, threads);
        total += ns;
        per_call.push(ns / calls as f64);
    }
    per_call.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "ns_per_call {:.1} {:.1} {:.1} reps {}",
        per_call[per_call.len() / 2],
        per_call[0],
        per_call[per_call.len() - 1],
        per_call.len()
    );
}
