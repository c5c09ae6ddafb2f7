#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# The subproject test: a tiny meson project with baton as its subproject (through
# packaging/baton.wrap and a checkout in subprojects/baton) builds and runs consumer.cpp, and
# baton's tests and samples are not part of its build.
#   tests/install/subproject_check.sh [source folder]   (meson test --suite install)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "${1:-$here/../..}" && pwd)
unset CXXFLAGS CPPFLAGS LDFLAGS

tmp=$(mktemp -d "${TMPDIR:-/tmp}/baton-subproject.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log="$tmp/step.log"
step=""
fail() {
  echo "subproject test FAILED at: $step" >&2
  [ $# -gt 0 ] && echo "  $*" >&2
  [ -s "$log" ] && tail -n 40 "$log" >&2
  exit 1
}
run() {
  step=$1
  shift
  echo "== $step"
  "$@" >"$log" 2>&1 || fail "command: $*"
}

# The consumer project, as the reference page shows it: the wrap file in subprojects/, and
# dependency('baton') found through the wrap's [provide] section (no subproject() call).
app="$tmp/app"
mkdir -p "$app/subprojects"
cp "$here/consumer.cpp" "$app/"
cp "$srcdir/packaging/baton.wrap" "$app/subprojects/"
cat >"$app/meson.build" <<'MESON'
project('app', 'cpp', default_options: ['cpp_std=c++20'])
executable('app', 'consumer.cpp', dependencies: dependency('baton'))
MESON
# The checkout meson would clone: a copy of the sources (not a symlink: meson wants the
# subproject inside the project), without build folders.
step="copy the baton sources into subprojects/baton"
echo "== $step"
mkdir "$app/subprojects/baton"
(cd "$srcdir" && tar -cf - --exclude='./build*' --exclude=./.git --exclude=./subprojects .) |
  (cd "$app/subprojects/baton" && tar -xf -) || fail

# Unoptimised and without debug info (-Dbuildtype=plain): the test is about the wrap, not speed.
run "configure the consumer project" meson setup "$tmp/build" "$app" -Dbuildtype=plain
step="check that baton's tests and samples are off in a subproject"
for target in context_var_test request_context; do
  ! grep -q "$target" "$tmp/build/build.ninja" || fail "$target is part of the consumer's build"
done
run "build the consumer" meson compile -C "$tmp/build"
run "run the consumer" "$tmp/build/app"
echo "subproject test: ok (wrap [provide], tests and samples off)"
