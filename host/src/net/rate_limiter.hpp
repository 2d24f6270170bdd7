#pragma once
// The outbound rate limiter of one connection (and bucket): a token bucket from the configured
// budget, adaptive pacing from the provider's rate-limit headers, Retry-After, and a daily quota
// that pauses the connection until its reset. Pure logic on injected clocks, so tests can drive it.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmhost::net {

struct RateSpec {
  uint32_t requests = 0;  // 0: no configured limit (adaptive pacing still applies)
  std::chrono::milliseconds per{0};
  uint32_t burst = 0;  // 0: the same as requests
};

using Clock = std::chrono::steady_clock;
using WallClock = std::chrono::system_clock;

class RateLimiter {
 public:
  explicit RateLimiter(RateSpec spec = {});
  // A new configured budget (a reload): what the provider's headers taught stays, including a
  // spent daily quota; tokens above the new burst are dropped.
  void set_spec(RateSpec spec);

  struct Grant {
    bool granted = false;
    Clock::duration wait{0};         // granted: sleep this long first
    Clock::duration retry_after{0};  // refused: the earliest the call could go
    std::string reason;              // refused: why ("daily quota spent", "rate limit")
  };
  // Reserves the next slot. Refuses (reserving nothing) when the slot is more than `max_wait`
  // away, e.g. while a spent daily quota pauses the connection.
  Grant acquire(Clock::time_point now, WallClock::time_point wall, Clock::duration max_wait);

  // Reads a response's rate-limit headers (case-insensitive): Retry-After,
  // X-HubSpot-RateLimit-{Max,Remaining,Interval-Milliseconds,Secondly,Secondly-Remaining,
  // Daily,Daily-Remaining}, X-RateLimit-{Limit,Remaining,Reset}. When the remaining budget of a
  // window runs low, later calls are spread over what is left of it; at 0 they wait for its end.
  void observe(Clock::time_point now, WallClock::time_point wall, int status,
               const std::vector<std::pair<std::string, std::string>> &headers);

  // When a spent daily quota pauses the connection: the wall time of its reset.
  std::optional<WallClock::time_point> paused_until(WallClock::time_point wall) const;

 private:
  void pace(Clock::time_point now, int64_t remaining, int64_t limit, Clock::duration window);

  mutable std::mutex mutex_;
  double rate_per_sec_ = 0;  // 0: no token bucket
  double burst_ = 0;
  double tokens_ = 0;
  Clock::time_point last_refill_{};
  Clock::time_point not_before_{};  // Retry-After, or a window with nothing remaining
  Clock::duration pace_gap_{0};     // adaptive spacing between calls ...
  Clock::time_point pace_until_{};  // ... until the provider's window ends
  Clock::time_point last_slot_{};   // the last slot handed out under pacing
  std::optional<WallClock::time_point> daily_reset_;  // set while the daily quota is spent
};

// Parses Retry-After (delta seconds or an HTTP date) relative to `wall`.
std::optional<Clock::duration> parse_retry_after(std::string_view value,
                                                 WallClock::time_point wall);

}  // namespace crmhost::net
