#pragma once
// Parsing and printing the timestamps that cross the host: ISO 8601 in UTC or with an offset.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace crmhost::timeutil {

// Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fff]]" with "Z", "+HH:MM", "+HHMM" or no zone
// (read as UTC), a space allowed instead of "T". Returns Unix milliseconds.
std::optional<int64_t> parse_iso8601_ms(std::string_view text);

// "2026-11-22T10:00:00.000Z"
std::string format_iso8601_ms(int64_t unix_ms);

}  // namespace crmhost::timeutil
