#include "net/http_server.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <random>

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "util/metrics.hpp"

namespace crmhost::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string HttpRequest::header(std::string_view name) const {
  for (const auto &[key, value] : headers)
    if (beast::iequals(key, beast::string_view(name.data(), name.size()))) return value;
  return {};
}

bool is_sane_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (const char c : id)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-' &&
        c != ':')
      return false;
  return true;
}

std::string new_request_id() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return out;
}

// One listen address: its acceptor and the pause before retrying a failed accept.
struct Listener {
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  std::string address;  // as configured, for the log
  std::chrono::milliseconds backoff{0};
  Listener(asio::io_context &io, std::string a) : acceptor(io), retry(io), address(std::move(a)) {}
};

struct HttpServer::State {
  ServerOptions options;
  AsyncHandler handler;
  asio::thread_pool &handlers;
  std::vector<std::unique_ptr<Listener>> listeners;
  std::unique_ptr<asio::ssl::context> tls;  // set when every listener speaks TLS
  std::atomic<size_t> open{0};
  std::atomic<bool> stopping{false};
  // Open connections per peer address, when capped. Sessions end on any thread (the last owner
  // of one may be a handler), hence the mutex.
  std::mutex clients_mutex;
  std::map<asio::ip::address, size_t> clients;
  // Accept errors since the last one logged (the io thread's alone).
  std::chrono::steady_clock::time_point accept_error_logged{};
  size_t accept_errors_unlogged = 0;
  State(ServerOptions o, AsyncHandler h, asio::thread_pool &pool)
      : options(std::move(o)), handler(std::move(h)), handlers(pool) {}

  // Counts a connection from `client`; false when the client is at its cap.
  bool claim_client(const asio::ip::address &client) {
    std::lock_guard lock(clients_mutex);
    auto &count = clients[client];
    if (count >= options.max_connections_per_client) return false;
    ++count;
    return true;
  }
  void release_client(const asio::ip::address &client) {
    std::lock_guard lock(clients_mutex);
    const auto it = clients.find(client);
    if (it != clients.end() && --it->second == 0) clients.erase(it);
  }
};

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Streams bound to the io_context's own executor: no type-erased executor and no strand on every
// completion (the server's io_context runs on one thread; see HttpServer).
using IoExecutor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, IoExecutor>;
using TcpStream = beast::basic_stream<tcp, IoExecutor>;
using PlainStream = TcpStream;
using TlsStream = beast::ssl_stream<TcpStream>;

// Header text from a handler never carries a line break into the response.
void append_header_text(std::string &out, std::string_view text) {
  for (const char c : text)
    if (c != '\r' && c != '\n') out += c;
}

}  // namespace

std::string serialize_response(const HttpResponse &response, std::string_view request_id,
                               unsigned version, bool keep_alive) {
  const auto status = static_cast<http::status>(response.status);
  // 1xx, 204 and 304 answers have no body and no length (RFC 9110, 6.4.1 and 8.6).
  const bool bodiless = response.status < 200 || response.status == 204 || response.status == 304;
  std::string out;
  out.reserve(160 + response.body.size());
  out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(response.status);
  out += ' ';
  const auto reason = http::obsolete_reason(status);
  out.append(reason.data(), reason.size());
  out += "\r\n";
  // The handler's own Server, Content-Type or X-Request-Id replaces the default; framing
  // (Content-Length, Connection, Transfer-Encoding) is the server's alone.
  const auto given = [&response](std::string_view name) {
    for (const auto &header : response.headers)
      if (beast::iequals(header.first, beast::string_view(name.data(), name.size()))) return true;
    return false;
  };
  if (!given("Server")) out += "Server: crmhost\r\n";
  if (!given("Content-Type")) {
    out += "Content-Type: ";
    append_header_text(out, response.content_type);
    out += "\r\n";
  }
  if (!given("X-Request-Id")) {
    out += "X-Request-Id: ";
    append_header_text(out, request_id);
    out += "\r\n";
  }
  for (const auto &[name, value] : response.headers) {
    if (beast::iequals(name, "Content-Length") || beast::iequals(name, "Connection") ||
        beast::iequals(name, "Transfer-Encoding"))
      continue;
    append_header_text(out, name);
    out += ": ";
    append_header_text(out, value);
    out += "\r\n";
  }
  if (version == 10 && keep_alive) out += "Connection: keep-alive\r\n";
  if (version != 10 && !keep_alive) out += "Connection: close\r\n";
  if (!bodiless) {
    out += "Content-Length: ";
    out += std::to_string(response.body.size());
    out += "\r\n\r\n";
    out += response.body;
  } else {
    out += "\r\n";
  }
  return out;
}

