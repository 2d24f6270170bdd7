// The server under hostile conditions: no descriptors left for accept, one client holding many
// connections, oversized headers and ambiguous framing.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

#include "server_harness.hpp"
#include "util/metrics.hpp"

using namespace crmhost;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using crmhost::test::ServerHarness;

namespace {

const std::string kGet = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

// A loopback client whose every wait has a deadline, so a server that never answers fails the
// test instead of hanging it.
struct Client {
  asio::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;

  struct Answer {
    beast::error_code ec;
    http::response<http::string_body> response;  // 200 when default-constructed: see status()
    // The answer's status, or 0 when none was read.
    unsigned status() const { return ec ? 0 : response.result_int(); }
  };

  // Opens a socket bound to `from` (any 127/8 address is loopback) without connecting.
  explicit Client(const std::string &from) {
    stream.socket().open(tcp::v4());
    stream.socket().bind({asio::ip::make_address(from), 0});
  }
  explicit Client(uint16_t port, const std::string &from = "127.0.0.1") : Client(from) {
    connect(port);
  }
  void connect(uint16_t port) {
    stream.socket().connect({asio::ip::make_address("127.0.0.1"), port});
  }

  // Sends `request` and reads one answer, within `timeout`.
  Answer exchange(const std::string &request, std::chrono::milliseconds timeout = 3s) {
    Answer answer;
    stream.expires_after(timeout);
    asio::async_write(stream, asio::buffer(request), [&](beast::error_code ec, size_t) {
      if (ec) {
        answer.ec = ec;
        return;
      }
      http::async_read(stream, buffer, answer.response,
                       [&](beast::error_code read_ec, size_t) { answer.ec = read_ec; });
    });
    io.restart();
    io.run();
    return answer;
  }

  // True when the server closes the connection (end of stream) within `timeout`.
  bool closed_by_server(std::chrono::milliseconds timeout = 2s) {
    char byte;
    beast::error_code result;
    stream.expires_after(timeout);
    stream.async_read_some(asio::buffer(&byte, 1),
                           [&](beast::error_code ec, size_t) { result = ec; });
    io.restart();
    io.run();
    return result == asio::error::eof;
  }
};

double counter(const std::string &name, const metrics::Labels &labels) {
  return metrics::global().counter_sum(name, labels);
}

// Lowers this process's descriptor limit and takes every descriptor left under it, so the next
// accept() fails with EMFILE; gives them back when destroyed.
struct DescriptorsExhausted {
  rlimit saved{};
  std::vector<int> taken;
  DescriptorsExhausted() {
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rlimit lowered = saved;
    lowered.rlim_cur = std::min<rlim_t>(saved.rlim_cur, 1024);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);
    const int base = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (base >= 0) taken.push_back(base);
    for (int fd; base >= 0 && (fd = ::fcntl(base, F_DUPFD_CLOEXEC, 0)) >= 0;) taken.push_back(fd);
    CHECK(errno == EMFILE);
  }
  ~DescriptorsExhausted() {
    for (const int fd : taken) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved);
  }
};

// Keeps the default logger's messages while it lives. A sink of its own that copies the message
// text without formatting it: with the descriptors exhausted on purpose, the sanitizers' checks
// inside fmt's formatting (which open a pipe) would fail on a valid buffer.
class MessageSink final : public spdlog::sinks::sink {
 public:
  void log(const spdlog::details::log_msg &msg) override {
    std::lock_guard lock(mutex_);
    messages_.emplace_back(msg.payload.data(), msg.payload.size());
  }
  void flush() override {}
  void set_pattern(const std::string &) override {}
  void set_formatter(std::unique_ptr<spdlog::formatter>) override {}
  std::vector<std::string> messages() const {
    std::lock_guard lock(mutex_);
    return messages_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
};

struct CapturedLog {
  std::shared_ptr<MessageSink> sink = std::make_shared<MessageSink>();
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  CapturedLog() { spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink)); }
  ~CapturedLog() { spdlog::set_default_logger(previous); }
  size_t count(const std::string &text) const {
    size_t n = 0;
    for (const auto &message : sink->messages()) n += message.find(text) != std::string::npos;
    return n;
  }
};

}  // namespace

