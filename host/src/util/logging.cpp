#include "util/logging.hpp"

#include <regex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace crmhost::logging {

void setup(std::string_view level) {
  static auto logger = [] {
    auto l = spdlog::stderr_color_mt("crmhost");
    spdlog::set_default_logger(l);
    return l;
  }();
  logger->set_level(spdlog::level::from_str(std::string(level)));
}

std::string redact(std::string_view text) {
  // Compiled once; std::regex is slow to build but these run only on log and error text.
  static const std::regex bearer(R"((Bearer|Basic|Zoho-oauthtoken)\s+[A-Za-z0-9._~+/=-]+)",
                                 std::regex::icase);
  static const std::regex uri_password(R"(([a-z][a-z0-9+.-]*://[^:/@\s]+):[^@/\s]+@)",
                                       std::regex::icase);
  static const std::regex key_value(
      R"(((?:password|passwd|secret|token|api[_-]?key|access[_-]?token|refresh[_-]?token|client[_-]?secret)\"?\s*[=:]\s*\"?)[^\s\",&}]+)",
      std::regex::icase);
  std::string out(text);
  out = std::regex_replace(out, bearer, "$1 [redacted]");
  out = std::regex_replace(out, uri_password, "$1:[redacted]@");
  out = std::regex_replace(out, key_value, "$1[redacted]");
  return out;
}

}  // namespace crmhost::logging
