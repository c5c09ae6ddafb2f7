#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Runs the fine-grained workload on baton, tokio and Go and prints them side by side.

    tests/bench/workload/run.py [--build build-bench] [--threads 1,2] [--grains 0,300,3000]
                                [--min-time 1.0] [--passes 1] [--also NAME=PATH ...]

baton's program is <build>/tests/bench/workload (built here with ninja if missing). The tokio
twin is built offline with cargo against Debian's registry (/usr/share/cargo/registry, package
librust-tokio-dev), the Go twin with `go build`; both go under <build>/workload-peers. A peer
whose toolchain or crates are missing is skipped with a line saying why. Thread counts default
to every count from 1 to the machine's cores. For each grain and thread count the programs run
one after another (interleaved, so a noisy spell hits all of them), --passes times; each
figure is the median over the passes of each program's own median time per round. --also adds
a column for another build of the baton program (an A/B against an older tree).

The last column is the machine's own ceiling for N threads: N copies of baton's program run at
once, each on one loop thread, sharing nothing; N times the one-thread time over their mean
time is the speed-up that N independent processes get here (below N when the cores share a
physical core, a cache or a power budget, or when other processes take a core).
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CARGO_REGISTRY = "/usr/share/cargo/registry"


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def build_baton(build):
    exe = os.path.join(build, "tests", "bench", "workload")
    if not os.path.exists(exe):
        subprocess.run(["ninja", "-C", build, "tests/bench/workload"], check=True)
    return exe


def build_tokio(out):
    cargo = shutil.which("cargo")
    if cargo is None:
        return None, "cargo not found"
    if not any(d.startswith("tokio-1.") for d in os.listdir(CARGO_REGISTRY)) \
            if os.path.isdir(CARGO_REGISTRY) else True:
        return None, "no tokio 1.x in " + CARGO_REGISTRY + " (apt-get install librust-tokio-dev)"
    src = os.path.join(out, "tokio-src")
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(os.path.join(HERE, "tokio"), src)  # cargo writes Cargo.lock beside it
    home = tempfile.mkdtemp(prefix="cargo-home-")
    try:
        with open(os.path.join(home, "config.toml"), "w") as f:
            f.write('[source.crates-io]\nreplace-with = "debian"\n'
                    '[source.debian]\ndirectory = "%s"\n[net]\noffline = true\n' % CARGO_REGISTRY)
        env = dict(os.environ, CARGO_HOME=home)
        r = subprocess.run([cargo, "build", "--release", "--quiet", "--target-dir",
                            os.path.join(out, "tokio-target")], cwd=src, env=env,
                           capture_output=True, text=True)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if r.returncode != 0:
        return None, "cargo build failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return os.path.join(out, "tokio-target", "release", "workload-tokio"), None


def build_go(out):
    go = shutil.which("go")
    if go is None:
        return None, "go not found (apt-get install golang-go)"
    exe = os.path.join(out, "workload-go")
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off",
               GOCACHE=os.path.join(out, "go-cache"))
    r = subprocess.run([go, "build", "-o", exe, "."], cwd=os.path.join(HERE, "go"), env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, "go build failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return exe, None


def measure(exe, threads, grain, min_time):
    r = subprocess.run([exe, "--threads", str(threads), "--grain", str(grain), "--min-time",
                        str(min_time)], capture_output=True, text=True, check=True)
    fields = r.stdout.split()
    return float(fields[fields.index("ns_per_round") + 1])


def measure_copies(exe, copies, grain, min_time):
    """Mean ns per round of `copies` one-thread runs of exe started together."""
    procs = [subprocess.Popen([exe, "--threads", "1", "--grain", str(grain), "--min-time",
                               str(min_time)], stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    times = []
    for pr in procs:
        out, _ = pr.communicate()
        if pr.returncode != 0:
            raise subprocess.CalledProcessError(pr.returncode, exe)
        fields = out.split()
        times.append(float(fields[fields.index("ns_per_round") + 1]))
    return statistics.mean(times)


def busy_seconds():
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fmt_ns(ns):
    return "%.0f ns" % ns if ns < 10000 else "%.1f µs" % (ns / 1000)


def fmt_grain(g):
    return "none" if g == 0 else "~%d ns" % g if g < 1000 else "~%g µs" % (g / 1000)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build", default="build-bench")
    p.add_argument("--threads", default=",".join(str(i + 1) for i in range(os.cpu_count() or 1)))
    p.add_argument("--grains", default="0,300,3000")
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--passes", type=int, default=1)
    p.add_argument("--also", action="append", default=[], metavar="NAME=PATH")
    p.add_argument("--no-peers", action="store_true", help="baton (and --also) only")
    a = p.parse_args()

    programs = [("baton", build_baton(a.build))]
    for spec in a.also:
        name, path = spec.split("=", 1)
        programs.append((name, path))
    if not a.no_peers:
        out = os.path.join(os.path.abspath(a.build), "workload-peers")
        os.makedirs(out, exist_ok=True)
        for name, build in (("tokio", build_tokio), ("go", build_go)):
            exe, why = build(out)
            if exe is None:
                note("workload: %s skipped: %s" % (name, why))
            else:
                programs.append((name, exe))

    threads = [int(t) for t in a.threads.split(",")]
    grains = [int(g) for g in a.grains.split(",")]
    note("workload: %s; threads %s; grains %s ns; %d pass(es)" %
         (", ".join(n for n, _ in programs), threads, grains, a.passes))
    results = {}  # (name, grain, threads) -> ns per round
    busy0, own0, wall0 = busy_seconds(), own_seconds(), time.monotonic()
    for g in grains:
        for t in threads:
            runs = {n: [] for n, _ in programs}
            copies = []
            for _ in range(a.passes):
                for name, exe in programs:
                    runs[name].append(measure(exe, t, g, a.min_time))
                if t > 1:
                    copies.append(measure_copies(programs[0][1], t, g, a.min_time))
            for name in runs:
                results[(name, g, t)] = statistics.median(runs[name])
            if copies:
                results[("copies", g, t)] = statistics.median(copies)

    busy1, own1, wall1 = busy_seconds(), own_seconds(), time.monotonic()
    if busy0 is not None:
        others = max(0.0, (busy1 - busy0) - (own1 - own0))
        note("workload: other processes used %.0f %% of one core on average during the run "
             "(%.0f s wall, 1-minute load average %.2f at the end)"
             % (100 * others / (wall1 - wall0), wall1 - wall0, os.getloadavg()[0]))
    head = "| CPU per child | threads |" + "".join(" %s | speed-up |" % n for n, _ in programs)
    print(head + " machine ceiling |")
    print("|---|---:|" + "---:|---:|" * len(programs) + "---:|")
    for g in grains:
        for t in threads:
            row = "| %s | %d |" % (fmt_grain(g), t)
            for name, _ in programs:
                ns = results[(name, g, t)]
                base = results.get((name, g, threads[0]))
                row += " %s | %s |" % (fmt_ns(ns), "%.2fx" % (base / ns) if base else "")
            one = results.get((programs[0][0], g, 1))
            mean = results.get(("copies", g, t))
            row += " %s |" % ("%.2fx" % (t * one / mean) if one and mean else "")
            print(row)


if __name__ == "__main__":
    main()
