#include "net/http_client.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <boost/algorithm/string/predicate.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "net/http_server.hpp"
#include "util/logging.hpp"
#include "util/metrics.hpp"

namespace crmhost::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

bool may_retry(std::string_view method, uint32_t flags) {
  if (flags & CRM_HTTP_NO_RETRY) return false;
  if (flags & CRM_HTTP_IDEMPOTENT) return true;
  for (const char *m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
    if (boost::algorithm::iequals(method, m)) return true;
  return false;
}

namespace {

void observe_duration(const std::string &connection, std::chrono::steady_clock::duration took) {
  metrics::global().histogram_observe(
      "crmhost_http_request_duration_seconds",
      "Duration of outbound HTTP attempts (connect to last byte), in seconds.",
      {{"connection", connection}}, std::chrono::duration<double>(took).count(),
      metrics::latency_buckets());
}

struct Url {
  bool tls = false;
  std::string host;  // without brackets
  std::string port;
  std::string target = "/";
  std::string authority() const {
    const bool v6 = host.find(':') != std::string::npos;
    const std::string h = v6 ? "[" + host + "]" : host;
    return (port == (tls ? "443" : "80")) ? h : h + ":" + port;
  }
  std::string key() const { return std::string(tls ? "https://" : "http://") + host + ":" + port; }
};

std::optional<Url> parse_url(std::string_view s) {
  Url u;
  if (boost::algorithm::istarts_with(s, "https://")) {
    u.tls = true;
    s.remove_prefix(8);
  } else if (boost::algorithm::istarts_with(s, "http://")) {
    s.remove_prefix(7);
  } else {
    return std::nullopt;
  }
  const size_t end = s.find_first_of("/?#");
  std::string_view authority = s.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view() : s.substr(end);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  u.port = u.tls ? "443" : "80";
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    u.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return std::nullopt;
      u.port = std::string(authority.substr(close + 2));
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    u.host = std::string(authority.substr(0, colon));
    u.port = std::string(authority.substr(colon + 1));
  } else {
    u.host = std::string(authority);
  }
  if (u.host.empty() || u.port.empty() ||
      !std::all_of(u.port.begin(), u.port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  if (auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  if (!rest.empty()) u.target = rest.front() == '?' ? "/" + std::string(rest) : std::string(rest);
  return u;
}

bool is_ip(const std::string &host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

bool sensitive_header(std::string_view name) {
  for (const char *s : {"authorization", "cookie", "token", "key", "secret", "signature", "auth"})
    if (boost::algorithm::icontains(name, s)) return true;
  return false;
}

// One pooled connection, with its own io_context: the calling thread drives it, so a blocking
// call never waits on another call's I/O.
struct Conn {
  asio::io_context io;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  std::string key;
  Clock::time_point idle_since;

  beast::tcp_stream &tcp() { return tls ? tls->next_layer() : *plain; }
  void close() {
    boost::system::error_code ec;
    tcp().socket().close(ec);
  }
  // An idle keep-alive connection the peer has closed (or sent anything on) is not reusable.
  bool still_open() {
    auto &socket = tcp().socket();
    if (!socket.is_open()) return false;
    boost::system::error_code ec;
    socket.non_blocking(true, ec);
    char byte;
    socket.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, ec);
    return ec == asio::error::would_block;
  }
};

// Runs one async step on the connection's io_context until it completes or `deadline` passes;
// on timeout `cancel` aborts it and the step reports timed_out.
template <class Start>
boost::system::error_code run_step(asio::io_context &io, Clock::time_point deadline,
                                   const std::function<void()> &cancel, Start &&start) {
  std::optional<boost::system::error_code> result;
  start([&result](boost::system::error_code ec, auto &&...) { result = ec; });
  io.restart();
  const auto now = Clock::now();
  if (deadline > now)
    io.run_for(deadline - now);
  else
    io.poll();
  if (!result) {
    cancel();
    io.restart();
    io.run();
    return asio::error::timed_out;
  }
  return *result;
}

struct Failure {
  std::string what;
};

std::string describe(const boost::system::error_code &ec) {
  if (ec == asio::error::timed_out) return "timed out";
  if (ec.category() == asio::error::get_ssl_category()) {
    const unsigned long lib_error = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
    if (lib_error == SSL_R_CERTIFICATE_VERIFY_FAILED) return "certificate verify failed";
  }
  return ec.message();
}

}  // namespace

struct HttpClient::Impl {
  ClientOptions options;
  ssl::context tls_context{ssl::context::tls_client};
  std::optional<Url> proxy;
  std::vector<std::string> no_proxy;

  mutable std::mutex mutex;  // guards pool, limiters, metrics, rng
  std::map<std::string, std::deque<std::unique_ptr<Conn>>> pool;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<RateLimiter>>
      limiters;  // by (connection, bucket)
  HttpClientMetrics counters;
  std::mt19937_64 rng{std::random_device{}()};

  explicit Impl(ClientOptions o) : options(std::move(o)) {
    tls_context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                            ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                            ssl::context::no_tlsv1_1);
    tls_context.set_verify_mode(ssl::verify_peer);
    if (options.system_trust) tls_context.set_default_verify_paths();
    if (!options.extra_ca_pem.empty())
      tls_context.add_certificate_authority(asio::buffer(options.extra_ca_pem));
    std::string proxy_text;
    if (options.https_proxy) {
      proxy_text = *options.https_proxy;
    } else if (const char *env = std::getenv("HTTPS_PROXY")) {
      proxy_text = env;
    } else if (const char *env_lower = std::getenv("https_proxy")) {
      proxy_text = env_lower;
    }
    if (!proxy_text.empty()) {
      if (proxy_text.find("://") == std::string::npos) proxy_text = "http://" + proxy_text;
      proxy = parse_url(proxy_text);
      if (!proxy || proxy->tls)
        throw std::runtime_error("HTTPS_PROXY must be http://host:port: " +
                                 logging::redact(proxy_text));
    }
    std::string no_proxy_text;
    if (options.no_proxy) {
      no_proxy_text = *options.no_proxy;
    } else if (const char *env = std::getenv("NO_PROXY")) {
      no_proxy_text = env;
    } else if (const char *env_lower = std::getenv("no_proxy")) {
      no_proxy_text = env_lower;
    }
    size_t pos = 0;
    while (pos <= no_proxy_text.size()) {
      size_t comma = no_proxy_text.find(',', pos);
      if (comma == std::string::npos) comma = no_proxy_text.size();
      std::string item = no_proxy_text.substr(pos, comma - pos);
      item.erase(0, item.find_first_not_of(' '));
      item.erase(item.find_last_not_of(' ') + 1);
      if (!item.empty()) no_proxy.push_back(item);
      pos = comma + 1;
    }
  }

  bool use_proxy(const Url &url) const {
    if (!proxy || !url.tls) return false;
    for (const auto &item : no_proxy) {
      if (item == "*") return false;
      std::string suffix = item.front() == '.' ? item.substr(1) : item;
      if (boost::algorithm::iequals(url.host, suffix) ||
          boost::algorithm::iends_with(url.host, "." + suffix))
        return false;
    }
    return true;
  }

  // The configured budget of a connection's bucket; the caller holds `mutex`.
  RateSpec spec_of(const std::string &connection, const std::string &bucket) const {
    auto it = bucket.empty() ? options.rate_limits.end()
                             : options.rate_limits.find(connection + "/" + bucket);
    if (it == options.rate_limits.end()) it = options.rate_limits.find(connection);
    return it == options.rate_limits.end() ? RateSpec{} : it->second;
  }

  std::shared_ptr<RateLimiter> limiter(const std::string &connection, const std::string &bucket) {
    std::lock_guard lock(mutex);
    auto &slot = limiters[{connection, bucket}];
    if (!slot) slot = std::make_shared<RateLimiter>(spec_of(connection, bucket));
    return slot;
  }

  void set_rate_limits(std::map<std::string, RateSpec> rate_limits) {
    std::lock_guard lock(mutex);
    options.rate_limits = std::move(rate_limits);
    for (auto &[key, limiter] : limiters) limiter->set_spec(spec_of(key.first, key.second));
  }

  std::unique_ptr<Conn> take(const std::string &key) {
    std::lock_guard lock(mutex);
    auto it = pool.find(key);
    if (it == pool.end()) return nullptr;
    while (!it->second.empty()) {
      auto conn = std::move(it->second.back());
      it->second.pop_back();
      if (Clock::now() - conn->idle_since < options.idle_timeout && conn->still_open()) return conn;
    }
    return nullptr;
  }

  void give_back(std::unique_ptr<Conn> conn) {
    conn->idle_since = Clock::now();
    std::lock_guard lock(mutex);
    auto &idle = pool[conn->key];
    if (idle.size() >= options.max_idle_per_host) idle.pop_front();
    idle.push_back(std::move(conn));
  }

  std::unique_ptr<Conn> open(const Url &url, Clock::time_point deadline) {
    auto conn = std::make_unique<Conn>();
    conn->key = url.key();
    if (url.tls)
      conn->tls.emplace(conn->io, tls_context);
    else
      conn->plain.emplace(conn->io);
    const Clock::time_point connect_deadline =
        std::min(deadline, Clock::now() + options.connect_timeout);
    const bool via_proxy = use_proxy(url);
    const Url &hop = via_proxy ? *proxy : url;

    tcp::resolver resolver(conn->io);
    tcp::resolver::results_type endpoints;
    auto ec = run_step(
        conn->io, connect_deadline, [&] { resolver.cancel(); },
        [&](auto handler) {
          resolver.async_resolve(hop.host, hop.port,
                                 [&endpoints, handler](boost::system::error_code e,
                                                       tcp::resolver::results_type r) mutable {
                                   endpoints = std::move(r);
                                   handler(e);
                                 });
        });
    if (ec) throw Failure{"resolve " + hop.host + ": " + describe(ec)};
    ec = run_step(
        conn->io, connect_deadline, [&] { conn->close(); },
        [&](auto handler) { conn->tcp().async_connect(endpoints, handler); });
    if (ec) throw Failure{"connect " + hop.host + ":" + hop.port + ": " + describe(ec)};
    conn->tcp().socket().set_option(tcp::no_delay(true), ec);

    if (via_proxy) {
      http::request<http::empty_body> connect{http::verb::connect, url.host + ":" + url.port, 11};
      connect.set(http::field::host, url.host + ":" + url.port);
      ec = run_step(
          conn->io, connect_deadline, [&] { conn->close(); },
          [&](auto handler) { http::async_write(conn->tcp(), connect, handler); });
      if (ec) throw Failure{"proxy CONNECT: " + describe(ec)};
      http::response_parser<http::empty_body> answer;
      answer.header_limit(kMaxResponseHeaderBytes);
      answer.skip(true);  // a CONNECT answer has no body
      ec = run_step(
          conn->io, connect_deadline, [&] { conn->close(); },
          [&](auto handler) {
            http::async_read_header(conn->tcp(), conn->buffer, answer, handler);
          });
      if (ec) throw Failure{"proxy CONNECT: " + describe(ec)};
      if (answer.get().result_int() != 200)
        throw Failure{"proxy CONNECT refused with HTTP " +
                      std::to_string(answer.get().result_int())};
    }
    if (url.tls) {
      if (!is_ip(url.host) &&
          !SSL_set_tlsext_host_name(conn->tls->native_handle(), url.host.c_str()))
        throw Failure{"TLS: cannot set SNI"};
      conn->tls->set_verify_callback(ssl::host_name_verification(url.host));
      ec = run_step(
          conn->io, connect_deadline, [&] { conn->close(); },
          [&](auto handler) { conn->tls->async_handshake(ssl::stream_base::client, handler); });
      if (ec) throw Failure{"TLS handshake with " + url.host + ": " + describe(ec)};
    }
    return conn;
  }

  // One exchange; a Failure when no response arrived.
  plugins::HttpReply attempt(const Url &url, const plugins::HttpCall &call,
                             const std::string &request_id, Clock::time_point deadline) {
    auto conn = take(url.key());
    if (!conn) conn = open(url, deadline);

    http::request<http::string_body> req;
    req.version(11);
    req.method_string(call.method);
    req.target(url.target);
    req.set(http::field::host, url.authority());
    req.set(http::field::user_agent, "crmhost");
    bool has_id = false;
    for (const auto &[name, value] : call.headers) {
      if (boost::algorithm::iequals(name, "Host") ||
          boost::algorithm::iequals(name, "Content-Length") ||
          boost::algorithm::iequals(name, "Connection"))
        continue;
      if (boost::algorithm::iequals(name, "X-Request-Id")) has_id = true;
      req.insert(name, value);
    }
    if (!has_id) req.set("X-Request-Id", request_id);
    req.body() = call.body;
    if (!call.body.empty() || !boost::algorithm::iequals(call.method, "GET")) req.prepare_payload();
    req.keep_alive(true);

    auto write_read = [&](auto &stream) {
      auto ec = run_step(
          conn->io, deadline, [&] { conn->close(); },
          [&](auto handler) { http::async_write(stream, req, handler); });
      if (ec) throw Failure{"send: " + describe(ec)};
      http::response_parser<http::string_body> parser;
      parser.body_limit(options.max_response_body);
      // Beast's default is 8 KB of headers; APIs behind proxies and CDNs (long Set-Cookie,
      // tracing and policy headers) send more.
      parser.header_limit(kMaxResponseHeaderBytes);
      if (boost::algorithm::iequals(call.method, "HEAD")) parser.skip(true);
      ec = run_step(
          conn->io, deadline, [&] { conn->close(); },
          [&](auto handler) { http::async_read(stream, conn->buffer, parser, handler); });
      if (ec) throw Failure{"receive: " + describe(ec)};
      return parser.release();
    };
    auto res = conn->tls ? write_read(*conn->tls) : write_read(*conn->plain);

    plugins::HttpReply reply;
    reply.status = static_cast<int32_t>(res.result_int());
    for (const auto &field : res)
      reply.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    reply.body = std::move(res.body());
    if (res.keep_alive() && conn->buffer.size() == 0) give_back(std::move(conn));
    return reply;
  }

  // One attempt's outcome: in this client's counters and in crmhost_http_requests_total
  // (status is the HTTP status, or rate_limited / transport_error when there was none).
  void count(const std::string &connection, const std::string &method, const std::string &outcome) {
    {
      std::lock_guard lock(mutex);
      ++counters.requests[{connection, outcome}];
    }
    metrics::global().counter_add(
        "crmhost_http_requests_total", "Outbound HTTP requests of plugins, by outcome.",
        {{"connection", connection}, {"method", method}, {"status", outcome}});
  }

  milliseconds jitter(uint32_t retry) {
    const double ceiling = std::min<double>(static_cast<double>(options.backoff_cap.count()),
                                            static_cast<double>(options.backoff_base.count()) *
                                                std::pow(2.0, std::min<uint32_t>(retry, 30)));
    std::lock_guard lock(mutex);
    return milliseconds(
        static_cast<int64_t>(std::uniform_real_distribution<double>(0, ceiling)(rng)));
  }
};

HttpClient::HttpClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpClient::~HttpClient() = default;

plugins::HttpResult HttpClient::request(const std::string &connection,
                                        const plugins::HttpCall &call) {
  Impl &d = *impl_;
  const auto start = Clock::now();
  const auto deadline =
      start + (call.timeout_ms ? milliseconds(call.timeout_ms) : d.options.default_timeout);
  const std::string shown_url = logging::redact(call.url);
  plugins::CallError error;
  error.code = CRM_ERR_INVALID_INPUT;
  auto url = parse_url(call.url);
  if (!url) {
    error.message = "not an absolute http(s) URL: " + shown_url;
    return error;
  }
  if (call.method.empty() || !std::all_of(call.method.begin(), call.method.end(),
                                          [](char c) { return c >= 'A' && c <= 'Z'; })) {
    error.message = "bad HTTP method";
    return error;
  }
  std::string request_id = new_request_id();
  for (const auto &[name, value] : call.headers)
    if (boost::algorithm::iequals(name, "X-Request-Id")) request_id = value;
  {
    std::lock_guard lock(d.mutex);
    ++d.counters.calls;
  }
  if (spdlog::default_logger_raw()->should_log(spdlog::level::trace))
    for (const auto &[name, value] : call.headers)
      spdlog::trace("http {} {} request header {}: {}", connection, request_id, name,
                    sensitive_header(name) ? std::string("[redacted]") : logging::redact(value));

  const bool retry = may_retry(call.method, call.flags);
  auto limiter = d.limiter(connection, call.bucket);
  std::optional<plugins::HttpReply> last;
  plugins::CallError transport;
  for (uint32_t attempt = 1;; ++attempt) {
    auto now = Clock::now();
    const auto grant =
        limiter->acquire(now, WallClock::now(),
                         std::min<Clock::duration>(d.options.max_rate_wait,
                                                   std::max(deadline - now, Clock::duration{0})));
    if (!grant.granted) {
      const auto retry_ms = duration_cast<milliseconds>(grant.retry_after).count();
      if (auto until = limiter->paused_until(WallClock::now())) {
        const int64_t until_ms = duration_cast<milliseconds>(until->time_since_epoch()).count();
        bool first = false;
        {
          std::lock_guard lock(d.mutex);
          auto &slot = d.counters.paused_until_ms[connection + "/" + call.bucket];
          first = slot != until_ms;
          slot = until_ms;
        }
        if (first)
          spdlog::warn(
              "http {}: the provider's daily quota is spent; connection paused for {} s "
              "until its reset",
              connection, retry_ms / 1000);
      }
      if (last) return *last;  // the provider's own answer is the more useful one
      d.count(connection, call.method, "rate_limited");
      plugins::CallError limited;
      limited.code = CRM_ERR_RATE_LIMITED;
      limited.retryable = true;
      limited.retry_after_ms =
          static_cast<int32_t>(std::min<int64_t>(retry_ms, std::numeric_limits<int32_t>::max()));
      limited.message = grant.reason + "; retry after " + std::to_string(retry_ms) + " ms";
      spdlog::warn("http {} {} {} {}: {}", connection, request_id, call.method, shown_url,
                   limited.message);
      return limited;
    }
    if (grant.wait.count() > 0) {
      const double waited = std::chrono::duration<double>(grant.wait).count();
      {
        std::lock_guard lock(d.mutex);
        ++d.counters.throttled;
        d.counters.rate_limit_wait_seconds += waited;
      }
      metrics::global().counter_add("crmhost_rate_limit_wait_seconds_total",
                                    "Time calls waited for their rate limiter, in seconds.",
                                    {{"connection", connection}}, waited);
      spdlog::debug("http {} {}: rate limit wait {} ms", connection, request_id,
                    duration_cast<milliseconds>(grant.wait).count());
      std::this_thread::sleep_for(grant.wait);
    }

    const auto attempt_start = Clock::now();
    bool retryable = false;
    std::optional<Clock::duration> retry_after;
    try {
      plugins::HttpReply reply = d.attempt(*url, call, request_id, deadline);
      reply.attempts = attempt;
      limiter->observe(Clock::now(), WallClock::now(), reply.status, reply.headers, attempt_start);
      d.count(connection, call.method, std::to_string(reply.status));
      observe_duration(connection, Clock::now() - attempt_start);
      if (reply.status == 429)
        metrics::global().counter_add("crmhost_provider_throttled_total",
                                      "Responses 429 (too many requests) from providers.",
                                      {{"connection", connection}});
      spdlog::debug("http {} {} {} {} -> {} in {} ms (attempt {})", connection, request_id,
                    call.method, shown_url, reply.status,
                    duration_cast<milliseconds>(Clock::now() - attempt_start).count(), attempt);
      retryable = reply.status == 429 || (reply.status >= 500 && reply.status <= 599 &&
                                          reply.status != 501 && reply.status != 505);
      for (const auto &[name, value] : reply.headers)
        if (boost::algorithm::iequals(name, "Retry-After"))
          retry_after = parse_retry_after(value, WallClock::now());
      last = std::move(reply);
      transport = {};
    } catch (const Failure &f) {
      d.count(connection, call.method, "transport_error");
      observe_duration(connection, Clock::now() - attempt_start);
      transport.code = CRM_ERR_TRANSPORT;
      transport.retryable = true;
      transport.message = logging::redact(call.method + " " + call.url + ": " + f.what);
      spdlog::warn("http {} {} {} (attempt {})", connection, request_id, transport.message,
                   attempt);
      last.reset();
      retryable = true;
    } catch (const std::exception &e) {
      transport.code = CRM_ERR_INTERNAL;
      transport.message = logging::redact(std::string("http client: ") + e.what());
      spdlog::error("http {} {} {}", connection, request_id, transport.message);
      return transport;
    }

    auto finish = [&]() -> plugins::HttpResult {
      if (last) return *last;
      return transport;
    };
    if (!retryable || !retry || attempt >= d.options.max_attempts) return finish();
    milliseconds delay = d.jitter(attempt - 1);
    if (retry_after) delay = std::max(delay, duration_cast<milliseconds>(*retry_after));
    if (Clock::now() + delay >= deadline) {
      spdlog::warn("http {} {} {} {}: no retry within the deadline after attempt {}", connection,
                   request_id, call.method, shown_url, attempt);
      return finish();
    }
    {
      std::lock_guard lock(d.mutex);
      ++d.counters.retries;
    }
    if (d.options.on_backoff) d.options.on_backoff(connection, delay);
    spdlog::info("http {} {} {} {}: retry {} in {} ms", connection, request_id, call.method,
                 shown_url, attempt + 1, delay.count());
    std::this_thread::sleep_for(delay);
  }
}

HttpClientMetrics HttpClient::metrics() const {
  std::lock_guard lock(impl_->mutex);
  HttpClientMetrics copy = impl_->counters;
  const int64_t now_ms = duration_cast<milliseconds>(WallClock::now().time_since_epoch()).count();
  std::erase_if(copy.paused_until_ms, [&](const auto &p) { return p.second <= now_ms; });
  return copy;
}

void HttpClient::set_rate_limits(std::map<std::string, RateSpec> rate_limits) {
  impl_->set_rate_limits(std::move(rate_limits));
}

size_t HttpClient::idle_connections() const {
  std::lock_guard lock(impl_->mutex);
  size_t n = 0;
  for (const auto &[key, idle] : impl_->pool) n += idle.size();
  return n;
}

}  // namespace crmhost::net
