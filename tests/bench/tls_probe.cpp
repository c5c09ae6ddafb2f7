// SPDX-License-Identifier: BSL-1.0
// Benchmark probe, built as a -fPIC shared library: a thread_local pointer read from inside it,
// with the default TLS model (global-dynamic: a __tls_get_addr call) and with initial-exec.
// context_bench.cpp calls both; the difference is what the TLS model costs per access.

namespace baton_bench {

int* probe_read_default_tls() noexcept;
int* probe_read_initial_exec_tls() noexcept;

namespace {
int probe_target = 0;
}  // namespace

// Default visibility in a -fPIC build: the compiler must assume interposition, so this is
// global-dynamic. Both are constinit, so neither access goes through a TLS wrapper function.
constinit thread_local int* probe_default_tls = &probe_target;
[[gnu::tls_model("initial-exec")]] constinit thread_local int* probe_initial_exec_tls =
    &probe_target;

int* probe_read_default_tls() noexcept { return probe_default_tls; }
int* probe_read_initial_exec_tls() noexcept { return probe_initial_exec_tls; }

}  // namespace baton_bench
