// SPDX-License-Identifier: BSL-1.0
// The sleeping-task twin (see ../timers.cpp for the shape and the output line): N tasks parked
// in sleep(1 h) on a current-thread runtime, the resident memory they hold, and the time to
// cancel (abort) them all and see every one end.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn resident_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut n = 1_000_000usize;
    if args.len() >= 3 && args[1] == "--tasks" {
        n = args[2].parse().expect("--tasks N");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async move {
        let parked = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(n);
        tokio::task::yield_now().await;
        let before = resident_bytes();
        for _ in 0..n {
            let p = parked.clone();
            handles.push(tokio::spawn(async move {
                p.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }));
        }
        while parked.load(Ordering::Relaxed) < n {
            tokio::task::yield_now().await;
        }
        tokio::task::yield_now().await; // the last one reached its sleep
        let after = resident_bytes();
        let t0 = Instant::now();
        for h in &handles {
            h.abort();
        }
        let mut cancelled = 0usize;
        for h in handles {
            if h.await.unwrap_err().is_cancelled() {
                cancelled += 1;
            }
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        assert_eq!(cancelled, n);
        println!("rss_per_task {:.1} cancel_all_ms {:.1} tasks {}", (after - before) / n as f64, ms, n);
    });
}
