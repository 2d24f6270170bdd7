#pragma once
// The outbound rate limiter of one connection (and bucket): a token bucket from the configured
// budget, adaptive pacing from the provider's rate-limit headers, Retry-After, and a daily quota
// that pauses the connection until its reset. Pure logic on injected clocks, so tests can drive it.
#include <chrono>
#include <cstdint>
#include <deque>
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
  // Daily,Daily-Remaining}, X-RateLimit-{Limit,Remaining,Reset}. HubSpot's windows roll, and
  // their Max and Interval are learnt: from then on no more than Max slots go in any Interval
  // (plus a margin for the calls' travel), counted on the slots this limiter handed out, so
  // calls run at the window's full rate and a window's capacity returns as its oldest calls age
  // out. When a window's remaining budget is lower than these slots explain (another client of
  // the same token), or for X-RateLimit-* (a fixed window ending at Reset), later calls are
  // spread over what is left of it once it runs low; at 0 they wait for its end.
  // `sent`: when the call that brought the response went (default `now`); the provider counted
  // it then, so the slots from a window before it on are the ones it can have counted.
  void observe(Clock::time_point now, WallClock::time_point wall, int status,
               const std::vector<std::pair<std::string, std::string>> &headers,
               std::optional<Clock::time_point> sent = std::nullopt);

  // When a spent daily quota pauses the connection: the wall time of its reset.
  std::optional<WallClock::time_point> paused_until(WallClock::time_point wall) const;

 private:
  void pace(Clock::time_point now, int64_t remaining, int64_t limit, Clock::duration window);
  // A provider's rolling window, learnt from its headers: at most `limit` slots in `length`.
  struct Window {
    int64_t limit = 0;
    Clock::duration length{0};
  };
  // Learns `window` (limit, length) and paces only what the slots handed out do not explain.
  void roll(Window &window, Clock::time_point now, Clock::time_point sent, int64_t remaining,
            int64_t limit, Clock::duration length);

  mutable std::mutex mutex_;
  double rate_per_sec_ = 0;  // 0: no token bucket
  double burst_ = 0;
  double tokens_ = 0;
  Clock::time_point last_refill_{};
  Clock::time_point not_before_{};         // Retry-After, or a window with nothing remaining
  Clock::duration pace_gap_{0};            // adaptive spacing between calls ...
  Clock::time_point pace_until_{};         // ... until the provider's window ends
  Clock::time_point last_slot_{};          // the last slot handed out under pacing
  Window burst_window_, secondly_window_;  // HubSpot's, once a response has named them
  std::deque<Clock::time_point> slots_;    // the slots of two longest windows (20 s at least)
  std::optional<WallClock::time_point> daily_reset_;  // set while the daily quota is spent
};

// Parses Retry-After (delta seconds or an HTTP date) relative to `wall`.
std::optional<Clock::duration> parse_retry_after(std::string_view value,
                                                 WallClock::time_point wall);

}  // namespace crmhost::net
