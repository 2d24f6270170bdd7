#pragma once
// Parts every provider emulator of crm-sandbox shares: fault injection, rolling rate windows,
// a loopback server wrapper around the host's HttpServer, a blocking HTTP POST for webhook
// deliveries, and small helpers (time, URL decoding, hashing, ids).
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>

#include "net/http_server.hpp"

namespace crmsandbox {

using crmhost::net::Headers;
using crmhost::net::HttpRequest;
using crmhost::net::HttpResponse;

int64_t now_ms();
std::string iso8601_ms(int64_t unix_ms);
// Epoch milliseconds ("1700000000000") or ISO 8601 ("2023-11-14T22:13:20Z"); nullopt otherwise.
std::optional<int64_t> parse_time_ms(std::string_view text);
// A whole decimal number (integer or fractional); nullopt otherwise.
std::optional<double> parse_number(std::string_view text);

std::string url_decode(std::string_view text, bool plus_is_space = true);
// "a=1&b=x%20y" -> {a: 1, b: x y}; the last of repeated keys wins.
std::map<std::string, std::string> parse_query(std::string_view query);

std::string lowercase(std::string_view text);
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);
std::string sha256_hex(std::string_view bytes);
std::string hmac_sha256(std::string_view key, std::string_view bytes);  // raw digest
std::string random_uuid();
std::string random_hex(size_t bytes);

// Faults injected into API answers: shares of requests (0..1) and an added latency.
struct FaultConfig {
  double p429 = 0;       // answered 429 as the provider's rate limiter would
  double p5xx = 0;       // answered 502 or 503
  int latency_ms = 0;    // added before every answer
  double drop = 0;       // connection closed without an answer
  double malformed = 0;  // a 2xx JSON answer truncated mid-body
};

struct FaultDecision {
  int status = 0;  // 0: none; else 429, 502 or 503
  bool drop = false;
  bool malformed = false;
  int latency_ms = 0;
};

// Draws the faults of each request from one seeded generator, so a sequential client sees the
// same faults on every run with the same seed.
class FaultInjector {
 public:
  explicit FaultInjector(uint64_t seed = 0) : rng_(seed) {}
  void configure(const FaultConfig &config);
  void reseed(uint64_t seed);
  FaultConfig config() const;
  FaultDecision draw();

 private:
  mutable std::mutex mutex_;
  FaultConfig config_;
  std::mt19937_64 rng_;
};

// Timestamps of the requests granted within the last `window` (a rolling window, not buckets).
class RollingWindow {
 public:
  // Grants and records the request when fewer than `limit` fall in the window ending at `now`.
  bool try_acquire(int64_t now, int64_t limit, int64_t window_ms);
  // Requests recorded within the `window_ms` ending at `now`.
  int64_t used(int64_t now, int64_t window_ms) const;
  void clear() { stamps_.clear(); }

 private:
  void expire(int64_t now, int64_t window_ms);
  std::deque<int64_t> stamps_;
};

// The host's HttpServer on its own io thread and handler pool, for one emulator.
class LoopbackServer {
 public:
  LoopbackServer(std::string listen, crmhost::net::Handler handler, size_t handler_threads = 4);
  ~LoopbackServer();
  LoopbackServer(const LoopbackServer &) = delete;
  LoopbackServer &operator=(const LoopbackServer &) = delete;
  void start();  // throws std::runtime_error when the address cannot be bound
  void stop();   // idempotent; waits for the io thread and running handlers
  uint16_t port() const { return port_; }

 private:
  struct Parts;
  std::unique_ptr<Parts> parts_;
  std::string listen_;
  crmhost::net::Handler handler_;
  size_t threads_;
  uint16_t port_ = 0;
};

struct HttpResult {
  int status = 0;     // 0 when there was no HTTP answer
  std::string error;  // transport failure or "timeout", when status is 0
  Headers headers;
  std::string body;
  std::string header(std::string_view name) const;  // case-insensitive; empty when absent
};

// One blocking HTTP/1.1 exchange on a fresh connection to an http:// URL (no TLS: the targets
// are local test receivers and emulators).
HttpResult http_request(const std::string &method, const std::string &url, const Headers &headers,
                        const std::string &body, std::chrono::milliseconds timeout);

}  // namespace crmsandbox
