#include "store/uri.hpp"

#include <algorithm>
#include <cctype>

#include "store/store.hpp"

namespace crmhost::store {
namespace {

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         });
}

// Replaces the value of every `password=` parameter (URI query or libpq key=value form).
std::string redact_password_params(std::string s) {
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t hit = std::string::npos;
    for (std::size_t i = pos; i + 9 <= s.size(); ++i) {
      const bool at_boundary = i == 0 || s[i - 1] == '?' || s[i - 1] == '&' ||
                               std::isspace(static_cast<unsigned char>(s[i - 1]));
      if (at_boundary && starts_with_nocase(std::string_view(s).substr(i), "password=")) {
        hit = i + 9;
        break;
      }
    }
    if (hit == std::string::npos) break;
    std::size_t end = hit;
    while (end < s.size() && s[end] != '&' && !std::isspace(static_cast<unsigned char>(s[end]))) {
      ++end;
    }
    s.replace(hit, end - hit, "***");
    pos = hit + 3;
  }
  return s;
}

}  // namespace

std::string redact_uri(std::string_view uri) {
  std::string out(uri);
  const auto scheme_end = out.find("://");
  {
    // Userinfo ends at the last '@' before the query. Searching that far (rather than stopping at
    // the first '/') over-redacts rather than leaking a password containing an unescaped '/'.
    // Without "://" (a malformed URI) the whole string may be userinfo: redact from its start.
    const std::size_t start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
    const std::size_t query = out.find('?', start);
    const std::size_t at = out.rfind('@', query == std::string::npos ? out.size() : query);
    if (at != std::string::npos && at >= start) {
      const std::size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  return redact_password_params(std::move(out));
}

std::string uri_password(std::string_view uri) {
  const auto scheme_end = uri.find("://");
  const std::size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  const std::size_t query = uri.find('?', start);
  const std::size_t at = uri.rfind('@', query == std::string_view::npos ? uri.size() : query);
  if (at != std::string_view::npos && at >= start) {
    const std::size_t colon = uri.find(':', start);
    if (colon != std::string_view::npos && colon < at) {
      return std::string(uri.substr(colon + 1, at - colon - 1));
    }
  }
  const std::size_t param = uri.find("password=");
  if (param == std::string_view::npos) return {};
  const std::size_t value = param + 9;
  const std::size_t end = uri.find_first_of("& \t", value);
  return std::string(uri.substr(value, end == std::string_view::npos ? end : end - value));
}

StoreUri parse_store_uri(const std::string &uri) {
  StoreUri parsed;
  if (starts_with_nocase(uri, "sqlite://")) {
    parsed.backend = Backend::sqlite;
    // sqlite:///abs/path keeps its leading '/', sqlite://rel/path is relative to the cwd.
    std::string path = uri.substr(9);
    if (const auto q = path.find('?'); q != std::string::npos) path.resize(q);
    if (path.empty() || path == "/" || path.back() == '/') {
      throw StoreError(StoreError::Kind::invalid_argument,
                       "store URI '" + redact_uri(uri) +
                           "' names no database file (expected sqlite:///path/state.db)");
    }
    parsed.sqlite_path = path;
    return parsed;
  }
  if (starts_with_nocase(uri, "postgresql://") || starts_with_nocase(uri, "postgres://")) {
    parsed.backend = Backend::postgresql;
    parsed.pg_conninfo = uri;
    return parsed;
  }
  throw StoreError(StoreError::Kind::invalid_argument,
                   "unsupported store URI '" + redact_uri(uri) +
                       "': expected sqlite:///path/state.db or postgresql://user@host/db");
}

}  // namespace crmhost::store
