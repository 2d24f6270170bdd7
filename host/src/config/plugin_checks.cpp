// Checks a connection's settings against its plugin's JSON Schema with RapidJSON's validator.
// RapidJSON 1.1 stops at the first violation, so after each one the offending member is removed
// and validation runs again, to report every problem it can in one pass.
#include <algorithm>
#include <regex>
#include <set>

#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>

#include "config/detail.hpp"
#include "util/json.hpp"

namespace crmhost::config::detail {

namespace {

using Pointer = rapidjson::Pointer;

std::string a_type(std::string_view type) {
  if (type == "string") return "a string";
  if (type == "integer") return "an integer";
  if (type == "number") return "a number";
  if (type == "boolean") return "true or false";
  if (type == "object") return "a mapping";
  if (type == "array") return "a list";
  if (type == "null") return "null";
  return std::string(type);
}

std::string type_of(const rapidjson::Value &value) {
  if (value.IsNull()) return "empty";
  if (value.IsBool()) return "true or false";
  if (value.IsInt64() || value.IsUint64()) return "an integer";
  if (value.IsNumber()) return "a number";
  if (value.IsString()) return "a string";
  if (value.IsArray()) return "a list";
  return "a mapping";
}

std::string number(const rapidjson::Value *value) {
  if (!value || !value->IsNumber()) return "?";
  if (value->IsInt64()) return std::to_string(value->GetInt64());
  if (value->IsUint64()) return std::to_string(value->GetUint64());
  return json::to_string(*value);
}

const rapidjson::Value *member(const rapidjson::Value *object, const char *name) {
  if (!object || !object->IsObject()) return nullptr;
  auto it = object->FindMember(name);
  return it == object->MemberEnd() ? nullptr : &it->value;
}

// Where a JSON pointer leads in the YAML the settings came from.
struct Located {
  YAML::Mark key;    // the last key on the way (the `settings:` key at the root)
  YAML::Mark value;  // the value itself
};

Located locate(const YAML::Node &settings, const YAML::Mark &settings_mark, const Pointer &pointer,
               size_t token_count) {
  Located at{settings_mark, mark_of(settings, settings_mark)};
  YAML::Node node;
  node.reset(settings);
  for (size_t i = 0; i < token_count; ++i) {
    const auto &token = pointer.GetTokens()[i];
    const std::string name(token.name, token.length);
    YAML::Node next;
    YAML::Mark key_mark = at.key;
    const YAML::Node &current = node;
    if (current.IsMap()) {
      for (const auto &item : current)
        if (item.first.IsScalar() && item.first.Scalar() == name) {
          next.reset(item.second);
          key_mark = item.first.Mark();
          break;
        }
    } else if (current.IsSequence() && token.index != rapidjson::kPointerInvalidIndex &&
               token.index < current.size()) {
      next.reset(current[token.index]);
      key_mark = mark_of(next, at.key);
    }
    if (!next.IsDefined()) break;
    node.reset(next);
    at = {key_mark, mark_of(node, key_mark)};
  }
  return at;
}

// "settings.seed[0].object" for a pointer into `instance`.
std::string display(const rapidjson::Value &instance, const Pointer &pointer, size_t count) {
  std::string out = "settings";
  const rapidjson::Value *value = &instance;
  for (size_t i = 0; i < count; ++i) {
    const auto &token = pointer.GetTokens()[i];
    const std::string name(token.name, token.length);
    if (value && value->IsArray()) {
      out += "[" + name + "]";
      value = token.index < value->Size() ? &(*value)[token.index] : nullptr;
    } else {
      out += "." + name;
      value = member(value, name.c_str());
    }
  }
  return out;
}

std::string key_of(const std::string &pointer_text, const std::string &key) {
  return pointer_text + "/" + key;
}

}  // namespace

void check_settings_schema(const std::string &schema_json, const rapidjson::Value &instance_in,
                           const YAML::Node &settings, const YAML::Mark &settings_mark,
                           const std::string &owner, const Report &report) {
  rapidjson::Document schema_doc;
  schema_doc.Parse(schema_json.empty() ? "{}" : schema_json.c_str());
  if (schema_doc.HasParseError() || !schema_doc.IsObject()) {
    report(settings_mark, "the plugin of " + owner +
                              " gives a settings schema that is not a JSON "
                              "object, so its settings cannot be checked");
    return;
  }
  const rapidjson::SchemaDocument schema(schema_doc);
  rapidjson::Document instance;
  instance.CopyFrom(instance_in, instance.GetAllocator());
  std::set<std::string> removed;  // pointers of members taken out after a problem was reported
  for (int round = 0; round < 100; ++round) {
    rapidjson::SchemaValidator validator(schema);
    if (instance.Accept(validator)) return;
    const std::string keyword = validator.GetInvalidSchemaKeyword();
    const Pointer doc_pointer = validator.GetInvalidDocumentPointer();
    const Pointer schema_pointer = validator.GetInvalidSchemaPointer();
    const rapidjson::Value *rule = schema_pointer.Get(schema_doc);
    const rapidjson::Value *value = doc_pointer.Get(instance);
    const size_t depth = doc_pointer.GetTokenCount();
    rapidjson::StringBuffer pointer_buffer;
    doc_pointer.Stringify(pointer_buffer);
    const std::string pointer_text = pointer_buffer.GetString();
    const std::string name = display(instance, doc_pointer, depth) + " of " + owner;
    const Located at = locate(settings, settings_mark, doc_pointer, depth);

    if (keyword == "required" && value && value->IsObject()) {
      bool missing = false;
      if (auto *required = member(rule, "required"); required && required->IsArray())
        for (const auto &key : required->GetArray()) {
          if (!key.IsString() || value->HasMember(key.GetString())) continue;
          missing = true;
          if (!removed.count(key_of(pointer_text, key.GetString())))
            report(at.key, name + " is missing the required key \"" + key.GetString() + "\"");
        }
      if (!missing)
        report(at.key, name +
                           " does not satisfy the \"required\" rule of the plugin's settings "
                           "schema");
      return;  // nothing can stand in for a missing value: stop here
    }
    if (keyword == "additionalProperties") {
      // RapidJSON points at the extra member; older versions at the object holding it.
      std::vector<std::string> known;
      if (auto *properties = member(rule, "properties"); properties && properties->IsObject())
        for (const auto &property : properties->GetObject())
          known.push_back(property.name.GetString());
      std::vector<std::regex> patterns;
      if (auto *pattern_properties = member(rule, "patternProperties");
          pattern_properties && pattern_properties->IsObject())
        for (const auto &pattern : pattern_properties->GetObject()) {
          try {
            patterns.emplace_back(pattern.name.GetString(), std::regex::ECMAScript);
          } catch (const std::regex_error &) {
          }
        }
      const auto is_extra = [&](const std::string &key) {
        return std::find(known.begin(), known.end(), key) == known.end() &&
               std::none_of(patterns.begin(), patterns.end(),
                            [&](const std::regex &re) { return std::regex_search(key, re); });
      };
      size_t object_depth = depth;
      if (depth > 0) {
        const auto &last = doc_pointer.GetTokens()[depth - 1];
        const rapidjson::Value *parent = Pointer(doc_pointer.GetTokens(), depth - 1).Get(instance);
        if (parent && parent->IsObject() && is_extra(std::string(last.name, last.length)))
          object_depth = depth - 1;
      }
      const Pointer object_pointer(doc_pointer.GetTokens(), object_depth);
      const rapidjson::Value *object = object_pointer.Get(instance);
      std::vector<std::string> extras;
      if (object && object->IsObject())
        for (const auto &m : object->GetObject())
          if (is_extra(m.name.GetString())) extras.push_back(m.name.GetString());
      if (extras.empty()) {
        report(at.value, name +
                             " does not satisfy the \"additionalProperties\" rule of the "
                             "plugin's settings schema");
        return;
      }
      rapidjson::StringBuffer object_buffer;
      object_pointer.Stringify(object_buffer);
      const std::string object_name =
          display(instance, object_pointer, object_depth) + " of " + owner;
      for (const auto &key : extras) {
        const Pointer extra_pointer =
            object_pointer.Append(key.c_str(), static_cast<rapidjson::SizeType>(key.size()));
        const Located extra_at = locate(settings, settings_mark, extra_pointer, object_depth + 1);
        report(extra_at.key,
               "unknown key \"" + key + "\" in " + object_name + did_you_mean(key, known));
        extra_pointer.Erase(instance);
        removed.insert(key_of(object_buffer.GetString(), key));
      }
      continue;
    }

    std::string message;
    if (keyword == "type") {
      std::vector<std::string> expected;
      if (auto *type = member(rule, "type"); type && type->IsString()) {
        expected.push_back(a_type(type->GetString()));
      } else if (type && type->IsArray()) {
        for (const auto &t : type->GetArray())
          if (t.IsString()) expected.push_back(a_type(t.GetString()));
      }
      message = name + " must be " + join(expected, " or ");
      if (value) message += ", not " + type_of(*value);
      if (value && !value->IsString() && !value->IsObject() && !value->IsArray() &&
          std::find(expected.begin(), expected.end(), "a string") != expected.end())
        message += " (quote it to make it a string)";
    } else if (keyword == "enum") {
      std::vector<std::string> allowed;
      if (auto *values = member(rule, "enum"); values && values->IsArray())
        for (const auto &v : values->GetArray()) allowed.push_back(json::to_string(v));
      message = name + " must be one of " + join(allowed);
    } else if (keyword == "minLength") {
      message =
          name + " must be at least " + number(member(rule, "minLength")) + " characters long";
    } else if (keyword == "maxLength") {
      message = name + " must be at most " + number(member(rule, "maxLength")) + " characters long";
    } else if (keyword == "minimum") {
      auto *exclusive = member(rule, "exclusiveMinimum");
      message =
          name +
          (exclusive && exclusive->IsTrue() ? " must be greater than " : " must be at least ") +
          number(member(rule, "minimum"));
    } else if (keyword == "maximum") {
      auto *exclusive = member(rule, "exclusiveMaximum");
      message = name +
                (exclusive && exclusive->IsTrue() ? " must be less than " : " must be at most ") +
                number(member(rule, "maximum"));
    } else if (keyword == "multipleOf") {
      message = name + " must be a multiple of " + number(member(rule, "multipleOf"));
    } else if (keyword == "pattern") {
      auto *pattern = member(rule, "pattern");
      message = name + " must match the pattern " +
                (pattern && pattern->IsString() ? pattern->GetString() : std::string("?"));
    } else if (keyword == "minItems") {
      message = name + " must hold at least " + number(member(rule, "minItems")) + " items";
    } else if (keyword == "maxItems") {
      message = name + " must hold at most " + number(member(rule, "maxItems")) + " items";
    } else if (keyword == "uniqueItems") {
      message = name + " must not hold the same item twice";
    } else if (keyword == "minProperties") {
      message = name + " must hold at least " + number(member(rule, "minProperties")) + " keys";
    } else if (keyword == "maxProperties") {
      message = name + " must hold at most " + number(member(rule, "maxProperties")) + " keys";
    } else {
      rapidjson::StringBuffer schema_buffer;
      schema_pointer.Stringify(schema_buffer);
      message = name + " does not satisfy the \"" + keyword +
                "\" rule of the plugin's settings "
                "schema (at #" +
                schema_buffer.GetString() + ")";
    }
    report(at.value, message);
    // Take the offending member out and look again; an array item or the root cannot be.
    if (depth == 0) return;
    const Pointer parent(doc_pointer.GetTokens(), depth - 1);
    const rapidjson::Value *container = parent.Get(instance);
    if (!container || !container->IsObject()) return;
    removed.insert(pointer_text);
    doc_pointer.Erase(instance);
  }
}

}  // namespace crmhost::config::detail
