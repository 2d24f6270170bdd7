// The inbound server over real loopback sockets.
#include <chrono>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

#include "net/http_server.hpp"

using namespace crmhost;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

struct ServerHarness {
  asio::io_context io;
  asio::thread_pool pool{2};
  std::unique_ptr<net::HttpServer> server;
  std::thread io_thread;
  std::atomic<int> calls{0};

  explicit ServerHarness(net::ServerOptions options = {}, std::chrono::milliseconds delay = 0ms) {
    options.listen = {"127.0.0.1:0"};
    server = std::make_unique<net::HttpServer>(
        io, pool, options, [this, delay](const net::HttpRequest &r) {
          ++calls;
          std::this_thread::sleep_for(delay);
          return net::HttpResponse{
              200,
              "text/plain",
              {},
              r.method + " " + r.path + " " + r.query + " " + std::to_string(r.body.size())};
        });
    server->start();
    io_thread = std::thread([this] { io.run(); });
  }
  ~ServerHarness() {
    server->stop();
    io.stop();
    io_thread.join();
    pool.join();
  }
  uint16_t port() const { return server->ports().at(0); }
};

tcp::socket connect(uint16_t port) {
  static asio::io_context client_io;
  tcp::socket socket(client_io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  return socket;
}

http::response<http::string_body> read_response(tcp::socket &socket,
                                                boost::beast::flat_buffer &buffer) {
  http::response<http::string_body> response;
  http::read(socket, buffer, response);
  return response;
}

}  // namespace

TEST_CASE("keep-alive serves several requests on one connection with request ids", "[net]") {
  ServerHarness h;
  auto socket = connect(h.port());
  boost::beast::flat_buffer buffer;
  asio::write(socket, asio::buffer(std::string(
                          "POST /hooks/x?a=1 HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc-123\r\n"
                          "Content-Length: 5\r\n\r\nhello")));
  auto first = read_response(socket, buffer);
  CHECK(first.result_int() == 200);
  CHECK(first.body() == "POST /hooks/x a=1 5");
  CHECK(first["X-Request-Id"] == "abc-123");

  asio::write(socket, asio::buffer(std::string(
                          "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Request-Id: bad id!\r\n\r\n")));
  auto second = read_response(socket, buffer);
  CHECK(second.body() == "GET /healthz  0");
  CHECK(second["X-Request-Id"].size() == 32);  // an insane id is replaced by a generated one
  CHECK(h.calls == 2);
}

TEST_CASE("pipelined requests are answered in order", "[net]") {
  ServerHarness h;
  auto socket = connect(h.port());
  boost::beast::flat_buffer buffer;
  asio::write(socket, asio::buffer(std::string("GET /one HTTP/1.1\r\nHost: t\r\n\r\n"
                                               "GET /two HTTP/1.1\r\nHost: t\r\n\r\n")));
  CHECK(read_response(socket, buffer).body() == "GET /one  0");
  CHECK(read_response(socket, buffer).body() == "GET /two  0");
}

TEST_CASE("a body over the limit is refused with 413 and the connection closed", "[net]") {
  net::ServerOptions options;
  options.max_body = 1024;
  ServerHarness h(options);
  auto socket = connect(h.port());
  boost::beast::flat_buffer buffer;
  asio::write(socket, asio::buffer("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n" +
                                   std::string(4096, 'a')));
  auto response = read_response(socket, buffer);
  CHECK(response.result_int() == 413);
  CHECK_FALSE(response.keep_alive());
  CHECK(h.calls == 0);
}

TEST_CASE("a slow client that never finishes its headers is cut off", "[net]") {
  net::ServerOptions options;
  options.header_timeout = 300ms;
  ServerHarness h(options);
  auto socket = connect(h.port());
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: t\r\n")));  // no end
  const auto started = std::chrono::steady_clock::now();
  char byte;
  boost::system::error_code ec;
  socket.read_some(asio::buffer(&byte, 1), ec);  // blocks until the server gives up
  CHECK(ec);                                     // closed, not answered
  CHECK(std::chrono::steady_clock::now() - started < 3s);
  CHECK(h.calls == 0);
}

TEST_CASE("connections beyond the cap get 503", "[net]") {
  net::ServerOptions options;
  options.max_connections = 1;
  ServerHarness h(options);
  auto held = connect(h.port());
  std::this_thread::sleep_for(100ms);
  auto extra = connect(h.port());
  boost::beast::flat_buffer buffer;
  asio::write(extra, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: t\r\n\r\n")));
  CHECK(read_response(extra, buffer).result_int() == 503);
}

TEST_CASE("slow handlers run on the pool and do not hold up other connections", "[net]") {
  ServerHarness h({}, 300ms);
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (int i = 0; i < 2; ++i)
    clients.emplace_back([&] {
      auto socket = connect(h.port());
      boost::beast::flat_buffer buffer;
      asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: t\r\n\r\n")));
      CHECK(read_response(socket, buffer).result_int() == 200);
    });
  for (auto &c : clients) c.join();
  CHECK(std::chrono::steady_clock::now() - started < 580ms);  // in parallel, not 600 ms
}

TEST_CASE("request ids are checked for sanity", "[net]") {
  CHECK(net::is_sane_request_id("a1b2-c3_d4.e5:f6"));
  CHECK_FALSE(net::is_sane_request_id(""));
  CHECK_FALSE(net::is_sane_request_id("has space"));
  CHECK_FALSE(net::is_sane_request_id(std::string(129, 'a')));
  CHECK(net::new_request_id() != net::new_request_id());
}
