#pragma once
// Process-wide logging on spdlog, with credential redaction for text that came from outside.
#include <string>
#include <string_view>

namespace crmhost::logging {

// Sets the level ("trace".."error", "off") and format ("text", or "json": one JSON object a
// line with time, level, pid and message) of the default logger, which writes to stderr.
void setup(std::string_view level, std::string_view format = "text");

// Masks credentials (authorization headers, URI passwords, values of secret-like keys, private
// keys) and personal data (emails, card numbers, US SSNs) in text that came from outside: the
// one policy for the admin API, the logs and the console, described in util/redact.hpp. Linear
// in time, constant in stack, whatever the input.
std::string redact(std::string_view text);

}  // namespace crmhost::logging
