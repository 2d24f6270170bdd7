#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <regex>

#include "config/detail.hpp"
#include "util/text.hpp"

namespace crmhost::config::detail {

SourceLocation location(const std::string &file, const YAML::Mark &mark) {
  SourceLocation where;
  where.file = file;
  if (!mark.is_null()) {
    where.line = mark.line + 1;
    where.column = mark.column + 1;
  }
  return where;
}

YAML::Mark mark_of(const YAML::Node &node, const YAML::Mark &fallback) {
  if (!node.IsDefined() || node.IsNull() || node.Mark().is_null()) return fallback;
  return node.Mark();
}

bool is_plain(const YAML::Node &scalar) {
  return scalar.Tag() == "?" || scalar.Tag().empty();
}

void resolve_plain_scalar(const std::string &text, rapidjson::Value &out,
                          rapidjson::Document::AllocatorType &alloc) {
  static const std::regex kInteger("[-+]?[0-9]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (text == "null" || text == "Null" || text == "NULL" || text == "~" || text.empty()) {
    out.SetNull();
  } else if (text == "true" || text == "True" || text == "TRUE") {
    out.SetBool(true);
  } else if (text == "false" || text == "False" || text == "FALSE") {
    out.SetBool(false);
  } else if (std::regex_match(text, kInteger)) {
    errno = 0;
    char *end = nullptr;
    if (text[0] == '-') {
      const long long value = std::strtoll(text.c_str(), &end, 10);
      if (errno == 0) return out.SetInt64(value), void();
    } else {
      const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
      if (errno == 0) return out.SetUint64(value), void();
    }
    out.SetString(text.c_str(), static_cast<rapidjson::SizeType>(text.size()), alloc);
  } else if (std::regex_match(text, kFloat)) {
    out.SetDouble(std::strtod(text.c_str(), nullptr));
  } else {
    out.SetString(text.c_str(), static_cast<rapidjson::SizeType>(text.size()), alloc);
  }
}

bool yaml_to_json(const YAML::Node &node, const std::filesystem::path &base_dir,
                  rapidjson::Value &out, rapidjson::Document::AllocatorType &alloc,
                  const Report &report, Substitutions *substitutions) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out.SetNull();
      return true;
    case YAML::NodeType::Scalar: {
      std::vector<std::string> errors;
      auto value = interpolate(node.Scalar(), base_dir, errors);
      for (auto &error : errors) report(node.Mark(), std::move(error));
      if (!value) return false;
      if (value->substituted && substitutions)
        substitutions->emplace_back(value->text, node.Scalar());
      if (is_plain(node))
        resolve_plain_scalar(value->text, out, alloc);
      else
        out.SetString(value->text.c_str(), static_cast<rapidjson::SizeType>(value->text.size()),
                      alloc);
      return true;
    }
    case YAML::NodeType::Sequence: {
      out.SetArray();
      bool ok = true;
      for (const auto &item : node) {
        rapidjson::Value converted;
        ok = yaml_to_json(item, base_dir, converted, alloc, report, substitutions) && ok;
        out.PushBack(converted, alloc);
      }
      return ok;
    }
    case YAML::NodeType::Map: {
      out.SetObject();
      bool ok = true;
      for (const auto &entry : node) {
        if (!entry.first.IsScalar()) {
          report(mark_of(entry.first, node.Mark()), "keys must be plain strings");
          ok = false;
          continue;
        }
        const std::string &key = entry.first.Scalar();
        if (out.HasMember(key.c_str())) {
          report(entry.first.Mark(), "key \"" + key + "\" appears twice");
          ok = false;
          continue;
        }
        rapidjson::Value converted;
        ok = yaml_to_json(entry.second, base_dir, converted, alloc, report, substitutions) && ok;
        out.AddMember(rapidjson::Value(key.c_str(), alloc), converted, alloc);
      }
      return ok;
    }
  }
  return true;
}

std::string join(const std::vector<std::string> &items, std::string_view separator) {
  std::string out;
  for (const auto &item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string> &candidates) {
  // Close in spelling ("evry", "retires"), or a part of a longer name ("secret").
  const std::string *best = nullptr;
  size_t best_distance = std::string::npos;
  for (const auto &candidate : candidates) {
    const size_t distance = text::edit_distance(word, candidate, /*ignore_case=*/true);
    size_t prefix = 0;
    while (prefix < word.size() && prefix < candidate.size() && word[prefix] == candidate[prefix])
      ++prefix;
    const bool close = distance <= std::max<size_t>(2, word.size() / 3) ||
                       (prefix >= 3 && distance <= word.size() / 2);
    if (close && distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  if (!best && word.size() >= 4)
    for (const auto &candidate : candidates)
      if (candidate.find(word) != std::string::npos) {
        best = &candidate;
        break;
      }
  return best ? " (did you mean \"" + *best + "\"?)" : "";
}

}  // namespace crmhost::config::detail
