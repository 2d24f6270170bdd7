#pragma once
// Keeps a flood of one kind of log line (a bad signature per delivery, a plugin warning per call)
// from flooding the log: per key, at most `burst` lines per window; the rest are counted and the
// next line that passes says how many were left out.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace crmhost::logging {

class LogThrottle {
 public:
  LogThrottle(uint32_t burst, std::chrono::milliseconds window, size_t max_keys = 1024);

  // nullopt: drop this line. Otherwise log it, followed by the returned text (empty, or
  // " (N similar lines suppressed)").
  std::optional<std::string> admit(const std::string &key);

 private:
  struct Slot {
    std::chrono::steady_clock::time_point window_start;
    uint32_t in_window = 0;
    uint64_t suppressed = 0;
  };
  uint32_t burst_;
  std::chrono::milliseconds window_;
  size_t max_keys_;
  std::mutex mutex_;
  std::unordered_map<std::string, Slot> slots_;
};

}  // namespace crmhost::logging
