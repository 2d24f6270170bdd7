#pragma once
// Internals of the configuration loader, shared by its .cpp files (and its tests).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rapidjson/document.h>
#include <yaml-cpp/yaml.h>

#include "config/config.hpp"

namespace crmhost::config::detail {

// yaml-cpp marks are 0-based; problems are 1-based.
SourceLocation location(const std::string &file, const YAML::Mark &mark);

// The result of interpolating one scalar.
struct Interpolated {
  std::string text;
  bool substituted = false;  // held at least one ${...}: the text may be a secret
};

// Expands ${VAR}, ${VAR:-default} (default also when VAR is empty), ${file:PATH} (the file's
// contents, one trailing newline trimmed; a relative PATH is relative to `base_dir`). "$${" is a
// literal "${". Problems are appended to `errors`; they name variables and files, never values.
std::optional<Interpolated> interpolate(std::string_view text,
                                        const std::filesystem::path &base_dir,
                                        std::vector<std::string> &errors);

// While one lives on this thread, interpolate() takes an unset ${VAR} as "" (LoadOptions).
class UnsetVariablesEmpty {
 public:
  explicit UnsetVariablesEmpty(bool on);
  ~UnsetVariablesEmpty();
  UnsetVariablesEmpty(const UnsetVariablesEmpty &) = delete;
  UnsetVariablesEmpty &operator=(const UnsetVariablesEmpty &) = delete;

 private:
  bool previous_;
};

// The JSON type a plain (unquoted) YAML scalar resolves to, YAML 1.2 core schema style:
// null/~, true/false, decimal integers and floats; anything else is a string.
void resolve_plain_scalar(const std::string &text, rapidjson::Value &out,
                          rapidjson::Document::AllocatorType &alloc);

// Whether a scalar node was written plain (not quoted, not a block literal, not !!str).
bool is_plain(const YAML::Node &scalar);

// What one configuration file may hold. Far above any real configuration; they keep a hostile or
// mistaken file (a billion-laughs alias bomb, a self-referring alias, a 100,000-digit number)
// from taking time, memory or stack.
struct YamlBounds {
  size_t max_nodes = 200'000;   // values, counting each alias as often as it expands
  size_t max_depth = 64;        // nesting
  size_t max_scalar = 1 << 20;  // characters in one value
};
inline constexpr uint64_t kMaxConfigFileBytes = 4ULL << 20;
inline constexpr uint64_t kMaxInterpolatedFileBytes = 1ULL << 20;  // ${file:...}

// nullopt when `root` is within `bounds`; else the problem, and `where` is set to its mark.
std::optional<std::string> check_bounds(const YAML::Node &root, const YamlBounds &bounds,
                                        YAML::Mark &where);

// Reports a problem at a mark.
using Report = std::function<void(const YAML::Mark &, std::string message)>;

// Values that came from ${...}, each with the scalar as written: (value, "${file:/x}").
using Substitutions = std::vector<std::pair<std::string, std::string>>;

// Converts a YAML node to JSON, interpolating every scalar. Keys stay as written. Each value
// that came from ${...} is appended to `substitutions` when given.
// Returns false when something could not be converted (reported).
bool yaml_to_json(const YAML::Node &node, const std::filesystem::path &base_dir,
                  rapidjson::Value &out, rapidjson::Document::AllocatorType &alloc,
                  const Report &report, Substitutions *substitutions = nullptr);

// A usable mark for a node: a null node's own mark points past it, so use `fallback` then.
YAML::Mark mark_of(const YAML::Node &node, const YAML::Mark &fallback);

// " (did you mean \"x\"?)" for the candidate closest to `word`, or "" when none is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string> &candidates);

// "a, b, c"
std::string join(const std::vector<std::string> &items, std::string_view separator = ", ");

// Validates `instance` (a connection's settings as JSON) against the plugin's `schema_json`.
// `settings` is the YAML node they came from (undefined when absent), `settings_mark` the
// `settings:` key (or the connection's name when absent), `owner` e.g. `connection "x"`.
// Reports every violation it can find, at the offending key or value; never prints values.
void check_settings_schema(const std::string &schema_json, const rapidjson::Value &instance,
                           const YAML::Node &settings, const YAML::Mark &settings_mark,
                           const std::string &owner, const Report &report);

}  // namespace crmhost::config::detail
