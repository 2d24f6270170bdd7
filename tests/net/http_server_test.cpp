// The inbound server over real loopback sockets.
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <openssl/ssl.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

#include "net/http_client.hpp"
#include "net/http_server.hpp"
#include "server_harness.hpp"
#include "test_pki.hpp"

using namespace crmhost;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using crmhost::test::ServerHarness;

namespace {

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

TEST_CASE("responses are framed by the server whatever headers a handler gives", "[net]") {
  net::HttpResponse plain{200, "text/plain", {}, "ok\n"};
  CHECK(net::serialize_response(plain, "r1", 11, true) ==
        "HTTP/1.1 200 OK\r\nServer: crmhost\r\nContent-Type: text/plain\r\nX-Request-Id: r1\r\n"
        "Content-Length: 3\r\n\r\nok\n");
  // HTTP/1.0 says keep-alive when it keeps the connection; 1.1 says close when it does not.
  CHECK(net::serialize_response(plain, "r1", 10, true).find("Connection: keep-alive\r\n") !=
        std::string::npos);
  CHECK(net::serialize_response(plain, "r1", 11, false).find("Connection: close\r\n") !=
        std::string::npos);
  CHECK(net::serialize_response(plain, "r1", 11, true).find("Connection") == std::string::npos);

  // A handler's line breaks cannot add headers; its framing headers are ignored; its
  // Content-Type replaces the default.
  net::HttpResponse tricky{201,
                           "text/plain",
                           {{"X-Note", "a\r\nSet-Cookie: evil=1"},
                            {"Content-Length", "999"},
                            {"Connection", "close"},
                            {"content-type", "application/json"}},
                           "{}"};
  const auto wire = net::serialize_response(tricky, "r2", 11, true);
  CHECK(wire.find("X-Note: aSet-Cookie: evil=1\r\n") != std::string::npos);
  CHECK(wire.find("\r\nSet-Cookie") == std::string::npos);
  CHECK(wire.find("999") == std::string::npos);
  CHECK(wire.find("Connection") == std::string::npos);
  CHECK(wire.find("text/plain") == std::string::npos);
  CHECK(wire.find("content-type: application/json\r\n") != std::string::npos);
  CHECK(wire.find("Content-Length: 2\r\n\r\n{}") != std::string::npos);

  // 204 and 304 carry neither a body nor a length.
  const auto empty = net::serialize_response({204, "text/plain", {}, "ignored"}, "r3", 11, true);
  CHECK(empty.rfind("\r\n\r\n") == empty.size() - 4);
  CHECK(empty.find("Content-Length") == std::string::npos);

  // And a real client reads what the server writes.
  ServerHarness h;
  auto socket = connect(h.port());
  boost::beast::flat_buffer buffer;
  asio::write(socket,
              asio::buffer(std::string("GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")));
  auto first = read_response(socket, buffer);
  CHECK(first.version() == 10);
  CHECK(first.keep_alive());
  CHECK(first.body() == "GET /x  0");
  asio::write(socket, asio::buffer(std::string("GET /y HTTP/1.0\r\n\r\n")));
  auto second = read_response(socket, buffer);
  CHECK(second.body() == "GET /y  0");
  CHECK_FALSE(second.keep_alive());
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
  // Catch2's assertions are not thread-safe: the clients report, the test thread checks.
  std::vector<std::thread> clients;
  std::atomic<int> answered_ok{0};
  for (int i = 0; i < 2; ++i)
    clients.emplace_back([&] {
      auto socket = connect(h.port());
      boost::beast::flat_buffer buffer;
      asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: t\r\n\r\n")));
      if (read_response(socket, buffer).result_int() == 200) ++answered_ok;
    });
  for (auto &c : clients) c.join();
  CHECK(answered_ok == 2);
  CHECK(std::chrono::steady_clock::now() - started < 580ms);  // in parallel, not 600 ms
}

TEST_CASE("request ids are checked for sanity", "[net]") {
  CHECK(net::is_sane_request_id("a1b2-c3_d4.e5:f6"));
  CHECK_FALSE(net::is_sane_request_id(""));
  CHECK_FALSE(net::is_sane_request_id("has space"));
  CHECK_FALSE(net::is_sane_request_id(std::string(129, 'a')));
  CHECK(net::new_request_id() != net::new_request_id());
}

namespace {

// The test PKI's certificate and key as files, as an operator would configure them.
struct TlsFiles {
  test::Pki pki = test::make_pki();
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("crmhost-tls-" + std::to_string(::getpid()) + "-" +
                                                std::to_string(reinterpret_cast<uintptr_t>(this)));
  net::ServerOptions::Tls tls{(dir / "cert.pem").string(), (dir / "key.pem").string()};
  TlsFiles() {
    std::filesystem::create_directories(dir);
    std::ofstream(tls.certificate_file) << pki.cert_pem;
    std::ofstream(tls.key_file) << pki.key_pem;
  }
  ~TlsFiles() { std::filesystem::remove_all(dir); }
};

// Handshakes with the given highest protocol version; returns the error (empty on success).
boost::system::error_code handshake(uint16_t port, const std::string &ca_pem, int max_version) {
  asio::io_context io;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.add_certificate_authority(asio::buffer(ca_pem));
  ctx.set_verify_mode(asio::ssl::verify_peer);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_VERSION);
  SSL_CTX_set_max_proto_version(ctx.native_handle(), max_version);
  // OpenSSL 3 refuses TLS 1.0/1.1 at its default security level; lower it so that the refusal
  // under test is the server's.
  SSL_CTX_set_security_level(ctx.native_handle(), 0);
  asio::ssl::stream<tcp::socket> stream(io, ctx);
  stream.next_layer().connect({asio::ip::make_address("127.0.0.1"), port});
  boost::system::error_code ec;
  stream.handshake(asio::ssl::stream_base::client, ec);
  return ec;
}

}  // namespace

