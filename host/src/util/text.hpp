#pragma once
// Small text helpers shared by the config loader and the mapping compiler.
#include <cstddef>
#include <string_view>

namespace crmhost::text {

// Levenshtein distance (insert, delete, substitute), for "did you mean" hints.
size_t edit_distance(std::string_view a, std::string_view b, bool ignore_case = false);

}  // namespace crmhost::text
