// The outbound client against local servers: the inbound Beast server with scripted answers, a
// raw acceptor that drops connections, and a TLS server whose CA is made at test time.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <unistd.h>

#include <openssl/ssl.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

#include "net/http_client.hpp"
#include "net/http_server.hpp"
#include "net/rate_limiter.hpp"
#include "test_pki.hpp"
#include "util/metrics.hpp"

using namespace crmhost;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Seen {
  Clock::time_point at;
  net::HttpRequest request;
};

// The inbound server with a handler the test scripts; records every request it answers.
struct ScriptedServer {
  asio::io_context io;
  asio::thread_pool pool{4};
  std::unique_ptr<net::HttpServer> server;
  std::thread io_thread;
  std::mutex mutex;
  std::vector<Seen> seen;
  std::function<net::HttpResponse(const net::HttpRequest &, size_t)> script;

  explicit ScriptedServer(std::function<net::HttpResponse(const net::HttpRequest &, size_t)> s)
      : script(std::move(s)) {
    net::ServerOptions options;
    options.listen = {"127.0.0.1:0"};
    server = std::make_unique<net::HttpServer>(io, pool, options, [this](const auto &r) {
      size_t n;
      {
        std::lock_guard lock(mutex);
        seen.push_back({Clock::now(), r});
        n = seen.size();
      }
      return script(r, n);
    });
    server->start();
    io_thread = std::thread([this] { io.run(); });
  }
  ~ScriptedServer() {
    server->stop();
    io.stop();
    io_thread.join();
    pool.join();
  }
  std::string url(const std::string &path = "/x") const {
    return "http://127.0.0.1:" + std::to_string(server->ports().at(0)) + path;
  }
  std::vector<Seen> requests() {
    std::lock_guard lock(mutex);
    return seen;
  }
};

net::HttpResponse answer(int status, net::Headers headers = {}, std::string body = "") {
  return net::HttpResponse{status, "text/plain", std::move(headers), std::move(body)};
}

plugins::HttpCall get(const std::string &url, uint32_t timeout_ms = 5000) {
  plugins::HttpCall call;
  call.method = "GET";
  call.url = url;
  call.timeout_ms = timeout_ms;
  return call;
}

net::ClientOptions fast_options() {
  net::ClientOptions o;
  o.backoff_base = 10ms;
  o.backoff_cap = 100ms;
  o.no_proxy = "*";
  o.https_proxy = "";
  return o;
}

long ms_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count());
}

// Accepts connections on a thread; answers each request with `reply`, or closes the socket
// unanswered for the first `drops` connections. Returns a raw HTTP/1.1 response string.
struct DroppingServer {
  asio::io_context io;
  tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
  std::atomic<int> connections{0};
  std::atomic<bool> stopping{false};
  std::thread thread;
  DroppingServer(int drops, std::string reply) {
    thread = std::thread([this, drops, reply] {
      while (!stopping) {
        tcp::socket socket(io);
        boost::system::error_code ec;
        acceptor.accept(socket, ec);
        if (ec || stopping) break;
        const int n = ++connections;
        std::string data;
        asio::read_until(socket, asio::dynamic_buffer(data), "\r\n\r\n", ec);
        if (n > drops) asio::write(socket, asio::buffer(reply), ec);
        socket.close(ec);
      }
    });
  }
  ~DroppingServer() {
    stopping = true;
    boost::system::error_code ec;
    tcp::socket wake(io);
    wake.connect(acceptor.local_endpoint(), ec);
    thread.join();
  }
  uint16_t port() const { return acceptor.local_endpoint().port(); }
};

