#include "plugins/description.hpp"

#include <algorithm>

#include "util/json.hpp"

namespace crmhost::plugins {

bool PluginDescription::has_capability(std::string_view capability) const {
  return std::find(capabilities.begin(), capabilities.end(), capability) != capabilities.end();
}

bool PluginDescription::has_object(std::string_view object) const {
  return std::any_of(objects.begin(), objects.end(),
                     [&](const ObjectDescription &o) { return o.name == object; });
}

const std::vector<std::string> &known_capabilities() {
  static const std::vector<std::string> all = {"check", "poll",    "fetch",
                                               "push",  "webhook", "cancel"};
  return all;
}

namespace {

bool read_string_array(const rapidjson::Value &root, const char *key, bool required,
                       std::vector<std::string> &out, std::string &error) {
  auto it = root.FindMember(key);
  if (it == root.MemberEnd()) {
    if (required) error = std::string("\"") + key + "\" is missing";
    return !required;
  }
  if (!it->value.IsArray()) {
    error = std::string("\"") + key + "\" must be an array of strings";
    return false;
  }
  for (const auto &item : it->value.GetArray()) {
    if (!item.IsString()) {
      error = std::string("\"") + key + "\" must be an array of strings";
      return false;
    }
    out.emplace_back(item.GetString(), item.GetStringLength());
  }
  return true;
}

}  // namespace

std::optional<PluginDescription> parse_description(std::string_view text, std::string &error) {
  rapidjson::Document doc;
  if (auto parse_error = json::try_parse(text, doc, "the description")) {
    error = *parse_error;
    return std::nullopt;
  }
  if (!doc.IsObject()) {
    error = "the description must be a JSON object";
    return std::nullopt;
  }
  PluginDescription d;
  d.raw_json.assign(text);
  auto name = json::get_string(doc, "name");
  if (!name || name->empty()) {
    error = "\"name\" is missing or not a string";
    return std::nullopt;
  }
  d.name = *name;
  d.display_name = json::get_string(doc, "display_name").value_or(d.name);

  auto objects = doc.FindMember("objects");
  if (objects == doc.MemberEnd() || !objects->value.IsArray()) {
    error = "\"objects\" must be an array";
    return std::nullopt;
  }
  for (const auto &o : objects->value.GetArray()) {
    auto object_name = json::get_string(o, "name");
    if (!object_name || object_name->empty()) {
      error = "every entry of \"objects\" needs a \"name\" string";
      return std::nullopt;
    }
    d.objects.push_back({*object_name, json::get_string(o, "id_field").value_or("id")});
  }
  if (!read_string_array(doc, "capabilities", true, d.capabilities, error) ||
      !read_string_array(doc, "push_modes", false, d.push_modes, error) ||
      !read_string_array(doc, "match_normalize", false, d.match_normalize, error))
    return std::nullopt;
  for (const auto &capability : d.capabilities) {
    const auto &known = known_capabilities();
    if (std::find(known.begin(), known.end(), capability) == known.end()) {
      error = "unknown capability \"" + capability + "\"";
      return std::nullopt;
    }
  }
  if (auto batch = doc.FindMember("max_batch"); batch != doc.MemberEnd()) {
    if (!batch->value.IsUint() || batch->value.GetUint() == 0) {
      error = "\"max_batch\" must be a positive integer";
      return std::nullopt;
    }
    d.max_batch = batch->value.GetUint();
  }
  d.settings_schema_json = "{}";
  if (auto schema = doc.FindMember("settings_schema"); schema != doc.MemberEnd()) {
    if (!schema->value.IsObject()) {
      error = "\"settings_schema\" must be a JSON Schema object";
      return std::nullopt;
    }
    d.settings_schema_json = json::to_string(schema->value);
  }
  if (auto limits = doc.FindMember("rate_limits"); limits != doc.MemberEnd()) {
    if (!limits->value.IsObject()) {
      error = "\"rate_limits\" must be an object of bucket names to {requests, per_ms, burst}";
      return std::nullopt;
    }
    for (auto it = limits->value.MemberBegin(); it != limits->value.MemberEnd(); ++it) {
      const std::string bucket(it->name.GetString(), it->name.GetStringLength());
      const auto &v = it->value;
      auto positive = [&v](const char *key, bool required) -> std::optional<uint32_t> {
        auto m = v.FindMember(key);
        if (m == v.MemberEnd()) return required ? std::nullopt : std::optional<uint32_t>(0);
        if (!m->value.IsUint() || m->value.GetUint() == 0) return std::nullopt;
        return m->value.GetUint();
      };
      const auto requests = v.IsObject() ? positive("requests", true) : std::nullopt;
      const auto per_ms = v.IsObject() ? positive("per_ms", true) : std::nullopt;
      const auto burst = v.IsObject() ? positive("burst", false) : std::nullopt;
      if (bucket.empty() || !requests || !per_ms || !burst) {
        error = "\"rate_limits\"." + json::quote(bucket) +
                " must be {requests, per_ms[, burst]} with positive integers";
        return std::nullopt;
      }
      d.rate_limits.push_back({bucket, {*requests, *per_ms, *burst}});
    }
  }
  return d;
}

}  // namespace crmhost::plugins
