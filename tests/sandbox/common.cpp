#include "sandbox/common.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "util/time.hpp"

namespace crmsandbox {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string iso8601_ms(int64_t unix_ms) {
  return crmhost::timeutil::format_iso8601_ms(unix_ms);
}

std::optional<int64_t> parse_time_ms(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc() && end == text.data() + text.size()) return value;
  return crmhost::timeutil::parse_iso8601_ms(text);
}

std::optional<double> parse_number(std::string_view text) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text.front()))) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc() && end == text.data() + text.size()) return value;
  return std::nullopt;
}

std::string url_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+' && plus_is_space) {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() &&
               std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::map<std::string, std::string> parse_query(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    if (!pair.empty()) {
      const auto eq = pair.find('=');
      out[url_decode(pair.substr(0, eq))] =
          eq == std::string_view::npos ? std::string() : url_decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (auto &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                                reinterpret_cast<const unsigned char *>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                                reinterpret_cast<const unsigned char *>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding as zero bytes.
  size_t size = static_cast<size_t>(n);
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) --size;
  out.resize(size);
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr);
  static const char *hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 0xf];
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size(), digest, &size);
  return std::string(reinterpret_cast<const char *>(digest), size);
}

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char *>(raw.data()), static_cast<int>(bytes));
  static const char *hex = "0123456789abcdef";
  std::string out;
  for (const char c : raw) {
    out += hex[static_cast<unsigned char>(c) >> 4];
    out += hex[static_cast<unsigned char>(c) & 0xf];
  }
  return out;
}

std::string random_uuid() {
  std::string h = random_hex(16);
  h[12] = '4';                                                  // version 4
  h[16] = "89ab"[std::stoi(h.substr(16, 1), nullptr, 16) & 3];  // RFC 4122 variant
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

void FaultInjector::configure(const FaultConfig &config) {
  std::lock_guard lock(mutex_);
  config_ = config;
}

void FaultInjector::reseed(uint64_t seed) {
  std::lock_guard lock(mutex_);
  rng_.seed(seed);
}

FaultConfig FaultInjector::config() const {
  std::lock_guard lock(mutex_);
  return config_;
}

FaultDecision FaultInjector::draw() {
  std::lock_guard lock(mutex_);
  FaultDecision out;
  out.latency_ms = config_.latency_ms;
  // Always draw the same number of values so one fault's share does not shift the others.
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double drop = unit(rng_), status = unit(rng_), which = unit(rng_), malformed = unit(rng_);
  if (drop < config_.drop) {
    out.drop = true;
  } else if (status < config_.p429) {
    out.status = 429;
  } else if (status < config_.p429 + config_.p5xx) {
    out.status = which < 0.5 ? 502 : 503;
  } else if (malformed < config_.malformed) {
    out.malformed = true;
  }
  return out;
}

void RollingWindow::expire(int64_t now, int64_t window_ms) {
  while (!stamps_.empty() && stamps_.front() <= now - window_ms) stamps_.pop_front();
}

bool RollingWindow::try_acquire(int64_t now, int64_t limit, int64_t window_ms) {
  expire(now, window_ms);
  if (static_cast<int64_t>(stamps_.size()) >= limit) return false;
  stamps_.push_back(now);
  return true;
}

int64_t RollingWindow::used(int64_t now, int64_t window_ms) const {
  const auto first = std::upper_bound(stamps_.begin(), stamps_.end(), now - window_ms);
  return static_cast<int64_t>(stamps_.end() - first);
}

struct LoopbackServer::Parts {
  asio::io_context io;
  asio::thread_pool pool;
  std::unique_ptr<crmhost::net::HttpServer> server;
  std::thread io_thread;
  explicit Parts(size_t threads) : pool(threads) {}
};

LoopbackServer::LoopbackServer(std::string listen, crmhost::net::Handler handler,
                               size_t handler_threads)
    : listen_(std::move(listen)), handler_(std::move(handler)), threads_(handler_threads) {}

LoopbackServer::~LoopbackServer() {
  stop();
}

void LoopbackServer::start() {
  parts_ = std::make_unique<Parts>(threads_);
  crmhost::net::ServerOptions options;
  options.listen = {listen_};
  options.max_body = 16ull << 20;
  options.max_connections_per_client = 0;  // an emulated provider: its clients are all loopback
  parts_->server =
      std::make_unique<crmhost::net::HttpServer>(parts_->io, parts_->pool, options, handler_);
  parts_->server->start();
  port_ = parts_->server->ports().at(0);
  parts_->io_thread = std::thread([parts = parts_.get()] { parts->io.run(); });
}

void LoopbackServer::stop() {
  if (!parts_) return;
  parts_->server->stop();
  parts_->io.stop();
  if (parts_->io_thread.joinable()) parts_->io_thread.join();
  parts_->pool.join();
  parts_.reset();
}

std::string HttpResult::header(std::string_view name) const {
  for (const auto &[key, value] : headers)
    if (lowercase(key) == lowercase(name)) return value;
  return {};
}

HttpResult http_request(const std::string &method, const std::string &url, const Headers &headers,
                        const std::string &body, std::chrono::milliseconds timeout) {
  HttpResult out;
  constexpr std::string_view scheme = "http://";
  if (url.rfind(scheme, 0) != 0) {
    out.error = "only http:// URLs are supported";
    return out;
  }
  const auto rest = url.substr(scheme.size());
  const auto slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  const std::string target = slash == std::string::npos ? "/" : rest.substr(slash);
  const auto colon = authority.rfind(':');
  const std::string host = colon == std::string::npos ? authority : authority.substr(0, colon);
  const std::string port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  try {
    asio::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(timeout);
    beast::error_code ec;
    const auto endpoints = resolver.resolve(host, port, ec);
    http::request<http::string_body> request(http::string_to_verb(method), target, 11);
    request.set(http::field::host, authority);
    for (const auto &[name, value] : headers) request.set(name, value);
    request.body() = body;
    request.prepare_payload();
    request.keep_alive(false);
    // Async steps run to completion on `io`: the stream's deadline only applies to async calls.
    if (!ec) {
      stream.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint &) { ec = e; });
      io.run();
      io.restart();
    }
    if (!ec) {
      http::async_write(stream, request, [&](beast::error_code e, size_t) { ec = e; });
      io.run();
      io.restart();
    }
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256ull << 20);
    if (!ec) {
      http::async_read(stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
      io.run();
    }
    if (ec) {
      out.error = ec == beast::error::timeout ? "timeout" : ec.message();
      return out;
    }
    auto &response = parser.get();
    out.status = response.result_int();
    for (const auto &field : response)
      out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    out.body = std::move(response.body());
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  } catch (const std::exception &e) {
    out.error = e.what();
  }
  return out;
}

}  // namespace crmsandbox