// A minimal TLS server: one request per connection, answered 200 with the SNI name it saw.
struct TlsServer {
  asio::io_context io;
  asio::ssl::context ctx{asio::ssl::context::tls_server};
  tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
  std::atomic<bool> stopping{false};
  std::atomic<int> handshakes{0};
  std::thread thread;
  explicit TlsServer(const test::Pki &pki) {
    ctx.use_certificate_chain(asio::buffer(pki.cert_pem));
    ctx.use_private_key(asio::buffer(pki.key_pem), asio::ssl::context::pem);
    thread = std::thread([this] {
      while (!stopping) {
        tcp::socket socket(io);
        boost::system::error_code ec;
        acceptor.accept(socket, ec);
        if (ec || stopping) break;
        asio::ssl::stream<tcp::socket> tls(std::move(socket), ctx);
        tls.handshake(asio::ssl::stream_base::server, ec);
        if (ec) continue;
        ++handshakes;
        const char *sni = SSL_get_servername(tls.native_handle(), TLSEXT_NAMETYPE_host_name);
        boost::beast::flat_buffer buffer;
        http::request<http::string_body> req;
        http::read(tls, buffer, req, ec);
        if (ec) continue;
        http::response<http::string_body> res{http::status::ok, 11};
        res.body() = std::string("sni=") + (sni ? sni : "");
        res.keep_alive(false);
        res.prepare_payload();
        http::write(tls, res, ec);
        tls.shutdown(ec);
      }
    });
  }
  ~TlsServer() {
    stopping = true;
    boost::system::error_code ec;
    tcp::socket wake(io);
    wake.connect(acceptor.local_endpoint(), ec);
    thread.join();
  }
  uint16_t port() const { return acceptor.local_endpoint().port(); }
};

// Routes the default logger into a string for the life of the object.
struct LogCapture {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  LogCapture() {
    auto logger = std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous); }
  std::string text() {
    spdlog::default_logger()->flush();
    return out.str();
  }
};

}  // namespace

TEST_CASE("client: keep-alive reuses one pooled connection and sends X-Request-Id", "[net]") {
  ScriptedServer server([](const net::HttpRequest &r, size_t) {
    return answer(200, {{"X-Echo", r.request_id}}, r.method + " " + r.target + " " + r.body);
  });
  net::HttpClient client(fast_options());
  auto first = client.request("conn", get(server.url("/a?b=1")));
  REQUIRE(first.ok());
  CHECK(first->status == 200);
  CHECK(first->attempts == 1);
  CHECK(first->body == "GET /a?b=1 ");
  CHECK(client.idle_connections() == 1);

  plugins::HttpCall post;
  post.method = "POST";
  post.url = server.url("/p");
  post.body = "hello";
  post.headers = {{"X-Request-Id", "req-42"}};
  auto second = client.request("conn", post);
  REQUIRE(second.ok());
  CHECK(second->body == "POST /p hello");
  CHECK(client.idle_connections() == 1);
  const auto seen = server.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].request.request_id.size() == 32);  // generated by the client
  CHECK(seen[1].request.request_id == "req-42");
  CHECK(seen[0].request.remote == seen[1].request.remote);  // the same socket
  const auto m = client.metrics();
  CHECK(m.calls == 2);
  CHECK(m.requests.at({"conn", "200"}) == 2);
}

TEST_CASE("client: 429 with Retry-After is retried after the wait and the plugin sees 200",
          "[net]") {
  ScriptedServer server([](const net::HttpRequest &, size_t n) {
    return n == 1 ? answer(429, {{"Retry-After", "1"}}, "slow down") : answer(200, {}, "ok");
  });
  net::HttpClient client(fast_options());
  auto result = client.request("conn", get(server.url()));
  REQUIRE(result.ok());
  CHECK(result->status == 200);
  CHECK(result->attempts == 2);
  const auto seen = server.requests();
  REQUIRE(seen.size() == 2);
  CHECK(ms_between(seen[0].at, seen[1].at) >= 950);
  CHECK(client.metrics().requests.at({"conn", "429"}) == 1);
}

