# SPDX-License-Identifier: BSL-1.0
"""The Python asyncio counterparts of runtime_bench's rows, printed as ns per operation.

    spawn_join                 await asyncio.create_task(empty())
    spawn_join_context_16_vars the same from a task whose context holds 16 ContextVars
                               (12 ints, 4 strings): create_task copies it (a HAMT, O(1))
    nested_await               await next_int(x), a coroutine that returns at once
    yield_sleep_0              await asyncio.sleep(0)

Each row runs its loop inside one asyncio.run(), timed with perf_counter_ns around the loop
only, `--repetitions` times; it prints the median, min and max. docs/benchmarks.md divides
baton's figures by these. Usage: python3 tests/bench/asyncio_bench.py [--repetitions N]
"""

import argparse
import asyncio
import contextvars
import platform
import statistics
import sys
import time

INT_VARS = [contextvars.ContextVar(f"int{i}") for i in range(12)]
STRING_VARS = [contextvars.ContextVar(f"string{i}") for i in range(4)]


async def empty():
    pass


async def next_int(x):
    return x + 1


def set_sixteen_vars():
    for i, var in enumerate(INT_VARS):
        var.set(i)
    for i, var in enumerate(STRING_VARS):
        var.set(f"a value longer than the small-string buffer #{i}")


async def spawn_join(n, populated):
    if populated:
        set_sixteen_vars()  # in this task's own context, which every create_task copies
    start = time.perf_counter_ns()
    for _ in range(n):
        await asyncio.create_task(empty())
    elapsed = time.perf_counter_ns() - start
    if populated:
        # The children really ran in the populated context: check once, outside the timing.
        async def read():
            return INT_VARS[-1].get()

        assert await asyncio.create_task(read()) == 11
    return elapsed


async def nested_await(n):
    x = 0
    start = time.perf_counter_ns()
    for _ in range(n):
        x = await next_int(x)
    elapsed = time.perf_counter_ns() - start
    assert x == n
    return elapsed


async def yield_sleep_0(n):
    start = time.perf_counter_ns()
    for _ in range(n):
        await asyncio.sleep(0)
    return time.perf_counter_ns() - start


ROWS = [
    ("spawn_join", 200_000, lambda n: spawn_join(n, False)),
    ("spawn_join_context_16_vars", 200_000, lambda n: spawn_join(n, True)),
    ("nested_await", 2_000_000, nested_await),
    ("yield_sleep_0", 500_000, yield_sleep_0),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    print(f"asyncio_bench: Python {platform.python_version()} ({platform.python_implementation()}),"
          f" {asyncio.get_event_loop_policy().__class__.__name__}, median of {args.repetitions}")
    for name, n, body in ROWS:
        figures = [asyncio.run(body(n)) / n for _ in range(args.repetitions)]
        print(f"{name:<28} {statistics.median(figures):9.1f} ns/op"
              f"   (min {min(figures):.1f}, max {max(figures):.1f}, {n} ops a run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
