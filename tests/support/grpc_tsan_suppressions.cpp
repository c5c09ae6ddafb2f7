// SPDX-License-Identifier: BSL-1.0
// For the grpc tests under ThreadSanitizer: Debian's gRPC, Abseil, protobuf and upb (the parser
// gRPC's core uses) are not built with -fsanitize=thread, so TSan sees their memory only through
// libc's interceptors (memmove, epoll) and none of their locks, and reports races between their
// own threads. The same holds for gRPC's C++ wrappers inlined from <grpcpp/...>: an operation
// set written there before the core (which TSan cannot see) hands it to another thread. Reports
// with a frame in those libraries or headers are theirs to answer for; baton's side (the
// queue's thread, the posts to the loop, the tasks) has no such frame and is still checked.
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libgrpc.so\n"
         "called_from_lib:libgrpc++.so\n"
         "called_from_lib:libgpr.so\n"
         "called_from_lib:libprotobuf.so\n"
         "called_from_lib:libupb.so\n"
         "race:libgrpc.so\n"
         "race:libgrpc++.so\n"
         "race:libgpr.so\n"
         "race:libabsl_\n"
         "race:libprotobuf.so\n"
         "race:libupb.so\n"
         "race:/usr/include/grpcpp/\n"
         "deadlock:libgrpc.so\n"
         "deadlock:libabsl_\n";
}

// The longest access history TSan keeps (the default drops the older stack of such a report
// under load, and a report whose stack is lost cannot match the suppressions above).
extern "C" const char* __tsan_default_options() { return "history_size=7"; }