TEST_CASE("client: 503 backoff is full jitter and bounded by attempts", "[net]") {
  ScriptedServer server([](const net::HttpRequest &, size_t) { return answer(503); });
  auto options = fast_options();
  options.max_attempts = 6;
  options.backoff_base = 8ms;
  options.backoff_cap = 64ms;
  std::mutex mutex;
  std::vector<std::chrono::milliseconds> delays;
  options.on_backoff = [&](const std::string &, std::chrono::milliseconds d) {
    std::lock_guard lock(mutex);
    delays.push_back(d);
  };
  net::HttpClient client(options);
  std::vector<std::chrono::milliseconds> all;
  for (int i = 0; i < 4; ++i) {
    delays.clear();
    auto result = client.request("conn", get(server.url()));
    REQUIRE(result.ok());
    CHECK(result->status == 503);  // the final answer reaches the plugin
    CHECK(result->attempts == 6);
    REQUIRE(delays.size() == 5);
    for (size_t k = 0; k < delays.size(); ++k)
      CHECK(delays[k].count() <= std::min<long>(64, 8L << k));  // within the full-jitter range
    all.insert(all.end(), delays.begin(), delays.end());
  }
  CHECK(server.requests().size() == 24);
  std::sort(all.begin(), all.end());
  CHECK(std::unique(all.begin(), all.end()) - all.begin() > 5);  // jittered, not a fixed ladder
}

TEST_CASE("client: the deadline holds against a slow server and against endless 503s", "[net]") {
  ScriptedServer slow([](const net::HttpRequest &, size_t) {
    std::this_thread::sleep_for(800ms);
    return answer(200);
  });
  net::HttpClient client(fast_options());
  auto start = Clock::now();
  auto timed_out = client.request("conn", get(slow.url(), 300));
  REQUIRE_FALSE(timed_out.ok());
  CHECK(timed_out.error().code == CRM_ERR_TRANSPORT);
  CHECK(timed_out.error().retryable);
  CHECK(ms_between(start, Clock::now()) < 700);

  ScriptedServer failing([](const net::HttpRequest &, size_t) { return answer(503); });
  auto options = fast_options();
  options.max_attempts = 1000;
  options.backoff_base = 50ms;
  net::HttpClient patient(options);
  start = Clock::now();
  auto result = patient.request("conn", get(failing.url(), 400));
  const long took = ms_between(start, Clock::now());
  REQUIRE(result.ok());
  CHECK(result->status == 503);
  CHECK(took < 500);
  CHECK(result->attempts < 40);
}

TEST_CASE("client: dropped connections are retried for GET but not for a plain POST", "[net]") {
  const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
  {
    DroppingServer server(2, ok);
    net::HttpClient client(fast_options());
    auto result =
        client.request("conn", get("http://127.0.0.1:" + std::to_string(server.port()) + "/x"));
    REQUIRE(result.ok());
    CHECK(result->status == 200);
    CHECK(result->attempts == 3);
    CHECK(client.metrics().requests.at({"conn", "transport_error"}) == 2);
  }
  {
    DroppingServer server(1, ok);
    net::HttpClient client(fast_options());
    plugins::HttpCall post = get("http://127.0.0.1:" + std::to_string(server.port()) + "/x");
    post.method = "POST";
    post.body = "{}";
    auto result = client.request("conn", post);
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code == CRM_ERR_TRANSPORT);
    CHECK(server.connections == 1);

    post.flags = CRM_HTTP_IDEMPOTENT;  // the plugin marks it safe to repeat
    auto retried = client.request("conn", post);
    REQUIRE(retried.ok());
    CHECK(retried->attempts == 1);  // the server drops only its first connection
  }
  CHECK(net::may_retry("PUT", 0));
  CHECK_FALSE(net::may_retry("PATCH", 0));
  CHECK(net::may_retry("PATCH", CRM_HTTP_IDEMPOTENT));
  CHECK_FALSE(net::may_retry("GET", CRM_HTTP_NO_RETRY));
}