namespace {

constexpr size_t kHeaderLimit = 64 * 1024;

// The answer (431 or 400 and why) to a request the parser refused, or nullopt when `ec` is no
// fault of the request's form (a timeout, a closed connection, a body over the limit).
std::optional<std::pair<int, std::string>> malformed_request(beast::error_code ec) {
  if (ec.category() != http::make_error_code(http::error::bad_method).category())
    return std::nullopt;
  switch (static_cast<http::error>(ec.value())) {
    case http::error::header_limit:
      return {{431, "request header fields too large (the limit is 64 KiB)"}};
    case http::error::bad_content_length:
      return {{400,
               "bad request: invalid Content-Length, or several that differ, or one with "
               "Transfer-Encoding"}};
    case http::error::bad_transfer_encoding:
      return {{400, "bad request: Transfer-Encoding repeated or with Content-Length"}};
    case http::error::bad_chunk:
    case http::error::bad_chunk_extension:
      return {{400, "bad request: malformed chunked body"}};
    case http::error::bad_line_ending:
    case http::error::bad_method:
    case http::error::bad_target:
    case http::error::bad_version:
    case http::error::bad_field:
    case http::error::bad_value:
    case http::error::bad_obs_fold:
      return {{400, "bad request: malformed request line or header (" + ec.message() + ")"}};
    default:
      return std::nullopt;
  }
}

// Framing the parser lets through but RFC 9112 (6.1, 6.3) says a server must refuse, since the
// body's length would be ambiguous: Content-Length with any Transfer-Encoding, or a
// Transfer-Encoding whose last coding is not chunked.
std::optional<std::string> framing_problem(const http::request_header<> &header, bool chunked) {
  const bool has_te = header.find(http::field::transfer_encoding) != header.end();
  if (!has_te) return std::nullopt;
  if (header.find(http::field::content_length) != header.end())
    return "bad request: both Content-Length and Transfer-Encoding";
  if (!chunked) return "bad request: Transfer-Encoding whose last coding is not chunked";
  return std::nullopt;
}

// One connection: read a request, run the handler on the pool, write the answer, repeat while
// the client keeps the connection alive. Stream is a plain TCP stream or TLS over one.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  // `client` is set when the connection counts against its address's cap (claim_client).
  Session(Socket socket, std::shared_ptr<HttpServer::State> state, std::string remote,
          std::optional<asio::ip::address> client)
      : stream_(make_stream(std::move(socket), *state)),
        state_(std::move(state)),
        remote_(std::move(remote)),
        client_(std::move(client)) {
    ++state_->open;
  }
  ~Session() {
    if (client_) state_->release_client(*client_);
    --state_->open;
  }

