#pragma once
// The map stage: field rules compiled once per pipeline, applied to each source record (JSON
// object in, JSON object out). See docs/mapping.md for the language.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

namespace crmhost::mapping {

// A problem in the rules, at `path` below the `fields` mapping: {"email", "transform", "1"}.
struct CompileProblem {
  std::vector<std::string> path;
  std::string message;
};

struct Options {
  bool copy_unmapped = false;          // copy source fields no rule reads, unchanged
  std::string default_country = "US";  // for e164 without a country
};

// The outcome of mapping one record: the target's fields, or why the record cannot be mapped
// (a message naming the field and the value).
struct Result {
  bool ok = false;
  std::string json;   // when ok
  std::string error;  // when not
};

class Mapping {
 public:
  struct Rule;
  ~Mapping();
  Mapping(Mapping &&) noexcept;
  Mapping &operator=(Mapping &&) noexcept;

  // Compiles `fields` (a JSON object: target field -> rule). Every problem found is appended to
  // `problems`; the result is usable only when none were.
  static Mapping compile(const rapidjson::Value &fields, const Options &options,
                         std::vector<CompileProblem> &problems);
  // Same, from JSON text; a parse error is a problem at the empty path.
  static Mapping compile(std::string_view fields_json, const Options &options,
                         std::vector<CompileProblem> &problems);

  // Maps one record given as JSON text. Thread-safe.
  Result apply(std::string_view record_json) const;
  size_t rule_count() const { return rules_.size(); }

 private:
  Mapping();
  // Maps a parsed record into `out` (an object allocated with `alloc`); returns an error message.
  // `out` borrows strings from the record and from this Mapping: serialise it before either goes.
  std::optional<std::string> apply(const rapidjson::Value &record, rapidjson::Value &out,
                                   rapidjson::Document::AllocatorType &alloc) const;
  std::vector<std::unique_ptr<Rule>> rules_;
  std::vector<std::string> read_keys_;  // top-level source keys the rules read
  Options options_;
};

// The names every transform is known by (for messages and docs).
const std::vector<std::string> &transform_names();

// Presets: YAML files whose top level holds `fields:` (and optionally `copy_unmapped`), found as
// <dir>/<plugin>/<name>.yaml for a preset named "<plugin>/<name>" in each of `dirs`, in order.
// Returns the file, or nullopt.
std::optional<std::string> find_preset(const std::string &name,
                                       const std::vector<std::string> &dirs);

// Overlays `overrides` on `base` (both JSON objects of field rules): a rule in `overrides`
// replaces the preset's rule of the same target; a null override removes it.
std::string merge_fields(std::string_view base_json, std::string_view overrides_json);

}  // namespace crmhost::mapping