TEST_CASE("client: the configured token bucket keeps calls within budget", "[net]") {
  ScriptedServer server([](const net::HttpRequest &, size_t) { return answer(200); });
  auto options = fast_options();
  options.rate_limits["conn"] = net::RateSpec{5, 500ms, 5};  // 10/s with a burst of 5
  net::HttpClient client(options);
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {  // Catch2's assertions are not thread-safe: count, check below
      for (int i = 0; i < 4; ++i) failed += !client.request("conn", get(server.url())).ok();
    });
  for (auto &t : threads) t.join();
  CHECK(failed == 0);
  auto seen = server.requests();
  REQUIRE(seen.size() == 12);
  // Token bucket: at most burst + rate * t calls in any span of length t.
  for (size_t i = 0; i < seen.size(); ++i)
    for (size_t j = i + 5; j < seen.size(); ++j)
      CHECK(ms_between(seen[i].at, seen[j].at) >= static_cast<long>(j - i - 5 + 1) * 100 - 30);
  CHECK(client.metrics().throttled >= 6);
  CHECK(client.metrics().rate_limit_wait_seconds > 0.3);
}

TEST_CASE("client: new rate limits apply to connections already in use (a reload)", "[net]") {
  ScriptedServer server([](const net::HttpRequest &, size_t) { return answer(200); });
  auto options = fast_options();
  options.rate_limits["conn"] = net::RateSpec{1, 1000ms, 1};  // 1/s
  net::HttpClient client(options);
  REQUIRE(client.request("conn", get(server.url())).ok());  // the limiter exists, its token spent
  client.set_rate_limits({{"conn", net::RateSpec{5, 100ms, 1}}});  // 50/s
  REQUIRE(client.request("conn", get(server.url())).ok());
  REQUIRE(client.request("conn", get(server.url())).ok());
  auto seen = server.requests();
  REQUIRE(seen.size() == 3);
  // Under the old budget the second call would have waited about a second.
  CHECK(ms_between(seen[0].at, seen[2].at) < 500);
  CHECK(ms_between(seen[1].at, seen[2].at) >= 15);  // the new one: 20 ms apart, burst 1

  client.set_rate_limits({{"conn", net::RateSpec{1, 1000ms, 1}}});  // back to 1/s
  REQUIRE(client.request("conn", get(server.url())).ok());
  REQUIRE(client.request("conn", get(server.url())).ok());
  seen = server.requests();
  REQUIRE(seen.size() == 5);
  CHECK(ms_between(seen[3].at, seen[4].at) >= 900);
}

TEST_CASE("client: provider rate-limit headers slow calls down before a 429", "[net]") {
  ScriptedServer server([](const net::HttpRequest &, size_t n) {
    if (n == 1)
      return answer(200, {{"X-HubSpot-RateLimit-Max", "100"},
                          {"X-HubSpot-RateLimit-Remaining", "0"},
                          {"X-HubSpot-RateLimit-Interval-Milliseconds", "400"}});
    if (n == 2) return answer(200, {{"X-RateLimit-Remaining", "1"}, {"X-RateLimit-Reset", "1"}});
    return answer(200);
  });
  net::HttpClient client(fast_options());
  for (int i = 0; i < 3; ++i) REQUIRE(client.request("conn", get(server.url())).ok());
  auto seen = server.requests();
  REQUIRE(seen.size() == 3);
  CHECK(ms_between(seen[0].at, seen[1].at) >= 380);  // nothing left: wait out the window
  CHECK(ms_between(seen[1].at, seen[2].at) >= 450);  // 1 left of 1 s: spread over the window
  CHECK(client.metrics().throttled == 2);
}

