#include "net/rate_limiter.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <iomanip>
#include <sstream>

#include <boost/algorithm/string/predicate.hpp>

namespace crmhost::net {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

std::optional<int64_t> number(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

std::optional<int64_t> header_number(
    const std::vector<std::pair<std::string, std::string>> &headers, std::string_view name) {
  for (const auto &[k, v] : headers)
    if (boost::algorithm::iequals(k, name)) return number(v);
  return std::nullopt;
}

// What a slot keeps from the window's edge: the calls' travel to the provider varies, and a call
// that arrives sooner than the one a window before it would find the window still full.
Clock::duration margin(Clock::duration window) {
  return window / 100 + milliseconds(5);
}

WallClock::time_point next_utc_midnight(WallClock::time_point wall) {
  using days = std::chrono::duration<int64_t, std::ratio<86400>>;
  return std::chrono::time_point_cast<days>(wall) + days(1);
}

}  // namespace

std::optional<Clock::duration> parse_retry_after(std::string_view value,
                                                 WallClock::time_point wall) {
  if (auto secs = number(value)) return std::chrono::seconds(std::min<int64_t>(*secs, 86400 * 7));
  std::tm tm{};
  std::istringstream in{std::string(value)};
  in >> std::get_time(&tm, "%a, %d %b %Y %H:%M:%S");
  if (in.fail()) return std::nullopt;
  const auto at = WallClock::from_time_t(timegm(&tm));
  if (at <= wall) return Clock::duration{0};
  return duration_cast<Clock::duration>(at - wall);
}

RateLimiter::RateLimiter(RateSpec spec) {
  if (spec.requests > 0 && spec.per.count() > 0) {
    rate_per_sec_ = spec.requests * 1000.0 / static_cast<double>(spec.per.count());
    burst_ = spec.burst > 0 ? spec.burst : spec.requests;
    tokens_ = burst_;
  }
}

void RateLimiter::set_spec(RateSpec spec) {
  std::lock_guard lock(mutex_);
  const bool had_bucket = rate_per_sec_ > 0;
  if (spec.requests > 0 && spec.per.count() > 0) {
    rate_per_sec_ = spec.requests * 1000.0 / static_cast<double>(spec.per.count());
    burst_ = spec.burst > 0 ? spec.burst : spec.requests;
    tokens_ = had_bucket ? std::min(tokens_, burst_) : burst_;
  } else {
    rate_per_sec_ = 0;
    burst_ = 0;
    tokens_ = 0;
  }
}

RateLimiter::Grant RateLimiter::acquire(Clock::time_point now, WallClock::time_point wall,
                                        Clock::duration max_wait) {
  std::lock_guard lock(mutex_);
  Grant grant;
  if (daily_reset_ && wall < *daily_reset_) {
    const auto left = duration_cast<Clock::duration>(*daily_reset_ - wall);
    if (left > max_wait) {
      grant.retry_after = left;
      grant.reason = "daily quota spent";
      return grant;
    }
  } else {
    daily_reset_.reset();
  }
  if (last_refill_ == Clock::time_point{}) last_refill_ = now;
  if (rate_per_sec_ > 0 && now > last_refill_) {
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_refill_).count() *
                                             rate_per_sec_);
    last_refill_ = now;
  }
  Clock::time_point ready = std::max(now, not_before_);
  if (rate_per_sec_ > 0 && tokens_ < 1) {
    const auto deficit = std::chrono::duration<double>((1 - tokens_) / rate_per_sec_);
    ready = std::max(ready, now + duration_cast<Clock::duration>(deficit));
  }
  if (pace_gap_.count() > 0 && ready < pace_until_ && last_slot_ != Clock::time_point{})
    ready = std::max(ready, last_slot_ + pace_gap_);
  // A learnt rolling window: the slot goes once the limit-th latest slot has left it.
  for (const Window *w : {&burst_window_, &secondly_window_}) {
    if (w->limit <= 0 || static_cast<int64_t>(slots_.size()) < w->limit) continue;
    const auto edge = slots_[slots_.size() - static_cast<size_t>(w->limit)];
    ready = std::max(ready, edge + w->length + margin(w->length));
  }
  if (daily_reset_)
    ready = std::max(ready, now + duration_cast<Clock::duration>(*daily_reset_ - wall));
  if (ready - now > max_wait) {
    grant.retry_after = ready - now;
    grant.reason = "rate limit";
    return grant;
  }
  if (rate_per_sec_ > 0) tokens_ -= 1;  // may go negative: a slot reserved in the future
  last_slot_ = ready;
  // Kept before any window is learnt too: the calls that taught it count in it. Two windows'
  // worth: observe() counts a window back from when a call went, which may be a while ago.
  slots_.insert(std::upper_bound(slots_.begin(), slots_.end(), ready), ready);
  const Clock::duration keep = 2 * std::max({burst_window_.length, secondly_window_.length,
                                             Clock::duration(milliseconds(10'000))});
  while (!slots_.empty() && slots_.front() < now - keep) slots_.pop_front();
  grant.granted = true;
  grant.wait = ready - now;
  return grant;
}

void RateLimiter::pace(Clock::time_point now, int64_t remaining, int64_t limit,
                       Clock::duration window) {
  if (window.count() <= 0) return;
  // Slow down once a tenth (at least 2 calls) of the window's budget is left.
  const int64_t low = std::max<int64_t>(2, limit > 0 ? limit / 10 : 2);
  if (remaining == 0) {
    not_before_ = std::max(not_before_, now + window);
  } else if (remaining <= low) {
    pace_gap_ = std::max(pace_gap_, window / (remaining + 1));
    pace_until_ = std::max(pace_until_, now + window);
  }
}

void RateLimiter::roll(Window &window, Clock::time_point now, Clock::time_point sent,
                       int64_t remaining, int64_t limit, Clock::duration length) {
  if (limit <= 0 || length.count() <= 0) {
    pace(now, remaining, limit, length);
    return;
  }
  window.limit = limit;
  window.length = length;
  // Ours the provider can have counted: the slots already due, from a window before the call.
  int64_t ours = 0;
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it) {
    if (*it > now) continue;
    if (*it <= sent - length) break;
    ++ours;
  }
  // More used than ours explain: someone else spends this budget too, which the slots cannot
  // see coming; the remaining budget is spread as before.
  if (limit - remaining > ours) pace(now, remaining, limit, length);
}

void RateLimiter::observe(Clock::time_point now, WallClock::time_point wall, int status,
                          const std::vector<std::pair<std::string, std::string>> &headers,
                          std::optional<Clock::time_point> sent_at) {
  std::lock_guard lock(mutex_);
  const Clock::time_point sent = std::min(now, sent_at.value_or(now));
  if (now >= pace_until_) pace_gap_ = Clock::duration{0};
  for (const auto &[k, v] : headers) {
    if (!boost::algorithm::iequals(k, "Retry-After")) continue;
    if (auto d = parse_retry_after(v, wall)) not_before_ = std::max(not_before_, now + *d);
  }
  // HubSpot: a burst window of Interval-Milliseconds, a secondly one and a daily quota.
  if (auto remaining = header_number(headers, "X-HubSpot-RateLimit-Remaining")) {
    const auto interval = header_number(headers, "X-HubSpot-RateLimit-Interval-Milliseconds");
    roll(burst_window_, now, sent, *remaining,
         header_number(headers, "X-HubSpot-RateLimit-Max").value_or(0),
         milliseconds(interval.value_or(10'000)));
  }
  if (auto remaining = header_number(headers, "X-HubSpot-RateLimit-Secondly-Remaining"))
    roll(secondly_window_, now, sent, *remaining,
         header_number(headers, "X-HubSpot-RateLimit-Secondly").value_or(0),
         std::chrono::seconds(1));
  if (auto daily = header_number(headers, "X-HubSpot-RateLimit-Daily-Remaining");
      daily && *daily == 0)
    daily_reset_ = next_utc_midnight(wall);
  // The common X-RateLimit-*: Reset is delta seconds, or Unix seconds when large.
  if (auto remaining = header_number(headers, "X-RateLimit-Remaining")) {
    Clock::duration window = std::chrono::seconds(1);
    if (auto reset = header_number(headers, "X-RateLimit-Reset")) {
      const int64_t wall_s =
          std::chrono::duration_cast<std::chrono::seconds>(wall.time_since_epoch()).count();
      window = std::chrono::seconds(*reset > 1'000'000'000 ? std::max<int64_t>(0, *reset - wall_s)
                                                           : *reset);
    }
    pace(now, *remaining, header_number(headers, "X-RateLimit-Limit").value_or(0), window);
  }
  (void)status;
}

std::optional<WallClock::time_point> RateLimiter::paused_until(WallClock::time_point wall) const {
  std::lock_guard lock(mutex_);
  if (daily_reset_ && wall < *daily_reset_) return daily_reset_;
  return std::nullopt;
}

}  // namespace crmhost::net
