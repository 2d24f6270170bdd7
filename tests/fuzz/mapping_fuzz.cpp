// libFuzzer target for the map stage: the rule compiler and the transform chain.
// Input: "<rules JSON>\n---\n<record JSON>" compiles the rules and maps the record; input
// without the separator is a record mapped through fixed rules that use every transform.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "mapping/mapping.hpp"
#include "util/json.hpp"

namespace {

// A mapped record is valid JSON and written exactly as RapidJSON's Writer would write it.
void check_output(const crmhost::mapping::Result &r) {
  if (r.ok == !r.error.empty()) __builtin_trap();
  if (!r.ok) return;
  rapidjson::Document d;
  if (crmhost::json::try_parse(r.json, d, "output")) __builtin_trap();
  if (crmhost::json::to_string(d) != r.json) __builtin_trap();
}

constexpr std::string_view kAllTransforms = R"({
  "a": {"from": "a|b.c|d[0]", "transform": ["trim", "lower", "upper", "title"]},
  "n": {"from": "n|a", "transform": ["number", {"multiply": 3.5}, "*100", {"divide": 7}, "/2",
                                     {"round": 2}, "string"]},
  "p": {"from": "p|a", "transform": ["e164"]},
  "q": {"from": "q|a", "transform": [{"e164": "GB"}]},
  "t": {"from": "t|a|n", "transform": ["datetime"]},
  "u": {"from": "u|a|n", "transform": ["date"]},
  "s": {"from": "s|a", "transform": ["split", {"picklist": {"x": "X", "1": 2}}, {"join": ","}]},
  "v": {"from": "v|a", "transform": [{"split": ","}, "join", "bool"]},
  "w": {"from": "w|a", "picklist": {"values": {"a": {"k": [1]}}, "unknown": {"default": null}}},
  "x": {"from": "CF[NAME=x].VALUE|a", "default": 0, "required": true},
  "y.z": {"const": [1, "two", {"three": 3}]}
})";

const crmhost::mapping::Mapping &fixed() {
  static const crmhost::mapping::Mapping m = [] {
    std::vector<crmhost::mapping::CompileProblem> problems;
    auto compiled = crmhost::mapping::Mapping::compile(kAllTransforms, {}, problems);
    if (!problems.empty()) __builtin_trap();
    return compiled;
  }();
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view input(reinterpret_cast<const char *>(data), size);
  const auto split = input.find("\n---\n");
  if (split == std::string_view::npos) {
    check_output(fixed().apply(input));
    return 0;
  }
  crmhost::mapping::Options options;
  options.copy_unmapped = size % 2 == 0;
  std::vector<crmhost::mapping::CompileProblem> problems;
  auto mapping = crmhost::mapping::Mapping::compile(input.substr(0, split), options, problems);
  if (problems.empty()) {
    check_output(mapping.apply(input.substr(split + 5)));
  }
  return 0;
}
