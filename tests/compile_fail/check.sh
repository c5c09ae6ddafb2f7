#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# Compile-fail checks: each snippet here is an ordinary mistake that must not compile, and the
# first error line the compiler prints must say what to write instead. A snippet names that
# text in a line `// expect: <text>`.
#   tests/compile_fail/check.sh <compiler> <baton include dir> [snippets...]
# (meson test --suite compile_fail). Exits non-zero naming each snippet that compiled or whose
# first error line lacks its text.
set -uo pipefail

cxx=$1
include=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then set -- "$here"/*.cpp; fi

failed=0
for snippet in "$@"; do
  name=$(basename "$snippet")
  expect=$(sed -n 's|^// expect: ||p' "$snippet" | head -n 1)
  if [ -z "$expect" ]; then
    echo "FAIL $name: no '// expect: ' line"
    failed=1
    continue
  fi
  if out=$("$cxx" -std=c++20 -fsyntax-only -fno-diagnostics-color -I"$include" "$snippet" 2>&1); then
    echo "FAIL $name: compiled, but must not"
    failed=1
    continue
  fi
  first=$(printf '%s\n' "$out" | grep -m 1 -E '(^|: )error: ' || true)
  if [[ "$first" == *"$expect"* ]]; then
    echo "ok   $name: ${first#*error: }"
  else
    echo "FAIL $name: the first error line lacks '$expect':"
    echo "     $first"
    failed=1
  fi
done
exit $failed
