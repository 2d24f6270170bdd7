#pragma once
// The inbound HTTP/1.1 server for webhooks and the admin API, on Boost.Beast (modelled on Beast's
// advanced server): a listener per address, a session per connection with keep-alive, timeouts
// on every read and write, a body size limit (413), header size (431) and framing (400) checks,
// and caps on open connections, overall and per client address (503). A failed accept (say,
// EMFILE) is counted, logged at most every few seconds and retried after a growing pause; the
// listener never stops on one. Handlers may block (plugin calls, store commits), so they run on
// a separate pool, never on the io threads.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

namespace crmhost::net {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method;
  std::string target;  // as received: path and query
  std::string path;
  std::string query;
  Headers headers;
  std::string body;        // raw bytes
  std::string request_id;  // from X-Request-Id when sane, else generated
  std::string remote;      // peer address
  int64_t received_at_ms = 0;

  // Case-insensitive header lookup; empty when absent.
  std::string header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  Headers headers;
  std::string body;
  // Closes the connection without answering (test servers emulating a dropped connection).
  bool close_without_response = false;
};

using Handler = std::function<HttpResponse(const HttpRequest &)>;
// A handler that answers later: it calls `respond` exactly once, from any thread (say, when a
// commit it waits for is durable), so no thread is held while it waits.
using Respond = std::function<void(HttpResponse)>;
using AsyncHandler = std::function<void(const HttpRequest &, Respond respond)>;

struct ServerOptions {
  std::vector<std::string> listen = {"127.0.0.1:8080"};  // host:port; port 0 picks a free one
  uint64_t max_body = 1024 * 1024;
  std::chrono::milliseconds header_timeout{10'000};  // a slow client cannot hold a connection
  std::chrono::milliseconds body_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};  // between keep-alive requests
  size_t max_connections = 1024;
  // Open connections from one peer IP address; 0: no per-client cap. Beyond either cap a plain
  // HTTP connection is answered 503 and closed, a TLS one closed.
  size_t max_connections_per_client = 64;
  // When set, every listener speaks HTTPS only (TLS 1.2 or newer) with this PEM certificate
  // chain and key.
  struct Tls {
    std::string certificate_file;
    std::string key_file;
  };
  std::optional<Tls> tls;
};

// The bytes of an HTTP/1.x response: status line, Server, Content-Type and X-Request-Id (unless
// the handler's headers name them), the handler's headers (line breaks removed; its
// Content-Length, Connection and Transfer-Encoding ignored), Connection when it differs from the
// version's default, Content-Length and the body (neither for 1xx, 204 and 304).
std::string serialize_response(const HttpResponse &response, std::string_view request_id,
                               unsigned version, bool keep_alive);

// A request id is sane when it is 1..128 characters of [A-Za-z0-9._:-].
bool is_sane_request_id(std::string_view id);
std::string new_request_id();

// The io_context given to the server must be run by exactly one thread: sessions use its executor
// directly, without a strand per connection (a strand and a type-erased executor on every
// completion cost about 5 % of a webhook's CPU). Handlers run on the `handlers` pool and answer
// from any thread; answers are posted back to the io thread.
class HttpServer {
 public:
  HttpServer(boost::asio::io_context &io, boost::asio::thread_pool &handlers, ServerOptions options,
             Handler handler);
  HttpServer(boost::asio::io_context &io, boost::asio::thread_pool &handlers, ServerOptions options,
             AsyncHandler handler);
  ~HttpServer();
  // Binds every listen address (throws std::runtime_error naming the address on failure) and
  // starts accepting.
  void start();
  // Stops accepting; open connections finish their current exchange and close.
  void stop();
  // The bound ports, in the order of options.listen (useful with port 0).
  std::vector<uint16_t> ports() const;
  size_t open_connections() const;

  struct State;

 private:
  boost::asio::io_context &io_;
  std::shared_ptr<State> state_;
};

}  // namespace crmhost::net
