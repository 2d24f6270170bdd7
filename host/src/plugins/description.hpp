#pragma once
// What a plugin says about itself in describe(), validated and typed.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace crmhost::plugins {

struct ObjectDescription {
  std::string name;      // "contact", "company", "deal", or provider-specific
  std::string id_field;  // the provider's id property, for information
};

struct PluginDescription {
  std::string name;
  std::string display_name;
  std::vector<ObjectDescription> objects;
  std::vector<std::string> capabilities;  // "check", "poll", "fetch", "push", "webhook", "cancel"
  std::vector<std::string>
      push_modes;  // "upsert", "create", "update", "delete", "match", "archive"
  // The match-key normalisation steps its push lookups honour ("trim", "lower").
  std::vector<std::string> match_normalize;
  uint32_t max_batch = 1;
  std::string settings_schema_json;  // a JSON Schema; "{}" when the plugin gives none
  // The provider's documented limits, by rate-limit bucket ("default" is the connection's own):
  // what the host applies when the connection's configuration sets none.
  struct RateLimit {
    uint32_t requests = 0;
    uint32_t per_ms = 0;
    uint32_t burst = 0;  // 0: the same as requests
  };
  std::vector<std::pair<std::string, RateLimit>> rate_limits;
  std::string raw_json;  // the whole description as the plugin sent it

  bool has_capability(std::string_view capability) const;
  bool has_object(std::string_view object) const;
};

// The capabilities the host knows; describe may name only these.
const std::vector<std::string> &known_capabilities();

// Parses and validates a describe() result; the error names the offending member.
std::optional<PluginDescription> parse_description(std::string_view json, std::string &error);

}  // namespace crmhost::plugins
