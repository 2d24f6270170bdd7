#pragma once
// Exponential backoff with full jitter, bounded by the pipeline's configured range.
#include <chrono>
#include <cstdint>
#include <random>

namespace crmhost::pipeline {

using Millis = std::chrono::milliseconds;

// The delay before retry number `attempt` (1 = the first retry): uniform in
// [min, min(max, min * 2^(attempt-1))], and never below `retry_after` (a provider's Retry-After).
Millis backoff_delay(uint32_t attempt, Millis min, Millis max, Millis retry_after,
                     std::mt19937_64 &rng);

}  // namespace crmhost::pipeline