TEST_CASE("client: a spent daily quota pauses the connection visibly until its reset", "[net]") {
  ScriptedServer server([](const net::HttpRequest &, size_t) {
    return answer(200, {{"X-HubSpot-RateLimit-Daily", "250000"},
                        {"X-HubSpot-RateLimit-Daily-Remaining", "0"}});
  });
  LogCapture logs;
  net::HttpClient client(fast_options());
  REQUIRE(client.request("conn", get(server.url())).ok());
  auto paused = client.request("conn", get(server.url()));
  REQUIRE_FALSE(paused.ok());
  CHECK(paused.error().code == CRM_ERR_RATE_LIMITED);
  CHECK(paused.error().retry_after_ms > 0);
  CHECK(server.requests().size() == 1);  // never sent
  const auto m = client.metrics();
  REQUIRE(m.paused_until_ms.count("conn/") == 1);
  CHECK(m.paused_until_ms.at("conn/") % 86'400'000 == 0);  // the next UTC midnight
  CHECK(logs.text().find("daily quota is spent") != std::string::npos);
  REQUIRE(client.request("other", get(server.url())).ok());  // other connections go on
}

TEST_CASE("client: Authorization and keys are redacted in every log line", "[net]") {
  ScriptedServer server(
      [](const net::HttpRequest &, size_t n) { return n == 1 ? answer(503) : answer(200); });
  LogCapture logs;
  net::HttpClient client(fast_options());
  plugins::HttpCall call = get(server.url("/v1/x?hapikey=SECRETKEY123&q=1"));
  call.headers = {{"Authorization", "Bearer SECRETTOKEN456"}, {"X-Api-Key", "SECRETAPI789"}};
  REQUIRE(client.request("conn", call).ok());
  DroppingServer dropping(5, "");
  call.url = "http://user:SECRETPASS@127.0.0.1:" + std::to_string(dropping.port()) +
             "/x?access_token=SECRETTOKEN456";
  auto failed = client.request("conn", call);
  REQUIRE_FALSE(failed.ok());
  const std::string text = logs.text();
  CHECK(text.find("request header Authorization") != std::string::npos);  // trace logged it
  CHECK(text.find("retry") != std::string::npos);
  for (const char *secret : {"SECRETKEY123", "SECRETTOKEN456", "SECRETAPI789", "SECRETPASS"}) {
    CHECK(text.find(secret) == std::string::npos);
    CHECK(failed.error().message.find(secret) == std::string::npos);
  }
  CHECK(server.requests().at(0).request.header("Authorization") == "Bearer SECRETTOKEN456");
}

TEST_CASE("client: TLS verifies against a CA made at test time and sends SNI", "[net]") {
  const test::Pki pki = test::make_pki();
  TlsServer server(pki);
  const std::string url = "https://localhost:" + std::to_string(server.port()) + "/";

  auto trusting_options = fast_options();
  trusting_options.extra_ca_pem = pki.ca_pem;
  net::HttpClient trusting(trusting_options);
  auto ok = trusting.request("conn", get(url));
  REQUIRE(ok.ok());
  CHECK(ok->status == 200);
  CHECK(ok->body == "sni=localhost");
  auto by_ip =
      trusting.request("conn", get("https://127.0.0.1:" + std::to_string(server.port()) + "/"));
  REQUIRE(by_ip.ok());
  CHECK(by_ip->body == "sni=");  // no SNI for an IP address; the IP SAN matched

  auto options = fast_options();
  options.max_attempts = 1;
  net::HttpClient untrusting(options);  // the system store does not know the test CA
  auto refused = untrusting.request("conn", get(url));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == CRM_ERR_TRANSPORT);
  CHECK(refused.error().message.find("certificate verify failed") != std::string::npos);
}