  void run() {
    // Start on the connection's strand so the stream is only ever touched there.
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        // The handshake counts against the header timeout: a client that connects and stays
        // silent is dropped as a slow one is.
        self->lowest().expires_after(self->state_->options.header_timeout);
        self->stream_.async_handshake(asio::ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) return self->close(ec);
          self->do_read();
        });
      } else {
        self->do_read();
      }
    });
  }

  void reject_busy([[maybe_unused]] std::string why) {
    if constexpr (kTls) {
      // Answering would take a handshake first; a refused TLS connection is simply closed.
      beast::error_code ignored;
      lowest().socket().close(ignored);
    } else {
      refuse(503, std::move(why));
    }
  }

 private:
  static Stream make_stream(Socket socket, HttpServer::State &state) {
    if constexpr (kTls)
      return Stream(std::move(socket), *state.tls);
    else
      return Stream(std::move(socket));
  }
  TcpStream &lowest() { return beast::get_lowest_layer(stream_); }

  void do_read() {
    parser_.emplace();
    parser_->body_limit(state_->options.max_body);
    parser_->header_limit(kHeaderLimit);
    lowest().expires_after(first_read_ ? state_->options.header_timeout
                                       : state_->options.idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  // Answers with `status` and a one-line body, then closes (the request is not handled).
  void refuse(int status, std::string why) {
    keep_alive_ = false;
    write({status, "text/plain; charset=utf-8", {}, std::move(why) + "\n"}, new_request_id(), 11);
  }

  void on_header(beast::error_code ec) {
    first_read_ = false;
    // A declared Content-Length over the limit is refused as soon as the header is read.
    if (ec == http::error::body_limit) return on_read(ec);
    if (auto refusal = malformed_request(ec)) return refuse(refusal->first, refusal->second);
    if (ec) return close(ec);
    if (auto problem = framing_problem(parser_->get(), parser_->chunked()))
      return refuse(400, *problem);
    lowest().expires_after(state_->options.body_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code e, size_t) { self->on_read(e); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::body_limit) return refuse(413, "request body too large");
    if (auto refusal = malformed_request(ec)) return refuse(refusal->first, refusal->second);
    if (ec) return close(ec);
    auto message = parser_->release();
    keep_alive_ = message.keep_alive() && !state_->stopping;
    auto request = std::make_shared<HttpRequest>();
    request->method = std::string(message.method_string());
    request->target = std::string(message.target());
    const auto question = request->target.find('?');
    request->path = request->target.substr(0, question);
    if (question != std::string::npos) request->query = request->target.substr(question + 1);
    for (const auto &field : message)
      request->headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    request->body = std::move(message.body());
    const auto given = request->header("X-Request-Id");
    request->request_id = is_sane_request_id(given) ? given : new_request_id();
    request->remote = remote_;
    request->received_at_ms = now_ms();
    const unsigned version = message.version();
    // The handler may block on a plugin or the store: run it off the io threads.
    asio::post(state_->handlers, [self = this->shared_from_this(), request, version] {
      auto answered = std::make_shared<std::atomic<bool>>(false);
      Respond respond = [self, request, version, answered](HttpResponse response) {
        if (answered->exchange(true)) return;  // one answer per request
        asio::dispatch(self->stream_.get_executor(),
                       [self, response = std::move(response), request, version]() mutable {
                         if (response.close_without_response)
                           return self->close(asio::error::connection_aborted);
                         self->write(response, request->request_id, version);
                       });
      };
      try {
        self->state_->handler(*request, respond);
      } catch (const std::exception &e) {
        spdlog::error("request {} {} {}: handler failed: {}", request->request_id, request->method,
                      request->path, e.what());
        respond({500, "text/plain; charset=utf-8", {}, "internal error\n"});
      }
    });
  }

  void write(const HttpResponse &response, const std::string &request_id, unsigned version) {
    // The answer's bytes in one buffer and one write, framed by the server (serialize_response).
    auto wire = std::make_shared<std::string>(
        serialize_response(response, request_id, version, keep_alive_));
    lowest().expires_after(state_->options.body_timeout);
    asio::async_write(stream_, asio::buffer(*wire),
                      [self = this->shared_from_this(), wire](beast::error_code ec, size_t) {
                        if (ec) return self->close(ec);
                        if (!self->keep_alive_) return self->close({});
                        self->do_read();
                      });
  }

  void close(beast::error_code ec) {
    beast::error_code ignored;
    if (ec) {  // the peer is gone or timed out: nothing more to say
      lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
      lowest().close();
      return;
    }
    if constexpr (kTls) {
      // close_notify, bounded: a peer that never answers it does not hold the session.
      lowest().expires_after(std::chrono::seconds(1));
      stream_.async_shutdown(
          [self = this->shared_from_this()](beast::error_code) { self->lowest().close(); });
      return;
    }
    // A graceful close: stop sending, then drain what the client still sends (say, the rest of
    // an oversized body) so the kernel does not reset the connection before it reads our answer.
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    lowest().expires_after(std::chrono::seconds(1));
    drain();
  }

  void drain() {
    stream_.async_read_some(asio::buffer(drain_buffer_),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
                              if (!ec) return self->drain();
                              self->lowest().close();
                            });
  }

  std::array<char, 4096> drain_buffer_{};

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<HttpServer::State> state_;
  std::string remote_;  // the peer address, read once at accept
  std::optional<asio::ip::address> client_;
  bool keep_alive_ = true;
  bool first_read_ = true;
};

