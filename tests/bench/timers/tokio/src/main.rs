// SPDX-License-Identifier: BSL-1.0
// The sleeping-task twin (see ../timers.cpp for the shape and the output line): N tasks parked
// in sleep(1 h) on a current-thread runtime, the resident memory they hold, the time to cancel
// (abort) them all, and the time until every one has ended (awaiting each JoinHandle).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn resident_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096.0
}

fn cpu_ms() -> f64 {
    // utime + stime of this thread (the runtime is current-thread), from /proc/thread-self/stat.
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks * 10.0 // USER_HZ = 100
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
        let cpu0 = cpu_ms();
        let t0 = Instant::now();
        for h in &handles {
            h.abort();
        }
        let cpu1 = cpu_ms();
        let wall1 = t0.elapsed().as_secs_f64() * 1e3;
        let mut cancelled = 0usize;
        for h in handles {
            if h.await.unwrap_err().is_cancelled() {
                cancelled += 1;
            }
        }
        let cpu2 = cpu_ms();
        let wall2 = t0.elapsed().as_secs_f64() * 1e3;
        assert_eq!(cancelled, n);
        println!(
            "rss_per_task {:.1} cancel_cpu_ms {:.1} end_cpu_ms {:.1} cancel_wall_ms {:.1} end_wall_ms {:.1} tasks {}",
            (after - before) / n as f64, cpu1 - cpu0, cpu2 - cpu0, wall1, wall2, n
        );
    });
}
