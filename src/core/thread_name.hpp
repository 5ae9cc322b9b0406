#pragma once
// Names the calling thread (at most 15 characters, Linux's limit), so that top -H, perf
// and /proc/PID/task/*/comm tell the gateway's workers from its background threads.
#include <pthread.h>

#include <string>
#include <string_view>

namespace bulwark {

inline void name_this_thread(std::string_view name) noexcept {
  const std::string n(name.substr(0, 15));
  (void)pthread_setname_np(pthread_self(), n.c_str());
}

}  // namespace bulwark