// Hands an accepted connection to a session, or refuses it (503) when the server or this client
// is at its cap.
void admit(Socket socket, const std::shared_ptr<HttpServer::State> &state) {
  beast::error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  if (ec) return;  // already gone; the socket closes here
  auto address = peer.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped())
    address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
  std::optional<asio::ip::address> client;
  const char *refused = nullptr;
  std::string why;
  if (state->open >= state->options.max_connections) {
    refused = "global_cap";
    why = "too many connections";
  } else if (state->options.max_connections_per_client > 0) {
    if (state->claim_client(address)) {
      client = address;
    } else {
      refused = "per_client_cap";
      why = "too many connections from " + address.to_string();
    }
  }
  if (refused)
    metrics::global().counter_add("crmhost_http_connections_refused_total",
                                  "Inbound connections refused (503, or closed for TLS), by cap.",
                                  {{"reason", refused}});
  const auto start = [&](auto session) { refused ? session->reject_busy(why) : session->run(); };
  if (state->tls)
    start(std::make_shared<Session<TlsStream>>(std::move(socket), state, address.to_string(),
                                               std::move(client)));
  else
    start(std::make_shared<Session<PlainStream>>(std::move(socket), state, address.to_string(),
                                                 std::move(client)));
}

// A short name for an accept error, for the metric's label.
std::string accept_error_name(const beast::error_code &ec) {
  static const std::pair<int, const char *> kNames[] = {
      {EMFILE, "EMFILE"}, {ENFILE, "ENFILE"}, {ENOBUFS, "ENOBUFS"},
      {ENOMEM, "ENOMEM"}, {EPERM, "EPERM"},   {ECONNABORTED, "ECONNABORTED"},
      {EPROTO, "EPROTO"}};
  if (ec.category() == boost::system::system_category())
    for (const auto &[value, name] : kNames)
      if (ec.value() == value) return name;
  return "other";
}

constexpr std::chrono::milliseconds kAcceptRetryFirst{50};
constexpr std::chrono::milliseconds kAcceptRetryMax{1000};
constexpr std::chrono::seconds kAcceptErrorLogInterval{5};

void do_accept(Listener &listener, asio::io_context &io,
               const std::shared_ptr<HttpServer::State> &state);

// Counts and logs (at most once per kAcceptErrorLogInterval) a failed accept, then retries after
// a pause that doubles while accepts keep failing: out of descriptors (EMFILE, ENFILE) or memory,
// the pending connection stays queued and an immediate retry would only spin.
void retry_accept(Listener &listener, asio::io_context &io,
                  const std::shared_ptr<HttpServer::State> &state, const beast::error_code &ec) {
  metrics::global().counter_add("crmhost_http_accept_errors_total",
                                "Failed accepts of inbound connections (each retried), by error.",
                                {{"error", accept_error_name(ec)}});
  listener.backoff = std::clamp(listener.backoff * 2, kAcceptRetryFirst, kAcceptRetryMax);
  const auto now = std::chrono::steady_clock::now();
  if (state->accept_error_logged == std::chrono::steady_clock::time_point{} ||
      now - state->accept_error_logged >= kAcceptErrorLogInterval) {
    const auto unlogged = state->accept_errors_unlogged;
    // Built here and logged as it is: out of descriptors, nothing on this path may need one
    // (the sanitizers' checks inside fmt's formatting open a pipe, and fail).
    std::string line = "HTTP accept on " + listener.address + " failed: " + ec.message() +
                       "; retrying in " + std::to_string(listener.backoff.count()) + " ms";
    if (unlogged)
      line += " (" + std::to_string(unlogged) + " more failed accepts since the last report)";
    spdlog::error(std::string_view(line));
    state->accept_error_logged = now;
    state->accept_errors_unlogged = 0;
  } else {
    ++state->accept_errors_unlogged;
  }
  listener.retry.expires_after(listener.backoff);
  listener.retry.async_wait([&listener, &io, state](beast::error_code wait_ec) {
    if (wait_ec || state->stopping) return;  // stopped: the timer was cancelled
    do_accept(listener, io, state);
  });
}