TEST_CASE("client: HTTPS goes through an HTTPS_PROXY CONNECT tunnel", "[net]") {
  const test::Pki pki = test::make_pki();
  TlsServer target(pki);
  // A one-shot proxy: reads the CONNECT, answers 200 and relays bytes both ways.
  asio::io_context io;
  tcp::acceptor acceptor{io, {asio::ip::make_address("127.0.0.1"), 0}};
  std::string connect_line;
  std::thread proxy([&] {
    tcp::socket client(io);
    acceptor.accept(client);
    std::string head;
    asio::read_until(client, asio::dynamic_buffer(head), "\r\n\r\n");
    connect_line = head.substr(0, head.find("\r\n"));
    tcp::socket upstream(io);
    upstream.connect({asio::ip::make_address("127.0.0.1"), target.port()});
    asio::write(client, asio::buffer(std::string("HTTP/1.1 200 Connection established\r\n\r\n")));
    auto relay = [](tcp::socket &from, tcp::socket &to) {
      char buf[4096];
      boost::system::error_code ec;
      for (;;) {
        const size_t n = from.read_some(asio::buffer(buf), ec);
        if (ec) break;
        asio::write(to, asio::buffer(buf, n), ec);
        if (ec) break;
      }
      to.shutdown(tcp::socket::shutdown_send, ec);
    };
    std::thread back([&] { relay(upstream, client); });
    relay(client, upstream);
    back.join();
  });
  auto options = fast_options();
  options.extra_ca_pem = pki.ca_pem;
  options.https_proxy = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  options.no_proxy = "example.invalid";
  net::HttpClient client(options);
  auto result =
      client.request("conn", get("https://localhost:" + std::to_string(target.port()) + "/"));
  proxy.join();
  REQUIRE(result.ok());
  CHECK(result->body == "sni=localhost");
  CHECK(connect_line == "CONNECT localhost:" + std::to_string(target.port()) + " HTTP/1.1");
}

