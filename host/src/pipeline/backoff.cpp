#include "pipeline/backoff.hpp"

#include <algorithm>

namespace crmhost::pipeline {

Millis backoff_delay(uint32_t attempt, Millis min, Millis max, Millis retry_after,
                     std::mt19937_64 &rng) {
  const int64_t lo = std::max<int64_t>(0, min.count());
  const int64_t hi_bound = std::max(lo, static_cast<int64_t>(max.count()));
  // Doubling stops at the bound, so the shift can never overflow.
  int64_t ceiling = std::max<int64_t>(lo, 1);
  for (uint32_t i = 1; i < attempt && ceiling < hi_bound; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, hi_bound);
  std::uniform_int_distribution<int64_t> pick(lo, std::max(lo, ceiling));
  return std::max(Millis(pick(rng)), retry_after);
}

}  // namespace crmhost::pipeline
