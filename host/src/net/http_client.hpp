#pragma once
// The outbound HTTP client behind crm.http.v1 (Boost.Beast): HTTPS verified against the system
// trust store (plus optional extra CAs) with SNI, plain HTTP, HTTPS_PROXY tunnelling, a bounded
// pool of idle keep-alive connections per scheme, host and port, connect and whole-call timeouts,
// a rate limiter per connection and bucket (net/rate_limiter.hpp), retries of 429, 5xx and
// transport errors with full-jitter exponential backoff bounded by attempts and the deadline,
// X-Request-Id on every call, counters, and log lines with credentials redacted.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "net/rate_limiter.hpp"
#include "plugins/host_services.hpp"

namespace crmhost::net {

// Response headers the client reads, in all: 8 times Beast's default, for APIs behind proxies.
inline constexpr uint32_t kMaxResponseHeaderBytes = 64 * 1024;

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  std::chrono::milliseconds default_timeout{60'000};  // a call's deadline, retries included
  uint32_t max_attempts = 4;
  std::chrono::milliseconds backoff_base{500};  // full jitter: uniform(0, min(cap, base * 2^n))
  std::chrono::milliseconds backoff_cap{20'000};
  // The longest a call waits for its rate limiter; beyond it the call fails rate_limited.
  std::chrono::milliseconds max_rate_wait{30'000};
  size_t max_idle_per_host = 8;
  std::chrono::milliseconds idle_timeout{30'000};  // idle pooled connections older are closed
  uint64_t max_response_body = 64ull << 20;
  bool system_trust = true;  // the system's CA store
  std::string extra_ca_pem;  // more trust anchors (PEM), e.g. a test CA
  // "http://host:port" for https URLs; unset: HTTPS_PROXY / https_proxy, with NO_PROXY honoured.
  std::optional<std::string> https_proxy;
  std::optional<std::string> no_proxy;
  // By connection name (its default bucket), or "<connection>/<bucket>" for a plugin's named
  // bucket; a named bucket without its own entry gets the connection's budget, separately.
  std::map<std::string, RateSpec> rate_limits;
  // Test hook: each backoff delay chosen before a retry.
  std::function<void(const std::string &connection, std::chrono::milliseconds)> on_backoff;
};

// The client's own counters, for tests and `metrics()`; the same attempts are counted in the
// process's Prometheus registry (util/metrics) that /metrics renders.
struct HttpClientMetrics {
  // (connection, outcome) -> attempts; outcome is the HTTP status ("200", "429") or
  // "transport_error" or "rate_limited" (refused by the limiter, never sent).
  std::map<std::pair<std::string, std::string>, uint64_t> requests;
  uint64_t calls = 0;
  uint64_t retries = 0;
  uint64_t throttled = 0;  // calls the limiter made wait
  double rate_limit_wait_seconds = 0;
  std::map<std::string, int64_t> paused_until_ms;  // connection/bucket -> Unix ms, while paused
};

class HttpClient final : public plugins::OutboundHttp {
 public:
  explicit HttpClient(ClientOptions options = {});
  ~HttpClient() override;
  HttpClient(const HttpClient &) = delete;
  HttpClient &operator=(const HttpClient &) = delete;

  plugins::HttpResult request(const std::string &connection,
                              const plugins::HttpCall &call) override;
  HttpClientMetrics metrics() const;
  size_t idle_connections() const;
  // Replaces the configured rate limits (a reload); limiters in use keep their learnt state.
  void set_rate_limits(std::map<std::string, RateSpec> rate_limits);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Whether the host may repeat the call on its own (method and CRM_HTTP_* flags).
bool may_retry(std::string_view method, uint32_t flags);

}  // namespace crmhost::net
