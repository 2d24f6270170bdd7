#pragma once
// Small text helpers shared by the config loader, the mapping compiler, redaction and the admin
// API.
#include <cstddef>
#include <string>
#include <string_view>

namespace crmhost::text {

// Levenshtein distance (insert, delete, substitute), for "did you mean" hints.
size_t edit_distance(std::string_view a, std::string_view b, bool ignore_case = false);

// One UTF-8 sequence: its length in bytes (0 when the bytes at that offset are not valid UTF-8:
// a stray continuation, an overlong form, a surrogate, beyond U+10FFFF or cut short) and its
// code point.
struct Utf8Char {
  size_t length = 0;
  char32_t code_point = 0;
};
Utf8Char decode_utf8(std::string_view text, size_t offset);

bool is_valid_utf8(std::string_view text);

// `text` with each invalid byte replaced by U+FFFD (the replacement character).
std::string to_valid_utf8(std::string_view text);

}  // namespace crmhost::text
