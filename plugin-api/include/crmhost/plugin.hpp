// crmhost C++ plugin SDK: a header-only convenience over plugin.h.
//
// plugin.h is the contract; this header only saves typing. It exports the entry function,
// negotiates the ABI, turns exceptions into a status and message, parses requests and serialises
// results with RapidJSON, and wraps the host's HTTP and state extensions.
//
//   class MyConnector : public crmhost::sdk::Connector {
//    public:
//     MyConnector(crm_host_instance *instance, const rapidjson::Value &settings);
//     static std::string describe();                       // the describe JSON
//     crm_status check(rapidjson::Document &result) override;
//     crm_status poll(const rapidjson::Value &request, rapidjson::Document &result) override;
//     ...
//   };
//   CRMHOST_SDK_PLUGIN(MyConnector, "my-crm", "1.0.0", "Example Ltd")
//
// Exactly one translation unit of a plugin expands CRMHOST_SDK_PLUGIN.
#pragma once

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "crmhost/plugin.h"

namespace crmhost::sdk {

// Thrown by plugin code to fail a call with a specific status; anything else thrown becomes
// CRM_ERR_INTERNAL with the exception's what().
class Error : public std::runtime_error {
 public:
  Error(crm_status status, const std::string &message, int http_status = 0, int retry_after_ms = 0,
        int retryable = -1)
      : std::runtime_error(message),
        status_(status),
        http_status_(http_status),
        retry_after_ms_(retry_after_ms),
        retryable_(retryable) {}
  crm_status status() const { return status_; }
  int http_status() const { return http_status_; }
  int retry_after_ms() const { return retry_after_ms_; }
  int retryable() const { return retryable_; }

