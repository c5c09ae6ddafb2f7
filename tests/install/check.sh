#!/usr/bin/env bash
# SPDX-License-Identifier: BSL-1.0
# The install test: installs baton into a temporary prefix, then builds and runs consumer.cpp
# against it with pkg-config (plain and --static) and with CMake's find_package(baton); when the
# build has baton_grpc (gRPC was found), grpc_consumer.cpp too, through baton_grpc.pc and
# find_package(baton COMPONENTS grpc).
#   tests/install/check.sh [source folder [meson options...]]   (meson test --suite install)
#   e.g. tests/install/check.sh . -Ddefault_library=shared
# Uses meson, pkg-config, cmake and python3 from PATH, and $CXX (default g++). Exits non-zero,
# saying which step failed, on any failure; the temporary folder goes away either way (unless
# BATON_KEEP_INSTALL_TMP=1, to look at it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "${1:-$here/../..}" && pwd)
shift || true
cxx=${CXX:-g++}
# An environment for the consumers alone: nothing of the calling build's flags leaks in.
unset CXXFLAGS CPPFLAGS LDFLAGS PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR

tmp=$(mktemp -d "${TMPDIR:-/tmp}/baton-install.XXXXXX")
cleanup() {
  if [ "${BATON_KEEP_INSTALL_TMP:-0}" = 1 ]; then
    echo "install test: kept $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT

step=""
log="$tmp/step.log"
fail() {
  echo "install test FAILED at: $step" >&2
  [ $# -gt 0 ] && echo "  $*" >&2
  if [ -s "$log" ]; then
    echo "---- last lines of its output:" >&2
    tail -n 40 "$log" >&2
  fi
  exit 1
}
# run <step description> <command...>: runs the command with its output in $log; fails the test
# with that output when it fails.
run() {
  step=$1
  shift
  echo "== $step"
  "$@" >"$log" 2>&1 || fail "command: $*"
}

for tool in meson pkg-config cmake python3 "$cxx"; do
  step="looking for $tool"
  command -v "$tool" >/dev/null || fail "$tool is not on PATH (./setup.sh deps installs the tools)"
done

prefix="$tmp/prefix"
# Unoptimised (-Dbuildtype=plain, no -O, no -g): this test is about what gets installed and how a
# consumer finds it, and the test takes a third less time (139 s -> 95 s in CI on a 2-core
# machine). Options given to the script come later and win.
run "configure a separate build of $srcdir" \
  meson setup "$tmp/build" "$srcdir" --prefix "$prefix" -Dtests=disabled -Dsamples=disabled \
  -Dbenchmarks=false -Dbuildtype=plain "$@"
run "build libbaton" meson compile -C "$tmp/build"

# The build tree's own baton-uninstalled.pc, which pkg-config prefers when it sees it.
step="find meson-uninstalled/baton-uninstalled.pc"
[ -f "$tmp/build/meson-uninstalled/baton-uninstalled.pc" ] || fail "no baton-uninstalled.pc"
uninstalled_flags=$(PKG_CONFIG_PATH="$tmp/build/meson-uninstalled" \
  pkg-config --cflags --libs baton) || fail "pkg-config cannot read baton-uninstalled.pc"
run "build the consumer against the build tree (baton-uninstalled.pc)" \
  "$cxx" -std=c++20 "$here/consumer.cpp" -o "$tmp/consumer-uninstalled" $uninstalled_flags
run "run the build-tree consumer" \
  env LD_LIBRARY_PATH="$tmp/build/runtime" "$tmp/consumer-uninstalled"

run "meson install into $prefix" meson install -C "$tmp/build"

# baton_grpc is optional: built (and installed) when meson found gRPC.
with_grpc=false
[ -f "$tmp/build/meson-uninstalled/baton_grpc-uninstalled.pc" ] && with_grpc=true
echo "   baton_grpc built: $with_grpc"

step="check the installed headers"
echo "== $step"
missing=()
while IFS= read -r header; do
  [ "$with_grpc" = false ] && [[ "$header" == grpc/* ]] && continue
  [ -f "$prefix/include/baton/$header" ] || missing+=("$header")
done < <(cd "$srcdir/include/baton" && find . -name '*.hpp' | sed 's|^\./||' | sort)
[ ${#missing[@]} -eq 0 ] ||
  fail "not installed (add them to include/baton/meson.build): ${missing[*]}"
[ -n "$(find "$prefix" -name 'libbaton.*' -path '*/lib*')" ] || fail "no libbaton under $prefix"

step="find baton.pc"
pc=$(find "$prefix" -name baton.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "no pkgconfig/baton.pc under $prefix"
export PKG_CONFIG_PATH="$(dirname "$pc")"
run "pkg-config --validate baton" pkg-config --validate baton
cflags=$(pkg-config --cflags baton)
libs=$(pkg-config --libs baton)
static_libs=$(pkg-config --static --libs baton)
echo "   Cflags: $cflags"
echo "   Libs: $libs"
echo "   Libs (--static): $static_libs"
step="check baton.pc's flags"
for want in -std=c++20 -pthread "-I$prefix/include"; do
  [[ " $cflags " == *" $want "* ]] || fail "pkg-config --cflags baton lacks $want: $cflags"
done
for want in -lbaton -pthread; do
  [[ " $libs " == *" $want "* ]] || fail "pkg-config --libs baton lacks $want: $libs"
done

# The documented one-liner, with plain and with static libs. pkg-config gives no rpath, so a
# shared libbaton (-Ddefault_library=shared) is found through LD_LIBRARY_PATH.
libdir=$(pkg-config --variable=libdir baton)
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
run "build the consumer with pkg-config --libs" \
  "$cxx" -std=c++20 "$here/consumer.cpp" -o "$tmp/consumer-pc" $cflags $libs
run "run the pkg-config consumer" "$tmp/consumer-pc"
run "build the consumer with pkg-config --static --libs" \
  "$cxx" -std=c++20 "$here/consumer.cpp" -o "$tmp/consumer-pc-static" $cflags $static_libs
run "run the pkg-config --static consumer" "$tmp/consumer-pc-static"
# The optional part: <baton/spdlog.hpp> with spdlog's own pkg-config file, when spdlog is there.
with_spdlog=false
if pkg-config --exists spdlog; then
  with_spdlog=true
  run "build the spdlog consumer with pkg-config --libs baton spdlog" \
    "$cxx" -std=c++20 "$here/spdlog_consumer.cpp" -o "$tmp/spdlog-pc" \
    $(pkg-config --cflags --libs baton spdlog)
  run "run the pkg-config spdlog consumer" "$tmp/spdlog-pc"
fi

step="find batonConfigVersion.cmake"
version_file=$(find "$prefix" -name batonConfigVersion.cmake -path '*/cmake/baton/*' | head -n 1)
[ -n "$version_file" ] || fail "no cmake/baton/batonConfigVersion.cmake under $prefix"
run "check batonConfigVersion.cmake's answers" \
  cmake -DVERSION_FILE="$version_file" -P "$here/version_check.cmake"

if [ "$with_grpc" = true ]; then
  step="find baton_grpc.pc"
  [ -f "$(dirname "$pc")/baton_grpc.pc" ] || fail "no pkgconfig/baton_grpc.pc beside baton.pc"
  run "pkg-config --validate baton_grpc" pkg-config --validate baton_grpc
  grpc_cflags=$(pkg-config --cflags baton_grpc)
  grpc_libs=$(pkg-config --libs baton_grpc)
  step="check baton_grpc.pc's flags"
  [[ " $grpc_libs " == *" -lbaton_grpc "* ]] || fail "pkg-config --libs baton_grpc lacks -lbaton_grpc"
  [[ " $grpc_libs " == *" -lbaton "* ]] || fail "pkg-config --libs baton_grpc lacks -lbaton"
  run "build the grpc consumer with pkg-config --libs baton_grpc" \
    "$cxx" -std=c++20 "$here/grpc_consumer.cpp" -o "$tmp/grpc-consumer-pc" $grpc_cflags $grpc_libs
  run "run the pkg-config grpc consumer" "$tmp/grpc-consumer-pc"
fi

run "configure the CMake consumer (find_package(baton))" \
  cmake -S "$here" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_COMPILER="$(command -v "$cxx")" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBATON_WITH_GRPC="$([ "$with_grpc" = true ] && echo ON || echo OFF)"
version=$(meson introspect --projectinfo "$tmp/build" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
step="check the version CMake found"
grep -q -- "-- baton $version from " "$log" || fail "CMake did not report baton $version"
run "build the CMake consumer" cmake --build "$tmp/cmake-build"
# CMake links by full path with a build rpath: no LD_LIBRARY_PATH needed.
run "run the CMake consumer" env -u LD_LIBRARY_PATH "$tmp/cmake-build/consumer"
if [ "$with_spdlog" = true ]; then
  step="find the CMake spdlog consumer"
  [ -x "$tmp/cmake-build/spdlog_consumer" ] || fail "CMake did not build spdlog_consumer"
  run "run the CMake spdlog consumer" env -u LD_LIBRARY_PATH "$tmp/cmake-build/spdlog_consumer"
fi
if [ "$with_grpc" = true ]; then
  run "run the CMake grpc consumer (find_package(baton COMPONENTS grpc))" \
    env -u LD_LIBRARY_PATH "$tmp/cmake-build/grpc_consumer"
fi

echo "install test: ok (baton-uninstalled.pc; installed headers, baton.pc plain and --static," \
  "batonConfig.cmake; spdlog lines: $with_spdlog; baton_grpc.pc and baton::grpc: $with_grpc)"
