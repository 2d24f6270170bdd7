#include "util/log_throttle.hpp"

namespace crmhost::logging {

LogThrottle::LogThrottle(uint32_t burst, std::chrono::milliseconds window, size_t max_keys)
    : burst_(burst), window_(window), max_keys_(max_keys) {}

std::optional<std::string> LogThrottle::admit(const std::string &key) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  // Keys come from outside (paths, plugin names); a bounded table forgets quiet ones.
  if (slots_.size() >= max_keys_ && !slots_.count(key)) {
    for (auto it = slots_.begin(); it != slots_.end();)
      it = now - it->second.window_start > window_ ? slots_.erase(it) : std::next(it);
    if (slots_.size() >= max_keys_) slots_.clear();
  }
  Slot &slot = slots_[key];
  if (slot.in_window == 0 || now - slot.window_start > window_) {
    slot.window_start = now;
    slot.in_window = 0;
  }
  if (slot.in_window >= burst_) {
    ++slot.suppressed;
    return std::nullopt;
  }
  ++slot.in_window;
  if (slot.suppressed == 0) return std::string();
  const auto note = " (" + std::to_string(slot.suppressed) + " similar line(s) suppressed)";
  slot.suppressed = 0;
  return note;
}

}  // namespace crmhost::logging
