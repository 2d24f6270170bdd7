#include "plugins/host_services.hpp"

#include <chrono>
#include <cstring>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "util/log_throttle.hpp"
#include "util/logging.hpp"

namespace crmhost::plugins {

std::optional<std::string> InMemoryStateBackend::get(const std::string &connection,
                                                     const std::string &key) {
  std::lock_guard lock(mutex_);
  auto it = values_.find({connection, key});
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

void InMemoryStateBackend::put(const std::string &connection, const std::string &key,
                               const std::string &value) {
  std::lock_guard lock(mutex_);
  values_[{connection, key}] = value;
}

void InMemoryStateBackend::remove(const std::string &connection, const std::string &key) {
  std::lock_guard lock(mutex_);
  values_.erase({connection, key});
}

int64_t HostServices::now_ms() const {
  if (clock) return clock();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

std::string_view view(crm_str s) {
  return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view();
}

crm_status fail(crm_error *err, crm_status code, std::string_view message) {
  if (err && err->struct_size >= offsetof(crm_error, message) + sizeof err->message) {
    err->code = code;
    err->retryable = 0;
    const size_t n = std::min(message.size(), sizeof err->message - 1);
    std::memcpy(err->message, message.data(), n);
    err->message[n] = '\0';
  }
  return code;
}

// Runs a state operation with the common checks; exceptions never cross into the plugin.
template <class F>
crm_status with_state(crm_host_instance *instance, crm_str key, crm_error *err, F &&op) noexcept {
  try {
    if (!instance || !instance->services) return fail(err, CRM_ERR_INVALID_INPUT, "no instance");
    if (key.len == 0 || key.len > kMaxStateKeyBytes)
      return fail(err, CRM_ERR_INVALID_INPUT, "state keys must be 1 to 256 bytes");
    return op(*instance->services->state, instance->connection, std::string(view(key)));
  } catch (const std::exception &e) {
    return fail(err, CRM_ERR_INTERNAL, std::string("state store: ") + e.what());
  }
}

crm_status state_get(crm_host_instance *instance, crm_str key, crm_sink *out, crm_error *err) {
  return with_state(
      instance, key, err,
      [&](ConnectionStateBackend &state, const std::string &conn, const std::string &k) {
        auto value = state.get(conn, k);
        if (!value) return fail(err, CRM_ERR_NOT_FOUND, "no such state key");
        const crm_status emitted = out->emit(out, crm_str{value->data(), value->size()});
        return emitted < 0 ? emitted : CRM_OK;
      });
}

crm_status state_put(crm_host_instance *instance, crm_str key, crm_str value, crm_error *err) {
  if (value.len > kMaxStateValueBytes)
    return fail(err, CRM_ERR_INVALID_INPUT, "state values are limited to 64 KiB");
  return with_state(
      instance, key, err,
      [&](ConnectionStateBackend &state, const std::string &conn, const std::string &k) {
        state.put(conn, k, std::string(view(value)));
        return CRM_OK;
      });
}

crm_status state_remove(crm_host_instance *instance, crm_str key, crm_error *err) {
  return with_state(
      instance, key, err,
      [&](ConnectionStateBackend &state, const std::string &conn, const std::string &k) {
        state.remove(conn, k);
        return CRM_OK;
      });
}

const crm_state_v1 kStateV1 = {sizeof(crm_state_v1), 0, &state_get, &state_put, &state_remove};

crm_status http_request(crm_host_instance *instance, const crm_http_request *request,
                        crm_http_response_sink *out, crm_error *err) noexcept {
  try {
    if (!instance || !instance->services || !instance->services->http)
      return fail(err, CRM_ERR_UNSUPPORTED, "no HTTP service");
    if (!request || !CRM_HAS_FIELD(request, crm_http_request, body) || !out || !out->on_response)
      return fail(err, CRM_ERR_INVALID_INPUT, "malformed HTTP request or sink");
    HttpCall call;
    call.method = std::string(view(request->method));
    call.url = std::string(view(request->url));
    call.flags = request->flags;
    call.timeout_ms = request->timeout_ms;
    call.body = std::string(view(request->body));
    if (request->header_count > 0 && !request->headers)
      return fail(err, CRM_ERR_INVALID_INPUT, "headers is NULL");
    for (uint32_t i = 0; i < request->header_count; ++i)
      call.headers.emplace_back(view(request->headers[i].name), view(request->headers[i].value));
    if (CRM_HAS_FIELD(request, crm_http_request, rate_limit_bucket))
      call.bucket = std::string(view(request->rate_limit_bucket));
    const HttpResult result = instance->services->http->request(instance->connection, call);
    if (!result.ok()) {
      const CallError &e = result.error();
      fail(err, e.code, e.message);
      if (err && CRM_HAS_FIELD(err, crm_error, retryable)) {
        err->http_status = e.http_status;
        err->retry_after_ms = e.retry_after_ms;
        err->retryable = e.retryable ? 1 : 0;
      }
      return e.code;
    }
    std::vector<crm_http_header> headers;
    headers.reserve(result->headers.size());
    for (const auto &[name, value] : result->headers)
      headers.push_back({{name.data(), name.size()}, {value.data(), value.size()}});
    crm_http_response response{};
    response.struct_size = sizeof response;
    response.status = result->status;
    response.headers = headers.data();
    response.header_count = static_cast<uint32_t>(headers.size());
    response.attempts = result->attempts;
    response.body = {result->body.data(), result->body.size()};
    out->on_response(out, &response);
    return CRM_OK;
  } catch (const std::exception &e) {
    return fail(err, CRM_ERR_INTERNAL, std::string("http: ") + e.what());
  } catch (...) {
    return fail(err, CRM_ERR_INTERNAL, "http: unknown failure");
  }
}

const crm_http_v1 kHttpV1 = {sizeof(crm_http_v1), 0, &http_request};

void host_log(const crm_host_api *host, crm_host_instance *instance, int32_t level,
              crm_str message) {
  try {
    const auto *context = static_cast<const PluginHostContext *>(host->host_data);
    const auto spd_level = level <= CRM_LOG_TRACE   ? spdlog::level::trace
                           : level == CRM_LOG_DEBUG ? spdlog::level::debug
                           : level == CRM_LOG_INFO  ? spdlog::level::info
                           : level == CRM_LOG_WARN  ? spdlog::level::warn
                                                    : spdlog::level::err;
    // A plugin may log per call (a refused webhook, a retry): a few lines of each level per
    // plugin connection per 10 s; the next line that passes counts the rest.
    static logging::LogThrottle throttle(20, std::chrono::seconds(10));
    std::string note;
    if (spd_level >= spdlog::level::info) {
      auto admitted = throttle.admit(context->plugin_id + "/" +
                                     (instance ? instance->connection : std::string()) + "/" +
                                     std::to_string(static_cast<int>(spd_level)));
      if (!admitted) return;
      note = std::move(*admitted);
    }
    const std::string text = logging::redact(view(message)) + note;
    if (instance)
      spdlog::log(spd_level, "[plugin {} connection {}] {}", context->plugin_id,
                  instance->connection, text);
    else
      spdlog::log(spd_level, "[plugin {}] {}", context->plugin_id, text);
  } catch (...) {
    // Logging must never throw into a plugin.
  }
}

const void *host_get_extension(const crm_host_api *host, const char *id) {
  if (id && std::strcmp(id, CRM_EXT_STATE_V1) == 0) return &kStateV1;
  if (id && std::strcmp(id, CRM_EXT_HTTP_V1) == 0) {
    const auto *context = host ? static_cast<const PluginHostContext *>(host->host_data) : nullptr;
    if (context && context->services && context->services->http) return &kHttpV1;
  }
  return nullptr;
}

int64_t host_now_ms(const crm_host_api *host) {
  const auto *context = static_cast<const PluginHostContext *>(host->host_data);
  return context->services->now_ms();
}

}  // namespace

crm_host_api make_host_api(PluginHostContext *context, uint32_t negotiated_abi) {
  crm_host_api api{};
  api.struct_size = sizeof api;
  api.abi_version = negotiated_abi;
  api.host_data = context;
  api.log = &host_log;
  api.get_extension = &host_get_extension;
  api.now_ms = &host_now_ms;
  return api;
}

}  // namespace crmhost::plugins