TEST_CASE("TLS serves HTTPS with the configured certificate and refuses old protocols", "[net]") {
  TlsFiles files;
  net::ServerOptions options;
  options.tls = files.tls;
  ServerHarness harness(options);

  net::ClientOptions client_options;
  client_options.system_trust = false;
  client_options.extra_ca_pem = files.pki.ca_pem;
  net::HttpClient client(client_options);
  plugins::HttpCall call;
  call.method = "POST";
  call.url = "https://localhost:" + std::to_string(harness.port()) + "/hook?x=1";
  call.headers = {{"X-Request-Id", "tls-req-1"}};
  call.body = "hello";
  auto reply = client.request("tls", call);
  REQUIRE(reply);
  CHECK(reply.value().status == 200);
  CHECK(reply.value().body == "POST /hook x=1 5");
  bool echoed = false;
  for (const auto &[name, value] : reply.value().headers)
    if (name == "X-Request-Id") echoed = value == "tls-req-1";
  CHECK(echoed);
  // Keep-alive holds over TLS too: the second call reuses the pooled connection.
  REQUIRE(client.request("tls", call));
  CHECK(client.idle_connections() == 1);

  CHECK_FALSE(handshake(harness.port(), files.pki.ca_pem, TLS1_2_VERSION));
  CHECK(handshake(harness.port(), files.pki.ca_pem, TLS1_1_VERSION));

  // Plain HTTP to the TLS port gets no HTTP answer.
  auto socket = connect(harness.port());
  asio::write(socket, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> response;
  boost::system::error_code ec;
  http::read(socket, buffer, response, ec);
  CHECK(ec);
  CHECK(harness.calls == 2);
}

TEST_CASE("a TLS certificate or key that cannot be used is named at start", "[net]") {
  TlsFiles files;
  asio::io_context io;
  asio::thread_pool pool{1};
  auto make = [&](net::ServerOptions::Tls tls) {
    net::ServerOptions options;
    options.listen = {"127.0.0.1:0"};
    options.tls = tls;
    net::HttpServer server(io, pool, options,
                           [](const net::HttpRequest &) { return net::HttpResponse{}; });
  };
  CHECK_THROWS_WITH(make({"/nonexistent/cert.pem", files.tls.key_file}),
                    Catch::Contains("/nonexistent/cert.pem"));
  CHECK_THROWS_WITH(make({files.tls.certificate_file, files.tls.certificate_file}),
                    Catch::Contains("TLS key"));
  const TlsFiles other;  // another key pair: the key does not match the certificate
  CHECK_THROWS_WITH(make({files.tls.certificate_file, other.tls.key_file}),
                    Catch::Contains("mismatch"));
  pool.join();
}
