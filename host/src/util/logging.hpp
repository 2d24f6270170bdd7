#pragma once
// Process-wide logging on spdlog, with credential redaction for text that came from outside.
#include <string>
#include <string_view>

namespace crmhost::logging {

// Sets the level ("trace".."error", "off") of the default logger, which writes to stderr.
void setup(std::string_view level);

// Masks credential-looking values (bearer tokens, api keys, passwords in URIs and key=value
// pairs) so a plugin's careless message cannot leak them into the log.
std::string redact(std::string_view text);

}  // namespace crmhost::logging