TEST_CASE(
    "accepts failing with EMFILE are counted, logged once, retried with growing pauses, "
    "and the listener serves again when descriptors are back",
    "[net]") {
  ServerHarness h;
  CapturedLog log;
  const metrics::Labels emfile = {{"error", "EMFILE"}};
  const double before = counter("crmhost_http_accept_errors_total", emfile);
  Client queued("127.0.0.1");  // its descriptor is taken while there are some left
  {
    DescriptorsExhausted exhausted;
    // The kernel completes the connection; the server's accept() has no descriptor to give it.
    queued.connect(h.port());
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (counter("crmhost_http_accept_errors_total", emfile) == before &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    std::this_thread::sleep_for(1200ms);  // the server keeps retrying meanwhile
  }
  const double errors = counter("crmhost_http_accept_errors_total", emfile) - before;
  CHECK(errors >= 3);   // retried, not given up after the first
  CHECK(errors <= 12);  // after pauses of 50, 100, 200 ... ms: not a busy loop
  CHECK(log.count("HTTP accept on 127.0.0.1:0 failed: Too many open files") == 1);

  // The connection that waited in the backlog, and a new one, are served.
  auto waited = queued.exchange(kGet);
  CHECK(waited.status() == 200);
  Client fresh(h.port());
  CHECK(fresh.exchange(kGet).status() == 200);
}

TEST_CASE("one client address is refused beyond its cap while another address is served", "[net]") {
  net::ServerOptions options;
  options.max_connections_per_client = 2;
  ServerHarness h(options);
  const metrics::Labels per_client = {{"reason", "per_client_cap"}};
  const double before = counter("crmhost_http_connections_refused_total", per_client);

  Client first(h.port()), second(h.port());  // both kept open by keep-alive
  CHECK(first.exchange(kGet).status() == 200);
  CHECK(second.exchange(kGet).status() == 200);
  Client third(h.port());
  const auto refused = third.exchange(kGet);
  CHECK(refused.status() == 503);
  CHECK(refused.response.body() == "too many connections from 127.0.0.1\n");
  CHECK(third.closed_by_server());
  CHECK(counter("crmhost_http_connections_refused_total", per_client) == before + 1);

  Client other(h.port(), "127.0.0.2");
  CHECK(other.exchange(kGet).status() == 200);

  // A closed connection gives its address's slot back.
  first.stream.close();
  bool served_again = false;
  for (int attempt = 0; attempt < 100 && !served_again; ++attempt) {
    Client again(h.port());
    served_again = again.exchange(kGet).status() == 200;
    if (!served_again) std::this_thread::sleep_for(20ms);
  }
  CHECK(served_again);
}

TEST_CASE(
    "oversized headers get 431 and ambiguous framing 400, each then closed, and the server "
    "serves the next client",
    "[net]") {
  ServerHarness h;
  struct Case {
    std::string request;
    unsigned status;
    std::string says;
  };
  const std::string post = "POST /x HTTP/1.1\r\nHost: t\r\n";
  const std::vector<Case> cases = {
      {"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(70 * 1024, 'a') + "\r\n\r\n", 431,
       "request header fields too large"},
      {post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400,
       "Transfer-Encoding"},
      {post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400,
       "Content-Length"},
      {post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, "Content-Length"},
      {post + "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\nhello", 400,
       "both Content-Length and Transfer-Encoding"},
      {post + "Transfer-Encoding: gzip\r\n\r\nhello", 400, "last coding is not chunked"},
  };
  for (const auto &c : cases) {
    INFO(c.request.substr(0, 90));
    Client client(h.port());
    const auto answer = client.exchange(c.request);
    CHECK(answer.status() == c.status);
    CHECK_THAT(answer.response.body(), Catch::Contains(c.says));
    CHECK_FALSE(answer.response.keep_alive());
    CHECK(client.closed_by_server());
  }
  CHECK(h.calls == 0);
  Client good(h.port());
  CHECK(good.exchange(kGet).status() == 200);
}