 private:
  crm_status status_;
  int http_status_;
  int retry_after_ms_;
  int retryable_;
};

inline crm_str to_crm_str(std::string_view s) {
  return crm_str{s.data(), s.size()};
}
inline std::string_view to_view(crm_str s) {
  return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view();
}

inline std::string to_json(const rapidjson::Value &value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// Nesting parse_json and try_parse_json accept: far above any provider's payload, far below what
// overflows a stack.
inline constexpr size_t kMaxJsonDepth = 256;

// Whether `text` nests arrays and objects deeper than `limit` (brackets inside strings do not
// count). One forward scan: linear in time, constant in stack, whatever the input.
inline bool nests_deeper_than(std::string_view text, size_t limit) {
  size_t depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if ((c == '{' || c == '[') && ++depth > limit) {
      return true;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return false;
}

// What try_parse_json made of a text.
enum class JsonParse { ok, invalid, too_deep };

// Parses `text` into `doc` without recursion; text nesting deeper than kMaxJsonDepth is refused
// before parsing. For JSON whose failure the caller words itself, such as a provider's answer
// (every answer a plugin parses must go through this or parse_json: RapidJSON's default Parse
// recurses once per level, and a hostile answer of a million '[' overflows the stack). On
// `invalid` and `too_deep` alike `doc.HasParseError()` is true, so code that tests only that
// refuses both.
inline JsonParse try_parse_json(std::string_view text, rapidjson::Document &doc) {
  if (nests_deeper_than(text, kMaxJsonDepth)) {
    doc.Parse<rapidjson::kParseIterativeFlag>("", 0);  // kParseErrorDocumentEmpty
    return JsonParse::too_deep;
  }
  doc.Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  return doc.HasParseError() ? JsonParse::invalid : JsonParse::ok;
}

// Parses a JSON document or throws Error(CRM_ERR_INVALID_INPUT) naming the offset and problem.
// Iterative and depth-bounded, so a hostile body or provider answer cannot exhaust the stack.
inline rapidjson::Document parse_json(std::string_view text, const char *what) {
  rapidjson::Document doc;
  switch (try_parse_json(text, doc)) {
    case JsonParse::ok:
      return doc;
    case JsonParse::too_deep:
      throw Error(CRM_ERR_INVALID_INPUT, std::string(what) + " nests deeper than " +
                                             std::to_string(kMaxJsonDepth) + " levels");
    case JsonParse::invalid:
      break;
  }
  throw Error(CRM_ERR_INVALID_INPUT, std::string(what) + " is not valid JSON at offset " +
                                         std::to_string(doc.GetErrorOffset()) + ": " +
                                         rapidjson::GetParseError_En(doc.GetParseError()));
}

// The member `key` of `object` when it is a string; "" otherwise.
inline std::string get_string(const rapidjson::Value &object, const char *key) {
  // Not `IsObject() ? FindMember : MemberEnd()`: MemberEnd asserts on a non-object in debug builds.
  if (!object.IsObject()) return std::string();
  auto it = object.FindMember(key);
  return it != object.MemberEnd() && it->value.IsString()
             ? std::string(it->value.GetString(), it->value.GetStringLength())
             : std::string();
}

// The strings of an array (other items skipped); empty for anything but an array.
inline std::vector<std::string> string_list(const rapidjson::Value &array) {
  std::vector<std::string> out;
  if (array.IsArray())
    for (const auto &item : array.GetArray())
      if (item.IsString()) out.emplace_back(item.GetString(), item.GetStringLength());
  return out;
}

// The "ids" of a fetch request (strings, or unsigned numbers as their text); throws Error
// (invalid_input) naming what is wrong.
inline std::vector<std::string> request_ids(const rapidjson::Value &request) {
  if (!request.IsObject() || !request.HasMember("ids") || !request["ids"].IsArray())
    throw Error(CRM_ERR_INVALID_INPUT, "fetch request: \"ids\" must be an array of ids");
  std::vector<std::string> ids;
  for (const auto &id : request["ids"].GetArray()) {
    if (id.IsString())
      ids.emplace_back(id.GetString(), id.GetStringLength());
    else if (id.IsUint64())
      ids.push_back(std::to_string(id.GetUint64()));
    else
      throw Error(CRM_ERR_INVALID_INPUT, "fetch request: every id must be a string");
  }
  return ids;
}

// A scalar as text: strings as they are, numbers and booleans as JSON writes them; "" for null,
// arrays and objects. For match keys and comparisons.
inline std::string scalar_text(const rapidjson::Value &v) {
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  // An integral double (4200.0, as a "number" transform makes from "4200") reads as the integer:
  // providers store number fields as text without a fraction, and echoes must compare equal.
  if (v.IsDouble() && std::isfinite(v.GetDouble()) && std::fabs(v.GetDouble()) < 1e15 &&
      v.GetDouble() == std::trunc(v.GetDouble()))
    return std::to_string(static_cast<long long>(v.GetDouble()));
  if (v.IsDouble()) return to_json(v);
  if (v.IsBool()) return v.GetBool() ? "true" : "false";
  return "";
}

// ASCII lower case, for keys providers compare case-insensitively (emails, domains).
inline std::string lower_ascii(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// A push request's "match_normalize" (README, push): the steps applied to both sides of every
// comparison of match keys. `any()` is false when the request names no step.
struct MatchNormalize {
  bool trim = false, lower = false;

  // Throws Error(CRM_ERR_INVALID_INPUT) naming an unknown step or a malformed member.
  static MatchNormalize from_request(const rapidjson::Value &request) {
    MatchNormalize out;
    if (!request.IsObject()) return out;
    auto it = request.FindMember("match_normalize");
    if (it == request.MemberEnd() || it->value.IsNull()) return out;
    if (!it->value.IsArray())
      throw Error(CRM_ERR_INVALID_INPUT,
                  "push request: \"match_normalize\" must be an array of step names");
    for (const auto &step : it->value.GetArray()) {
      const std::string name =
          step.IsString() ? std::string(step.GetString(), step.GetStringLength()) : "";
      if (name == "trim")
        out.trim = true;
      else if (name == "lower")
        out.lower = true;
      else
        throw Error(CRM_ERR_INVALID_INPUT,
                    "push request: match_normalize step " +
                        (step.IsString() ? "\"" + name + "\"" : to_json(step)) +
                        " is unknown (known: trim, lower)");
    }
    return out;
  }

  bool any() const { return trim || lower; }

  std::string apply(std::string_view value) const {
    if (trim) {
      // ASCII whitespace as the contract names it: space, tab, LF, VT, FF, CR.
      const auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
      while (!value.empty() && space(value.front())) value.remove_prefix(1);
      while (!value.empty() && space(value.back())) value.remove_suffix(1);
    }
    std::string out(value);
    if (lower)
      for (char &c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
  }
};

// What became of one input of a push: a connector settles each input once, then writes the
// results in input order with to_json.
struct PushOutcome {
  std::string ref;  // the host's reference of the input
  bool done = false, ok = false, created = false, retryable = false;
  std::string result_id, code, message;

  void succeed(std::string target_id, bool was_created) {
    done = ok = true;
    result_id = std::move(target_id);
    created = was_created;
  }
  void error(std::string error_code, std::string text, bool retry) {
    done = true;
    ok = false;
    code = std::move(error_code);
    message = std::move(text);
    retryable = retry;
  }
  // {"ref","status":"ok","id","created"} or {"ref","status":"error","code","retryable",
  // "message"}. An input never settled is a retryable "remote" error saying `unsettled`.
  rapidjson::Value to_json(rapidjson::Document::AllocatorType &alloc, const char *unsettled) const {
    rapidjson::Value r(rapidjson::kObjectType);
    r.AddMember("ref", rapidjson::Value(ref.c_str(), alloc), alloc);
    if (ok) {
      r.AddMember("status", "ok", alloc);
      r.AddMember("id", rapidjson::Value(result_id.c_str(), alloc), alloc);
      r.AddMember("created", created, alloc);
    } else {
      r.AddMember("status", "error", alloc);
      r.AddMember("code", rapidjson::Value(done ? code.c_str() : "remote", alloc), alloc);
      r.AddMember("retryable", done ? retryable : true, alloc);
      r.AddMember("message", rapidjson::Value(done ? message.c_str() : unsettled, alloc), alloc);
    }
    return r;
  }
};

// Calendar arithmetic on the proleptic Gregorian calendar (Howard Hinnant's algorithms), which
// providers' timestamps need and <chrono> of C++17 lacks.
struct CivilDate {
  int64_t year;
  unsigned month, day;
};
inline int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}
inline CivilDate civil_from_days(int64_t days) {
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {static_cast<int64_t>(yoe) + era * 400 + (m <= 2), m, d};
}

// Unix milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ", or, when `iso` is false, with a space and
// without the milliseconds and zone ("YYYY-MM-DD HH:MM:SS", as Odoo writes UTC).
inline std::string format_utc(int64_t unix_ms, bool iso = true) {
  int64_t days = unix_ms / 86400000, rem = unix_ms % 86400000;
  if (rem < 0) {
    rem += 86400000;
    --days;
  }
  const CivilDate date = civil_from_days(days);
  char buf[48];
  if (iso)
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                  static_cast<long long>(date.year), date.month, date.day,
                  static_cast<long long>(rem / 3600000), static_cast<long long>(rem / 60000 % 60),
                  static_cast<long long>(rem / 1000 % 60), static_cast<long long>(rem % 1000));
  else
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u %02lld:%02lld:%02lld",
                  static_cast<long long>(date.year), date.month, date.day,
                  static_cast<long long>(rem / 3600000), static_cast<long long>(rem / 60000 % 60),
                  static_cast<long long>(rem / 1000 % 60));
  return buf;
}

namespace detail {
inline const crm_host_api *&host_api_slot() {
  static const crm_host_api *api = nullptr;
  return api;
}

inline void fill_error(crm_error *err, crm_status status, std::string_view message,
                       int http_status = 0, int retry_after_ms = 0, int retryable = -1) {
  if (!err || err->struct_size < sizeof(uint32_t) + sizeof(crm_status)) return;
  // Only the fields the caller's struct has are written.
  crm_error local{};
  local.struct_size = err->struct_size;
  local.code = status;
  local.http_status = http_status;
  local.retry_after_ms = retry_after_ms;
  local.retryable = retryable;
  const size_t n = std::min(message.size(), sizeof(local.message) - 1);
  std::memcpy(local.message, message.data(), n);
  local.message[n] = '\0';
  std::memcpy(err, &local, std::min<size_t>(err->struct_size, sizeof(local)));
}

// Runs `body`, mapping exceptions to a status and the error struct.
template <class F>
crm_status guarded(crm_error *err, F &&body) noexcept {
  try {
    return body();
  } catch (const Error &e) {
    const crm_status status = e.status() < 0 ? e.status() : CRM_ERR_INTERNAL;
    fill_error(err, status, e.what(), e.http_status(), e.retry_after_ms(), e.retryable());
    return status;
  } catch (const std::exception &e) {
    fill_error(err, CRM_ERR_INTERNAL, e.what());
    return CRM_ERR_INTERNAL;
  } catch (...) {
    fill_error(err, CRM_ERR_INTERNAL, "unknown exception");
    return CRM_ERR_INTERNAL;
  }
}

inline crm_status emit(crm_sink *out, const rapidjson::Value &result) {
  const std::string text = to_json(result);
  return out->emit(out, to_crm_str(text));
}
}  // namespace detail

// The host services available to the whole plugin once init has run.
struct Host {
  static const crm_host_api *api() { return detail::host_api_slot(); }
  static void log(int32_t level, std::string_view message, crm_host_instance *instance = nullptr) {
    const crm_host_api *host = api();
    if (host && CRM_HAS_FIELD(host, crm_host_api, log) && host->log)
      host->log(host, instance, level, to_crm_str(message));
  }
  static int64_t now_ms() {
    const crm_host_api *host = api();
    if (host && CRM_HAS_FIELD(host, crm_host_api, now_ms) && host->now_ms)
      return host->now_ms(host);
    return 0;
  }
  template <class T>
  static const T *extension(const char *id) {
    const crm_host_api *host = api();
    if (!host || !CRM_HAS_FIELD(host, crm_host_api, get_extension) || !host->get_extension)
      return nullptr;
    return static_cast<const T *>(host->get_extension(host, id));
  }
};

struct HttpResponse {
  int status = 0;
  uint32_t attempts = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // Case-insensitive header lookup (HTTP header names are case-insensitive).
  std::optional<std::string> header(std::string_view name) const {
    for (const auto &[key, value] : headers) {
      if (key.size() != name.size()) continue;
      bool same = true;
      for (size_t i = 0; i < key.size() && same; ++i)
        same = std::tolower(static_cast<unsigned char>(key[i])) ==
               std::tolower(static_cast<unsigned char>(name[i]));
      if (same) return value;
    }
    return std::nullopt;
  }
};

// Base class of SDK connectors. One object per configured connection.
class Connector {
 public:
  explicit Connector(crm_host_instance *instance) : instance_(instance) {}
  virtual ~Connector() = default;
  Connector(const Connector &) = delete;
  Connector &operator=(const Connector &) = delete;

  // Each returns CRM_OK (poll: or CRM_MORE) after filling `result`, or throws Error.
  virtual crm_status check(rapidjson::Document &result) = 0;
  virtual crm_status poll(const rapidjson::Value &, rapidjson::Document &) {
    return unsupported("poll");
  }
  virtual crm_status fetch(const rapidjson::Value &, rapidjson::Document &) {
    return unsupported("fetch");
  }
  virtual crm_status push(const rapidjson::Value &, rapidjson::Document &) {
    return unsupported("push");
  }
  virtual crm_status webhook(const rapidjson::Value &, std::string_view, rapidjson::Document &) {
    return unsupported("webhook");
  }
  // Periodic upkeep (crm.maintenance.v1): a connector that overrides this offers the interface.
  // `request` holds "reason"; fill "next_in_ms" and "status" (plugin.h says how the host uses
  // them).
  virtual crm_status maintain(const rapidjson::Value &, rapidjson::Document &) {
    return unsupported("maintain");
  }

  // [thread-safe] Requests cancellation of the running call; long loops check cancelled().
  void request_cancel() { cancel_requested_.store(true); }
  bool cancelled() const { return cancel_requested_.load(); }
  void reset_cancel() { cancel_requested_.store(false); }

  crm_host_instance *instance() const { return instance_; }
  void log(int32_t level, std::string_view message) const { Host::log(level, message, instance_); }

  // Blocking HTTP through the host (crm.http.v1). Throws Error on transport failure; any HTTP
  // status, 4xx and 5xx included, is returned to the caller.
  HttpResponse http(std::string_view method, std::string_view url,
                    const std::vector<std::pair<std::string, std::string>> &headers = {},
                    std::string_view body = {}, uint32_t timeout_ms = 0, uint32_t flags = 0,
                    std::string_view bucket = {}) const {
    const auto *ext = Host::extension<crm_http_v1>(CRM_EXT_HTTP_V1);
    if (!ext || !ext->request)
      throw Error(CRM_ERR_UNSUPPORTED, "the host offers no " CRM_EXT_HTTP_V1 " extension");
    std::vector<crm_http_header> raw;
    raw.reserve(headers.size());
    for (const auto &[name, value] : headers) raw.push_back({to_crm_str(name), to_crm_str(value)});
    crm_http_request request{};
    request.struct_size = sizeof request;
    request.flags = flags;
    request.method = to_crm_str(method);
    request.url = to_crm_str(url);
    request.headers = raw.data();
    request.header_count = static_cast<uint32_t>(raw.size());
    request.timeout_ms = timeout_ms;
    request.body = to_crm_str(body);
    request.rate_limit_bucket = to_crm_str(bucket);
    HttpResponse response;
    crm_http_response_sink sink{};
    sink.struct_size = sizeof sink;
    sink.user_data = &response;
    sink.on_response = [](crm_http_response_sink *self, const crm_http_response *r) {
      auto *into = static_cast<HttpResponse *>(self->user_data);
      into->status = r->status;
      into->attempts = r->attempts;
      for (uint32_t i = 0; i < r->header_count; ++i)
        into->headers.emplace_back(std::string(to_view(r->headers[i].name)),
                                   std::string(to_view(r->headers[i].value)));
      into->body.assign(to_view(r->body));
    };
    crm_error err{};
    err.struct_size = sizeof err;
    const crm_status status = ext->request(instance_, &request, &sink, &err);
    if (status < 0)
      throw Error(status, err.message, err.http_status, err.retry_after_ms, err.retryable);
    return response;
  }

  // Per-connection durable state (crm.state.v1).
  std::optional<std::string> state_get(std::string_view key) const {
    const auto *ext = require_state();
    std::string value;
    crm_sink sink{};
    sink.struct_size = sizeof sink;
    sink.user_data = &value;
    sink.emit = [](crm_sink *self, crm_str data) -> crm_status {
      static_cast<std::string *>(self->user_data)->assign(to_view(data));
      return CRM_OK;
    };
    crm_error err{};
    err.struct_size = sizeof err;
    const crm_status status = ext->get(instance_, to_crm_str(key), &sink, &err);
    if (status == CRM_ERR_NOT_FOUND) return std::nullopt;
    if (status < 0) throw Error(status, err.message);
    return value;
  }
  void state_put(std::string_view key, std::string_view value) const {
    crm_error err{};
    err.struct_size = sizeof err;
    const crm_status status =
        require_state()->put(instance_, to_crm_str(key), to_crm_str(value), &err);
    if (status < 0) throw Error(status, err.message);
  }
  void state_remove(std::string_view key) const {
    crm_error err{};
    err.struct_size = sizeof err;
    const crm_status status = require_state()->remove(instance_, to_crm_str(key), &err);
    if (status < 0) throw Error(status, err.message);
  }

 protected:
  static crm_status unsupported(const char *what) {
    throw Error(CRM_ERR_UNSUPPORTED, std::string(what) + " is not supported by this connector");
  }

 private:
  const crm_state_v1 *require_state() const {
    const auto *ext = Host::extension<crm_state_v1>(CRM_EXT_STATE_V1);
    if (!ext || !ext->get || !ext->put || !ext->remove)
      throw Error(CRM_ERR_UNSUPPORTED, "the host offers no " CRM_EXT_STATE_V1 " extension");
    return ext;
  }

  crm_host_instance *instance_;
  std::atomic<bool> cancel_requested_{false};
};

// The C glue for connector class T; CRMHOST_SDK_PLUGIN instantiates it.
template <class T>
struct PluginGlue {
  static T *self(crm_connector *c) { return reinterpret_cast<T *>(c); }

  // Parses the request, runs the member, emits the result; all under one exception guard.
  template <class Call>
  static crm_status run(crm_connector *c, crm_sink *out, crm_error *err, Call &&call) {
    return detail::guarded(err, [&]() -> crm_status {
      T *connector = self(c);
      connector->reset_cancel();
      rapidjson::Document result;
      result.SetObject();
      const crm_status status = call(*connector, result);
      if (status < 0) throw Error(status, "operation failed");
      const crm_status emitted = detail::emit(out, result);
      return emitted < 0 ? emitted : status;
    });
  }

  static crm_status describe(crm_sink *out, crm_error *err) {
    return detail::guarded(err, [&]() -> crm_status {
      const std::string text = T::describe();
      return out->emit(out, to_crm_str(text));
    });
  }
  static crm_status create(crm_host_instance *instance, crm_str settings, crm_connector **result,
                           crm_error *err) {
    return detail::guarded(err, [&]() -> crm_status {
      const rapidjson::Document parsed = parse_json(to_view(settings), "settings");
      *result = reinterpret_cast<crm_connector *>(new T(instance, parsed));
      return CRM_OK;
    });
  }
  static void destroy(crm_connector *c) { delete self(c); }
  static crm_status check(crm_connector *c, crm_sink *out, crm_error *err) {
    return run(c, out, err, [](T &t, rapidjson::Document &r) { return t.check(r); });
  }
  static crm_status poll(crm_connector *c, crm_str request, crm_sink *out, crm_error *err) {
    return run(c, out, err, [&](T &t, rapidjson::Document &r) {
      return t.poll(parse_json(to_view(request), "poll request"), r);
    });
  }
  static crm_status fetch(crm_connector *c, crm_str request, crm_sink *out, crm_error *err) {
    return run(c, out, err, [&](T &t, rapidjson::Document &r) {
      return t.fetch(parse_json(to_view(request), "fetch request"), r);
    });
  }
  static crm_status push(crm_connector *c, crm_str request, crm_sink *out, crm_error *err) {
    return run(c, out, err, [&](T &t, rapidjson::Document &r) {
      return t.push(parse_json(to_view(request), "push request"), r);
    });
  }
  static crm_status webhook(crm_connector *c, crm_str request, crm_str body, crm_sink *out,
                            crm_error *err) {
    return run(c, out, err, [&](T &t, rapidjson::Document &r) {
      return t.webhook(parse_json(to_view(request), "webhook request"), to_view(body), r);
    });
  }
  static void cancel(crm_connector *c) { self(c)->request_cancel(); }
  static crm_status maintain(crm_connector *c, crm_str request, crm_sink *out, crm_error *err) {
    return run(c, out, err, [&](T &t, rapidjson::Document &r) {
      return t.maintain(parse_json(to_view(request), "maintain request"), r);
    });
  }
  // Only a connector class that declares maintain() itself offers the interface.
  static constexpr bool kMaintains =
      !std::is_same_v<decltype(&T::maintain), decltype(&Connector::maintain)>;

  static crm_status negotiate(uint32_t *inout) {
    if (CRM_VERSION_MAJOR(*inout) != CRM_VERSION_MAJOR(CRM_ABI_VERSION)) {
      *inout = CRM_ABI_VERSION;
      return CRM_ERR_INCOMPATIBLE;
    }
    // Fields newer than the host's minor are guarded by CRM_HAS_FIELD, so any 1.x host works.
    if (*inout > CRM_ABI_VERSION) *inout = CRM_ABI_VERSION;
    return CRM_OK;
  }
  static crm_status init(const crm_host_api *host, crm_error *) {
    detail::host_api_slot() = host;
    return CRM_OK;
  }
  static void deinit() { detail::host_api_slot() = nullptr; }

  static const crm_connector_v1 *connector_table() {
    static const crm_connector_v1 table = {sizeof(crm_connector_v1),
                                           0,
                                           &describe,
                                           &create,
                                           &destroy,
                                           &check,
                                           &poll,
                                           &fetch,
                                           &push,
                                           &webhook,
                                           &cancel};
    return &table;
  }
  static const crm_maintenance_v1 *maintenance_table() {
    static const crm_maintenance_v1 table = {sizeof(crm_maintenance_v1), 0, &maintain};
    return &table;
  }
  static const void *get_interface(const char *id) {
    if (id && std::strcmp(id, CRM_CONNECTOR_V1) == 0) return connector_table();
    if constexpr (kMaintains)
      if (id && std::strcmp(id, CRM_MAINTENANCE_V1) == 0) return maintenance_table();
    return nullptr;
  }
};

}  // namespace crmhost::sdk

// Exports the entry function for connector class CLASS.
#define CRMHOST_SDK_PLUGIN(CLASS, ID, VERSION, VENDOR)                       \
  extern "C" CRM_EXPORT const crm_plugin_entry *crm_plugin_get_entry(void) { \
    using glue = ::crmhost::sdk::PluginGlue<CLASS>;                          \
    static const crm_plugin_entry entry = {sizeof(crm_plugin_entry),         \
                                           CRM_ABI_VERSION,                  \
                                           ID,                               \
                                           VERSION,                          \
                                           VENDOR,                           \
                                           &glue::negotiate,                 \
                                           &glue::init,                      \
                                           &glue::deinit,                    \
                                           &glue::get_interface};            \
    return &entry;                                                           \
  }
