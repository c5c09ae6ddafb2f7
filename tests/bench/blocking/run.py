#!/usr/bin/env python3
# SPDX-License-Identifier: BSL-1.0
"""Runs to_thread at sustained load on baton, a hand-written Asio bridge and tokio; prints ratios.

    tests/bench/blocking/run.py [--build build-bench] [--threads 1,2] [--min-time 1.0]
                                [--passes 3] [--no-peers]

baton's and Asio's program is <build>/tests/bench/blocking (built here with ninja if missing).
The tokio twin (spawn_blocking) is built offline with cargo against Debian's registry
(/usr/share/cargo/registry, package librust-tokio-dev) under <build>/tokio-peers; when cargo
or the crate is missing it is skipped with a line saying why. For each mode and loop-thread
count the programs run one after another (interleaved, so a noisy spell hits all of them),
--passes times; each figure is the median over the passes of each program's own median time
per call. Ratios are speed-ups of baton: peer time / baton time (above 1: baton is faster).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CARGO_REGISTRY = "/usr/share/cargo/registry"


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def build_blocking(build):
    exe = os.path.join(build, "tests", "bench", "blocking")
    subprocess.run(["ninja", "-C", build, "tests/bench/blocking"], check=True,
                   stdout=subprocess.DEVNULL)
    return exe


def build_tokio(out, src_dir=os.path.join(HERE, "tokio"), exe_name="blocking-tokio"):
    """Builds the cargo project in src_dir offline under out; (exe, None) or (None, why)."""
    cargo = shutil.which("cargo")
    if cargo is None:
        return None, "cargo not found"
    if not os.path.isdir(CARGO_REGISTRY) or \
            not any(d.startswith("tokio-1.") for d in os.listdir(CARGO_REGISTRY)):
        return None, "no tokio 1.x in " + CARGO_REGISTRY + " (apt-get install librust-tokio-dev)"
    src = os.path.join(out, exe_name + "-src")
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(src_dir, src)  # cargo writes Cargo.lock beside it
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
    return os.path.join(out, "tokio-target", "release", exe_name), None


def measure(cmd, min_time):
    r = subprocess.run(cmd + ["--min-time", str(min_time)], capture_output=True, text=True,
                       check=True)
    f = r.stdout.split()
    allocs = float(f[f.index("allocs_per_call") + 1]) if "allocs_per_call" in f else None
    return float(f[f.index("ns_per_call") + 1]), allocs


def fmt_ns(ns):
    return "%.0f ns" % ns if ns < 10000 else "%.1f µs" % (ns / 1000)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build", default="build-bench")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--modes", default="sustained,round-trip")
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--no-peers", action="store_true", help="baton and Asio only")
    a = p.parse_args()

    exe = build_blocking(a.build)
    programs = [("baton", [exe, "--impl", "baton"]), ("asio", [exe, "--impl", "asio"])]
    if not a.no_peers:
        out = os.path.join(os.path.abspath(a.build), "tokio-peers")
        os.makedirs(out, exist_ok=True)
        tokio, why = build_tokio(out)
        if tokio is None:
            note("blocking: tokio skipped: %s" % why)
        else:
            programs.append(("tokio", [tokio]))

    threads = [int(t) for t in a.threads.split(",")]
    modes = a.modes.split(",")
    note("blocking: %s; loop threads %s; %d pass(es); load average %.2f at the start"
         % (", ".join(n for n, _ in programs), threads, a.passes, os.getloadavg()[0]))
    results, allocs = {}, {}
    for mode in modes:
        for t in threads:
            runs = {n: [] for n, _ in programs}
            for _ in range(a.passes):
                for name, cmd in programs:
                    ns, _ = measure(cmd + ["--mode", mode, "--threads", str(t)], a.min_time)
                    runs[name].append(ns)
            for name in runs:
                results[(name, mode, t)] = statistics.median(runs[name])
            for name, cmd in programs[:2]:  # the C++ program counts allocations
                _, allocs[(name, mode, t)] = measure(
                    cmd + ["--mode", mode, "--threads", str(t), "--count-allocs"], 0)
    note("blocking: load average %.2f at the end" % os.getloadavg()[0])
    names = [n for n, _ in programs]
    print("| mode | loop threads |" + "".join(" %s |" % n for n in names) +
          "".join(" %s ÷ baton |" % n for n in names[1:]) + " allocs/call baton / asio |")
    print("|---|---:|" + "---:|" * (2 * len(names) - 1) + "---:|")
    for mode in modes:
        for t in threads:
            base = results[("baton", mode, t)]
            row = "| %s | %d |" % (mode, t)
            row += "".join(" %s |" % fmt_ns(results[(n, mode, t)]) for n in names)
            row += "".join(" %.2fx |" % (results[(n, mode, t)] / base) for n in names[1:])
            row += " %.2f / %.2f |" % (allocs[("baton", mode, t)], allocs[("asio", mode, t)])
            print(row)


if __name__ == "__main__":
    main()
