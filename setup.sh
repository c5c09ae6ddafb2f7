#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# One entry point for a fresh Debian 12 machine: installs what is missing, configures, builds, runs.
#
#   ./setup.sh sample                 build and run the flagship sample (two processes with gRPC)
#   ./setup.sh test                   build and run the whole test suite; last line "N passed, N failed"
#   ./setup.sh bench                  build and run the benchmarks (see docs/benchmarks.md)
#   ./setup.sh deps                   only install the Debian packages
# Options (after the command):
#   --sanitize=address   AddressSanitizer + UndefinedBehaviorSanitizer (build folder build-asan)
#   --sanitize=thread    ThreadSanitizer (build folder build-tsan)
#   --werror             warnings are errors (CI uses it)
#   --suites=a,b         build and run only these test suites (meson suites: context, tasks,
#                        asio, threads, bridge, sync, trace, logging, grpc, samples, http,
#                        install, compile_fail)
#   --no-samples         do not build the samples (nor run them as tests)
# Safe to run again: packages already present are skipped, a configured build folder is reused.
set -euo pipefail
cd "$(dirname "$0")"

packages=(g++ meson ninja-build pkg-config cmake libboost1.81-dev libboost-context1.81-dev doctest-dev
  libbenchmark-dev libspdlog-dev libsqlite3-dev libboost-url1.81-dev libssl-dev python3
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc zlib1g-dev)

install_deps() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: missing Debian packages: ${missing[*]}" >&2
    echo "setup.sh: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

cmd=${1:-test}
shift || true
sanitize=none
werror=false
suites=""
samples=enabled
for a in "$@"; do
  case "$a" in
    --suites=*) suites=${a#--suites=} ;;
    --no-samples) samples=disabled ;;
    --sanitize=address) sanitize=address ;;
    --sanitize=thread) sanitize=thread ;;
    --sanitize=none) sanitize=none ;;
    --werror) werror=true ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

case "$sanitize" in
  address) builddir=build-asan; meson_sanitize=address,undefined ;;
  thread) builddir=build-tsan; meson_sanitize=thread ;;
  *) builddir=build; meson_sanitize=none ;;
esac
[ "$cmd" = bench ] && builddir=build-bench

configure() {
  local opts=(-Db_sanitize="$meson_sanitize" -Dwerror="$werror" -Dbenchmarks=false
    -Dsamples="$samples")
  if [ "$cmd" = bench ]; then
    opts=(-Dbuildtype=release -Db_ndebug=true -Dbenchmarks=true -Dwerror="$werror")
  fi
  if [ "$sanitize" != none ]; then opts+=(-Db_lundef=false); fi
  # The sanitizer builds trade optimisation for compile time: the sanitizers find what they find
  # at any level, and the plain build covers the optimiser at -O2. Under ASan + UBSan, g++ 12
  # optimises coroutine-heavy code slowly (tests/grpc_server_metadata_test.cpp: 51 s at -O1,
  # 20 s at -O0), so -O0; TSan at -O1, its documentation's lowest recommended level (15 s
  # against 20 s at -O2 for the same file).
  case "$sanitize" in
    address) opts+=(-Doptimization=0) ;;
    thread) opts+=(-Doptimization=1) ;;
  esac
  if [ -f "$builddir/build.ninja" ]; then
    meson configure "$builddir" "${opts[@]}" >/dev/null
  else
    meson setup "$builddir" "${opts[@]}" >/dev/null
  fi
}

# Sums doctest's per-executable counts from meson's log; an executable that died before
# printing its summary counts as one failed test case, and so does a meson test run that
# failed ($1, its status) with no failure in the log (it could not start a test at all).
count_cases() {
  python3 - "$builddir/meson-logs/testlog.json" "$1" <<'PY'
import json, os, re, sys
passed = failed = 0
log = sys.argv[1]
for line in (open(log) if os.path.exists(log) else []):
    t = json.loads(line)
    m = re.search(r"test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed", t.get("stdout", "") or "")
    if m:
        passed += int(m.group(2)); failed += int(m.group(3))
        if t.get("returncode", 0) != 0 and int(m.group(3)) == 0:
            failed += 1
    else:
        if t.get("returncode", 0) == 0 and t.get("result") == "OK":
            passed += 1
        else:
            failed += 1
if int(sys.argv[2]) != 0 and failed == 0:
    failed = 1
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
}

install_deps
[ "$cmd" = deps ] && exit 0
configure

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

case "$cmd" in
  sample)
    ninja -C "$builddir" samples/http_service 2>/dev/null || ninja -C "$builddir"
    # With gRPC (meson found it: the build has notes_backend), the two-process flagship first:
    # the HTTP service calling samples/notes_backend over gRPC. Without gRPC, one process.
    if grep -q '^build samples/notes_backend:' "$builddir/build.ninja"; then
      ninja -C "$builddir" samples/notes_backend
      "$builddir/samples/http_service" --self-test 50 --two-process
    else
      echo "setup.sh: gRPC not found (libgrpc++-dev, protobuf-compiler-grpc): the flagship runs as one process"
    fi
    if [ -x "$builddir/samples/http_service" ]; then
      exec "$builddir/samples/http_service" --self-test 200
    fi
    exec "$builddir/samples/request_context"
    ;;
  test)
    suite_args=()
    if [ -n "$suites" ]; then
      # Build only the executables those suites run, then run them without a full rebuild.
      # Regenerate first if a meson.build changed, so the introspection below sees its tests.
      ninja -C "$builddir" build.ninja >/dev/null
      IFS=, read -r -a wanted <<<"$suites"
      for w in "${wanted[@]}"; do suite_args+=(--suite "$w"); done
      mapfile -t targets < <(python3 -c '
import json, os, subprocess, sys
wanted = set(sys.argv[2].split(","))
root = os.path.abspath(sys.argv[1])
def introspect(what):
    return json.loads(subprocess.check_output(["meson", "introspect", root, what]))
files = {t["id"]: t["filename"] for t in introspect("--targets")}
for t in introspect("--tests"):
    if wanted & {s.split(":")[-1] for s in t["suite"]}:
        # The test, an executable it is given (suite http), one it starts (depends: samples).
        exes = t["cmd"] + [f for d in t.get("depends", []) for f in files.get(d, [])]
        for exe in exes:
            if exe.startswith(root + "/"):
                print(os.path.relpath(exe, root))
' "$builddir" "$suites" | sort -u)
      ninja -C "$builddir" "${targets[@]}"
      suite_args+=(--no-rebuild)
    else
      ninja -C "$builddir"
    fi
    rm -f "$builddir/meson-logs/testlog.json"  # a run that fails to start leaves no old counts
    set +e
    meson test -C "$builddir" --print-errorlogs --num-processes 2 "${suite_args[@]}" \
      >"$builddir/meson-test.out" 2>&1
    status=$?
    set -e
    grep -E "^ *[0-9]+/[0-9]+ " "$builddir/meson-test.out" || true
    [ $status -ne 0 ] && tail -n 80 "$builddir/meson-test.out"
    count_cases "$status"
    ;;
  bench)
    ninja -C "$builddir"
    for b in "$builddir"/tests/bench/*_bench; do
      echo "== $(basename "$b")"
      "$b" --benchmark_min_time=0.2
    done
    if [ -f tests/bench/asyncio_bench.py ]; then
      echo "== asyncio_bench.py"
      python3 tests/bench/asyncio_bench.py
    fi
    ;;
  *) echo "setup.sh: unknown command $cmd (sample, test, bench, deps)" >&2; exit 2 ;;
esac
