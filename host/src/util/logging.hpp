#pragma once
// Process-wide logging on spdlog, with credential redaction for text that came from outside.
#include <string>
#include <string_view>

namespace crmhost::logging {

// Sets the level ("trace".."error", "off") and format ("text", or "json": one JSON object a
// line with time, level, pid and message) of the default logger, which writes to stderr.
void setup(std::string_view level, std::string_view format = "text");

// Masks credential-looking values (bearer tokens, api keys, passwords in URIs and key=value
// pairs) and email addresses, so a plugin's careless message cannot leak them into the log.
std::string redact(std::string_view text);

}  // namespace crmhost::logging
