// SPDX-License-Identifier: BSL-1.0
// The fine-grained workload on tokio (see ../workload.cpp for its definition and output line):
// 256 request tasks; each, 300 to 1000 times, spawns a child that burns a fixed amount of CPU
// and reads a task-local (the context var), awaits it, then yields (yield_now). tokio does not
// hand task-locals to spawned tasks, so each spawn wraps the child in the parent's value, as a
// tokio service that propagates a request id does.
use std::hint::black_box;
use std::time::Instant;

tokio::task_local! {
    static REQUEST_ID: u64;
}

const REQUESTS: u64 = 256;

fn rounds_of(request: u64) -> u64 {
    300 + (request * 7919) % 701
}

#[inline(never)]
fn burn(iterations: u64, seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

fn calibrate(ns: f64) -> u64 {
    if ns <= 0.0 {
        return 0;
    }
    const PROBE: u64 = 2_000_000;
    let mut best = f64::MAX;
    for i in 0..5 {
        let t0 = Instant::now();
        black_box(burn(black_box(PROBE), 7 + i));
        best = best.min(t0.elapsed().as_nanos() as f64);
    }
    (ns * PROBE as f64 / best + 0.5) as u64
}

async fn request(i: u64, iterations: u64) -> u64 {
    REQUEST_ID
        .scope(i, async move {
            let mut acc = 0u64;
            for r in 0..rounds_of(i) {
                let id = REQUEST_ID.get();
                let child = tokio::spawn(REQUEST_ID.scope(id, async move {
                    burn(iterations, r).wrapping_add(REQUEST_ID.get())
                }));
                acc = acc.wrapping_add(child.await.unwrap());
                tokio::task::yield_now().await;
            }
            acc
        })
        .await
}

fn repetition(rt: &tokio::runtime::Runtime, iterations: u64) -> f64 {
    let total: u64 = (0..REQUESTS).map(rounds_of).sum();
    rt.block_on(async move {
        let t0 = Instant::now();
        let handles: Vec<_> =
            (0..REQUESTS).map(|i| tokio::spawn(request(i, iterations))).collect();
        let mut check = 0u64;
        for h in handles {
            check = check.wrapping_add(h.await.unwrap());
        }
        black_box(check);
        t0.elapsed().as_nanos() as f64 / total as f64
    })
}

fn main() {
    let mut threads = 1usize;
    let mut grain = 0.0f64;
    let mut min_time = 1.0f64;
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < args.len() {
        match args[i].as_str() {
            "--threads" => threads = args[i + 1].parse().unwrap(),
            "--grain" => grain = args[i + 1].parse().unwrap(),
            "--min-time" => min_time = args[i + 1].parse().unwrap(),
            _ => {
                eprintln!("usage: workload-tokio --threads N --grain NS [--min-time S]");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let iterations = calibrate(grain);
    let mut reps = Vec::new();
    let start = Instant::now();
    while reps.len() < 5 || start.elapsed().as_secs_f64() < min_time {
        // A fresh runtime per repetition, as baton's run() makes a fresh loop.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .build()
            .unwrap();
        reps.push(repetition(&rt, iterations));
        drop(rt);
        if reps.len() >= 200 {
            break;
        }
    }
    reps.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "ns_per_round {:.1} {:.1} {:.1} reps {}",
        reps[reps.len() / 2],
        reps[0],
        reps[reps.len() - 1],
        reps.len()
    );
}
