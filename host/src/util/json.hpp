#pragma once
// Small RapidJSON helpers shared by the host.
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

namespace crmhost::json {

class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Nesting the host accepts in JSON it parses (plugin results, admin bodies) and in webhook bodies
// before a plugin sees them. Real payloads nest under 10 levels; a recursive parser (RapidJSON's
// default, most plugins') overflows the stack somewhere past 100,000.
inline constexpr size_t kMaxJsonDepth = 256;
inline constexpr size_t kMaxWebhookJsonDepth = 64;

// The offset at which `text` opens its (max_depth+1)th nested array or object, or nullopt when it
// nests no deeper than max_depth. Linear, no recursion, strings skipped; not a validator.
std::optional<size_t> nesting_exceeds(std::string_view text, size_t max_depth);

// Parses `text` (iteratively, nesting at most kMaxJsonDepth); throws
// ParseError("<what> is not valid JSON at offset N: reason").
rapidjson::Document parse(std::string_view text, std::string_view what);

// Parses `text`; returns the error message instead of throwing.
std::optional<std::string> try_parse(std::string_view text, rapidjson::Document &out,
                                     std::string_view what);

std::string to_string(const rapidjson::Value &value);
// Appends the same text as to_string (compact, RapidJSON's escaping and number forms), faster:
// for hot paths that serialise many small documents. Non-finite numbers become null.
void append_compact(const rapidjson::Value &value, std::string &out);
std::string to_pretty_string(const rapidjson::Value &value);

// The member `key` of `value`, or nullptr when `value` is not an object or lacks it. (RapidJSON's
// MemberEnd() asserts on a non-object in debug builds, so `IsObject() ? FindMember : MemberEnd`
// aborts there on exactly the malformed input it meant to catch.)
const rapidjson::Value *member(const rapidjson::Value &value, const char *key);

// The member `key` of `object` if it exists and is a string.
std::optional<std::string> get_string(const rapidjson::Value &object, const char *key);

// A JSON string literal for `text` (quoted and escaped).
std::string quote(std::string_view text);

}  // namespace crmhost::json
