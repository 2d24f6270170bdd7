#include "util/json.hpp"

#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace crmhost::json {

std::optional<std::string> try_parse(std::string_view text, rapidjson::Document &out,
                                     std::string_view what) {
  out.Parse(text.data(), text.size());
  if (!out.HasParseError()) return std::nullopt;
  return std::string(what) + " is not valid JSON at offset " +
         std::to_string(out.GetErrorOffset()) + ": " +
         rapidjson::GetParseError_En(out.GetParseError());
}

rapidjson::Document parse(std::string_view text, std::string_view what) {
  rapidjson::Document doc;
  if (auto error = try_parse(text, doc, what)) throw ParseError(*error);
  return doc;
}

std::string to_string(const rapidjson::Value &value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string to_pretty_string(const rapidjson::Value &value) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
  writer.SetIndent(' ', 2);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::optional<std::string> get_string(const rapidjson::Value &object, const char *key) {
  if (!object.IsObject()) return std::nullopt;
  auto it = object.FindMember(key);
  if (it == object.MemberEnd() || !it->value.IsString()) return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::string quote(std::string_view text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace crmhost::json