// Accepts until the server stops (the acceptor closed: operation_aborted); any other error is
// retried, never the end of the listener.
void do_accept(Listener &listener, asio::io_context &io,
               const std::shared_ptr<HttpServer::State> &state) {
  listener.acceptor.async_accept(io.get_executor(),
                                 [&listener, &io, state](beast::error_code ec, Socket socket) {
                                   if (ec == asio::error::operation_aborted || state->stopping)
                                     return;
                                   if (ec) return retry_accept(listener, io, state, ec);
                                   listener.backoff = std::chrono::milliseconds(0);
                                   admit(std::move(socket), state);
                                   do_accept(listener, io, state);
                                 });
}

tcp::endpoint parse_endpoint(const std::string &address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos)
    throw std::runtime_error("listen address " + address + " needs host:port");
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  beast::error_code ec;
  const auto ip = asio::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) throw std::runtime_error("listen address " + address + ": not an IP address");
  return {ip, static_cast<uint16_t>(std::stoi(address.substr(colon + 1)))};
}

}  // namespace

HttpServer::HttpServer(asio::io_context &io, asio::thread_pool &handlers, ServerOptions options,
                       Handler handler)
    : HttpServer(io, handlers, std::move(options),
                 AsyncHandler([handler = std::move(handler)](const HttpRequest &request,
                                                             const Respond &respond) {
                   respond(handler(request));
                 })) {}

HttpServer::HttpServer(asio::io_context &io, asio::thread_pool &handlers, ServerOptions options,
                       AsyncHandler handler)
    : io_(io), state_(std::make_shared<State>(std::move(options), std::move(handler), handlers)) {
  if (const auto &tls = state_->options.tls) {
    auto context = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    context->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                         asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                         asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
    SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION);
    beast::error_code ec;
    context->use_certificate_chain_file(tls->certificate_file, ec);
    if (ec)
      throw std::runtime_error("TLS certificate " + tls->certificate_file +
                               " cannot be used: " + ec.message());
    context->use_private_key_file(tls->key_file, asio::ssl::context::pem, ec);
    if (ec)
      throw std::runtime_error("TLS key " + tls->key_file + " cannot be used: " + ec.message());
    if (SSL_CTX_check_private_key(context->native_handle()) != 1)
      throw std::runtime_error("TLS key " + tls->key_file + " does not match the certificate " +
                               tls->certificate_file);
    state_->tls = std::move(context);
  }
}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start() {
  for (const auto &address : state_->options.listen) {
    const auto endpoint = parse_endpoint(address);
    auto listener = std::make_unique<Listener>(io_, address);
    auto &acceptor = listener->acceptor;
    beast::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("cannot listen on " + address + ": " + ec.message());
    do_accept(*listener, io_, state_);
    state_->listeners.push_back(std::move(listener));
  }
}

void HttpServer::stop() {
  if (state_->stopping.exchange(true)) return;
  asio::post(io_, [state = state_] {
    for (auto &listener : state->listeners) {
      beast::error_code ignored;
      listener->acceptor.close(ignored);
      listener->retry.cancel();
    }
  });
}

size_t HttpServer::open_connections() const {
  return state_->open;
}

std::vector<uint16_t> HttpServer::ports() const {
  std::vector<uint16_t> out;
  for (const auto &listener : state_->listeners) {
    beast::error_code ec;
    out.push_back(listener->acceptor.local_endpoint(ec).port());
  }
  return out;
}

}  // namespace crmhost::net