TEST_CASE("rate limiter: Retry-After dates and a refused wait beyond the allowed one", "[net]") {
  const auto wall = net::WallClock::from_time_t(1'700'000'000);
  CHECK(net::parse_retry_after("7", wall) == std::chrono::seconds(7));
  CHECK(net::parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", wall) == std::chrono::seconds(10));
  CHECK_FALSE(net::parse_retry_after("soon", wall));

  net::RateLimiter limiter(net::RateSpec{2, 1000ms, 0});
  const auto now = Clock::now();
  CHECK(limiter.acquire(now, wall, 0ms).granted);
  CHECK(limiter.acquire(now, wall, 0ms).granted);
  auto third = limiter.acquire(now, wall, 100ms);
  CHECK_FALSE(third.granted);
  CHECK(third.retry_after >= 490ms);
  auto waited = limiter.acquire(now, wall, 1000ms);
  CHECK(waited.granted);
  CHECK(waited.wait >= 490ms);
  limiter.observe(now, wall, 429, {{"retry-after", "30"}});
  CHECK_FALSE(limiter.acquire(now, wall, 10s).granted);
}

// A provider with HubSpot's rolling window (100 calls in any 10 s) and its headers, driven on a
// simulated clock by a caller as fast as the limiter lets it (each call takes 20 ms): the limiter
// learns the window, keeps every window within it (no 429) and runs at its full rate, instead of
// waiting out a whole window each time the remaining budget runs low.
TEST_CASE("rate limiter: HubSpot's rolling window is used at its full rate without a 429",
          "[net]") {
  const auto wall = net::WallClock::from_time_t(1'700'000'000);
  net::RateLimiter limiter(net::RateSpec{100, 10'000ms, 0});  // hubspot.so's declared budget
  auto now = Clock::now();
  const auto start = now;
  std::vector<Clock::time_point> arrivals;
  int refused = 0;
  while (now - start < 60s) {
    auto grant = limiter.acquire(now, wall, 30s);
    REQUIRE(grant.granted);
    now += grant.wait;
    const auto sent = now;
    // The provider counts the call when it arrives, 1 ms after it was sent.
    const auto arrived = sent + 1ms;
    int64_t used = 0, secondly = 0;
    for (auto t : arrivals) {
      used += t > arrived - 10'000ms;
      secondly += t > arrived - 1000ms;
    }
    if (used >= 100) {
      ++refused;
    } else {
      arrivals.push_back(arrived);
      ++used;
      ++secondly;
    }
    now = sent + 20ms;
    limiter.observe(
        now, wall, used > 100 ? 429 : 200,
        {{"X-HubSpot-RateLimit-Max", "100"},
         {"X-HubSpot-RateLimit-Remaining", std::to_string(std::max<int64_t>(0, 100 - used))},
         {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"},
         {"X-HubSpot-RateLimit-Secondly", "10"},
         {"X-HubSpot-RateLimit-Secondly-Remaining",
          std::to_string(std::max<int64_t>(0, 10 - secondly))}},
        sent);
  }
  CHECK(refused == 0);
  // 60 s hold at most 600 calls at the provider's rate; at least 95 % of them went.
  CHECK(arrivals.size() >= 570);
  CHECK(arrivals.size() <= 600);
}

// The same headers with most of the window used by another client of the token: the slots this
// limiter handed out do not explain it, so it still waits the window out rather than call into
// a 429.
TEST_CASE("rate limiter: a window another client spent is still waited out", "[net]") {
  const auto wall = net::WallClock::from_time_t(1'700'000'000);
  net::RateLimiter limiter(net::RateSpec{100, 10'000ms, 0});
  auto now = Clock::now();
  REQUIRE(limiter.acquire(now, wall, 0ms).granted);
  limiter.observe(now + 5ms, wall, 200,
                  {{"X-HubSpot-RateLimit-Max", "100"},
                   {"X-HubSpot-RateLimit-Remaining", "0"},
                   {"X-HubSpot-RateLimit-Interval-Milliseconds", "10000"}},
                  now);
  auto next = limiter.acquire(now + 5ms, wall, 30s);
  REQUIRE(next.granted);
  CHECK(next.wait >= 9'900ms);
}

TEST_CASE("client: every attempt is counted in the Prometheus metrics", "[net]") {
  ScriptedServer server([](const net::HttpRequest &, size_t n) {
    return n == 1 ? answer(429, {{"Retry-After", "0"}}) : answer(200, {}, "ok");
  });
  auto options = fast_options();
  options.rate_limits["metered"] = net::RateSpec{1, 100ms, 1};  // the second call must wait
  net::HttpClient client(options);
  REQUIRE(client.request("metered", get(server.url())).ok());
  REQUIRE(client.request("metered", get(server.url())).ok());
  auto &registry = metrics::global();
  CHECK(registry.counter_sum("crmhost_http_requests_total",
                             {{"connection", "metered"}, {"method", "GET"}, {"status", "200"}}) ==
        2);
  CHECK(registry.counter_sum("crmhost_provider_throttled_total", {{"connection", "metered"}}) == 1);
  CHECK(registry.counter_sum("crmhost_rate_limit_wait_seconds_total", {{"connection", "metered"}}) >
        0.01);
  const std::string text = registry.render();
  CHECK_THAT(text, Catch::Contains(
                       R"(crmhost_http_request_duration_seconds_count{connection="metered"} 3)"));
  // promtool (Debian's prometheus package, installed by scripts/bootstrap) accepts the output.
  const auto file = std::filesystem::temp_directory_path() /
                    ("crmhost-http-metrics-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(file) << text;
  CHECK(std::system(("promtool check metrics < " + file.string() + " > /dev/null 2>&1").c_str()) ==
        0);
  std::filesystem::remove(file);
}

TEST_CASE("client: responses with more than 8 KB of headers are read (proxies send them)",
          "[net]") {
  ScriptedServer server([](const net::HttpRequest &, size_t) {
    net::Headers headers;
    for (int i = 0; i < 40; ++i)  // ~20 KB, as long Set-Cookie and tracing headers add up
      headers.emplace_back("X-Policy-" + std::to_string(i), std::string(500, 'p'));
    return answer(200, headers, "ok");
  });
  net::HttpClient client(fast_options());
  auto reply = client.request("conn", get(server.url("/big-headers")));
  REQUIRE(reply.ok());
  CHECK(reply->status == 200);
  CHECK(reply->body == "ok");
  CHECK(reply->headers.size() >= 40);
}
