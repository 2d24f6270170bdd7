#include "util/logging.hpp"

#include <regex>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace crmhost::logging {

namespace {

// %* in a pattern: the message as the body of a JSON string (quotes, backslashes and control
// characters escaped), so every JSON line parses whatever a message contains.
class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg &msg, const std::tm &,
              spdlog::memory_buf_t &dest) override {
    for (const char c : msg.payload) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\r':
          dest.append(std::string_view("\\r"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
            dest.append(std::string_view(escaped, 6));
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

}  // namespace

void setup(std::string_view level, std::string_view format) {
  static auto logger = [] {
    auto l = spdlog::stderr_color_mt("crmhost");
    spdlog::set_default_logger(l);
    return l;
  }();
  logger->set_level(spdlog::level::from_str(std::string(level)));
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","pid":%P,"message":"%*"})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
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
  static const std::regex email(R"([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,})");
  std::string out(text);
  out = std::regex_replace(out, bearer, "$1 [redacted]");
  out = std::regex_replace(out, uri_password, "$1:[redacted]@");
  out = std::regex_replace(out, key_value, "$1[redacted]");
  out = std::regex_replace(out, email, "[email]");
  return out;
}

}  // namespace crmhost::logging
