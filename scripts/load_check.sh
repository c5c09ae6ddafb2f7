#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Load check of the flagship sample, by hand (not in CI): starts build/samples/http_service,
# drives it with wrk over 127.0.0.1 with many concurrent keep-alive connections, gives every
# request its own X-Request-Id and X-User (a wrk Lua script), checks that every response
# carries the id of a request still waiting for its answer and greets that request's user, and
# reports requests/s, latency percentiles and mismatches. Exits non-zero on any mismatch,
# non-2xx response or socket error, or when the service does not shut down cleanly.
#
#   scripts/load_check.sh [--connections 1000] [--duration 15s] [--wrk-threads 2]
#                         [--server-threads N] [--path /hello|/whoami] [--log info|warn]
#                         [--build build] [--no-caps]
# --no-caps lifts the connection and in-flight caps (docs/http-service.md, "Overload") out of
# reach, for the with/without comparison. The summary gives the service's RSS once it listens,
# at the end of the load and at its peak (VmRSS, VmHWM).
# Results and the machine they came from: docs/benchmarks.md, "Flagship service".
set -euo pipefail
cd "$(dirname "$0")/.."

connections=1000
duration=15s
wrk_threads=2
server_threads=$(nproc)
path=/hello
log=warn
build=build
caps=on
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --wrk-threads) wrk_threads=$2; shift 2 ;;
    --server-threads) server_threads=$2; shift 2 ;;
    --path) path=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-caps) caps=off; shift ;;
    *) echo "load_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

command -v wrk >/dev/null || { echo "load_check.sh: wrk is not installed (apt-get install wrk)" >&2; exit 2; }
ninja -C "$build" samples/http_service >/dev/null
binary=$build/samples/http_service

# Every connection is a descriptor in wrk and another in the service (one process each).
need=$((connections + 256))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  ulimit -n "$need" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
  echo "load_check.sh: ulimit -n is $(ulimit -n), $need needed (raise the hard limit)" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/baton-load-check-XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/check.lua" <<'LUA'
-- Each request gets its own X-Request-Id and X-User; each response must carry the id of a
-- request that is still waiting for its answer (an id answered twice, or one never sent, is a
-- mismatch) and must show that request's user. wrk runs one Lua state per thread; done()
-- runs in the main state and collects the counts through the thread objects.
local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("tid", thread_count)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  pending = {}
  matched = 0
  mismatched = 0
  bad_status = 0
end

function request()
  counter = counter + 1
  local id = "w" .. tid .. "-" .. counter
  local user = "u" .. (counter % 97)
  pending[id] = user
  return wrk.format("GET", wrk.path, { ["X-Request-Id"] = id, ["X-User"] = user })
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    bad_status = bad_status + 1
  end
  local id = headers["X-Request-Id"] or headers["x-request-id"]
  local user = id and pending[id]
  if user and (body == "hello, " .. user .. "\n" or
               (string.find(body, '"user":"' .. user .. '"', 1, true) and
                string.find(body, '"request_id":"' .. id .. '"', 1, true))) then
    matched = matched + 1
  else
    mismatched = mismatched + 1
  end
  if id then pending[id] = nil end
end

function done(summary, latency, requests)
  local m, k, b = 0, 0, 0
  for _, t in ipairs(threads) do
    k = k + t:get("matched")
    m = m + t:get("mismatched")
    b = b + t:get("bad_status")
  end
  io.write(string.format("lua: %d responses checked, %d matched, %d mismatched, %d non-2xx\n",
                         k + m, k, m, b))
  io.write(string.format("lua: latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
                         latency:percentile(50) / 1000, latency:percentile(90) / 1000,
                         latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
                         latency.max / 1000))
  io.write(string.format("lua: mismatches=%d\n", m))
end
LUA

server_args=(--port 0 --threads "$server_threads" --log-level "$log")
[ "$log" != warn ] && server_args+=(--log-file "$work/service.log")
[ "$caps" = off ] && server_args+=(--max-connections 10000000 --max-in-flight 10000000)
"$binary" "${server_args[@]}" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$work/server.out")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "load_check.sh: the service did not start" >&2; cat "$work/server.err" >&2; exit 1; }
rss() { awk -v f="$1:" '$1 == f {printf "%.1f MiB", $2 / 1024}' "/proc/$server_pid/status"; }
rss_before=$(rss VmRSS)

echo "== $(nproc) cores; wrk -t$wrk_threads -c$connections -d$duration against $path;" \
  "http_service --threads $server_threads --log-level $log, caps $caps (wrk and the service share the cores)"
wrk -t"$wrk_threads" -c"$connections" -d"$duration" --timeout 10s --latency \
  -s "$work/check.lua" "http://127.0.0.1:$port$path" | tee "$work/wrk.out"

rss_after=$(rss VmRSS)
rss_peak=$(rss VmHWM)
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=
cat "$work/server.out"

rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out")
mismatches=$(sed -n 's/^lua: mismatches=\([0-9]*\)/\1/p' "$work/wrk.out")
non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$work/wrk.out")
errors=$(sed -n 's/.*Socket errors: \(.*\)/\1/p' "$work/wrk.out")
p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.out")
p90=$(awk '$1 == "90%" {print $2}' "$work/wrk.out")
p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
echo "== summary: ${rps:-?} requests/s; latency p50 ${p50:-?}, p90 ${p90:-?}, p99 ${p99:-?};" \
  "${mismatches:-?} mismatched; non-2xx: ${non2xx:-0}; socket errors: ${errors:-none};" \
  "service exit status $status; RSS $rss_before listening, $rss_after after, $rss_peak peak"
if [ "${mismatches:-1}" != 0 ] || [ -n "$non2xx" ] || [ -n "$errors" ] || [ "$status" != 0 ]; then
  echo "load_check.sh: FAILED" >&2
  grep -v '^.*info ' "$work/server.err" | tail -20 >&2 || true
  exit 1
fi
