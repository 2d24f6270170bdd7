#pragma once
// A front server before a provider's sandbox: it answers the requests a test picks with a
// million '[' (a hostile or broken provider whose JSON would exhaust a recursive parser's stack)
// and hands every other request to the sandbox. The plugin tests of each provider use it.
#include <functional>
#include <mutex>
#include <string>
#include <utility>

#include "net/http_server.hpp"
#include "sandbox/common.hpp"

namespace crmhost::test {

class DeepAnswerFront {
 public:
  // The status to answer deep with, or 0 to pass the request on.
  using Pick = std::function<int(const net::HttpRequest &)>;

  explicit DeepAnswerFront(net::Handler pass) : pass_(std::move(pass)) {}
  void start() { server_.start(); }
  uint16_t port() const { return server_.port(); }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port()); }

  void answer_deep(Pick pick) {
    std::lock_guard lock(mutex_);
    pick_ = std::move(pick);
  }
  void answer_normally() {
    answer_deep([](const net::HttpRequest &) { return 0; });
  }

 private:
  net::HttpResponse handle(const net::HttpRequest &request) {
    Pick pick;
    {
      std::lock_guard lock(mutex_);
      pick = pick_;
    }
    if (const int status = pick(request))
      return net::HttpResponse{status, "application/json", {}, std::string(1'000'000, '[')};
    return pass_(request);
  }

  net::Handler pass_;
  std::mutex mutex_;
  Pick pick_ = [](const net::HttpRequest &) { return 0; };
  // Last: stopped (and its handlers finished) before the members they use go.
  crmsandbox::LoopbackServer server_{"127.0.0.1:0",
                                     [this](const net::HttpRequest &r) { return handle(r); }};
};

}  // namespace crmhost::test
