#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Runs the sleeping-task benchmark on baton and tokio and prints them side by side.

    tests/bench/timers/run.py [--build build-bench] [--tasks 1000000] [--passes 3]

baton's program is <build>/tests/bench/timers (built here with ninja). The tokio twin is built
offline against Debian's registry like blocking/run.py's (skipped, with a line saying why, when
cargo or the crate is missing). The programs run interleaved, --passes times; each figure is
the median over the passes: resident memory per task parked in sleep(1 h), and the time to
cancel all of them and see each one end.
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "blocking"))
from run import build_tokio, note  # noqa: E402  (the shared offline cargo build)


def measure(cmd, tasks):
    r = subprocess.run(cmd + ["--tasks", str(tasks)], capture_output=True, text=True, check=True)
    f = r.stdout.split()
    return {k: float(f[f.index(k) + 1]) for k in
            ("rss_per_task", "cancel_cpu_ms", "end_cpu_ms", "cancel_wall_ms", "end_wall_ms")}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build", default="build-bench")
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--no-peers", action="store_true")
    a = p.parse_args()

    subprocess.run(["ninja", "-C", a.build, "tests/bench/timers"], check=True,
                   stdout=subprocess.DEVNULL)
    exe = os.path.join(a.build, "tests", "bench", "timers")
    # baton on every thread count up to the cores (cancelled tasks end wherever a worker
    # takes them); tokio's twin runs on a current-thread runtime.
    programs = [("baton, %d thread%s" % (t, "" if t == 1 else "s"), [exe, "--threads", str(t)])
                for t in range(1, (os.cpu_count() or 1) + 1)]
    if not a.no_peers:
        out = os.path.join(os.path.abspath(a.build), "tokio-peers")
        os.makedirs(out, exist_ok=True)
        exe, why = build_tokio(out, os.path.join(HERE, "tokio"), "timers-tokio")
        if exe is None:
            note("timers: tokio skipped: %s" % why)
        else:
            programs.append(("tokio", [exe]))
    note("timers: %s; %d tasks; %d pass(es); load average %.2f at the start"
         % (", ".join(n for n, _ in programs), a.tasks, a.passes, os.getloadavg()[0]))
    runs = {n: [] for n, _ in programs}
    for _ in range(a.passes):
        for name, cmd in programs:
            runs[name].append(measure(cmd, a.tasks))
    note("timers: load average %.2f at the end" % os.getloadavg()[0])
    print("| %d sleeping tasks | RSS per task | cancel all: CPU (wall) | all ended: CPU (wall) |"
          % a.tasks)
    print("|---|---:|---:|---:|")
    for name, _ in programs:
        m = {k: statistics.median(r[k] for r in runs[name]) for k in runs[name][0]}
        print("| %s | %.0f B | %.0f ms (%.0f ms) | %.0f ms (%.0f ms) |"
              % (name, m["rss_per_task"], m["cancel_cpu_ms"], m["cancel_wall_ms"],
                 m["end_cpu_ms"], m["end_wall_ms"]))


if __name__ == "__main__":
    main()
