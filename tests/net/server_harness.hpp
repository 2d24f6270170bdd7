#pragma once
// A server on a free loopback port whose handler echoes "METHOD path query body-size" and counts
// its calls; the io thread and handler pool live and die with it.
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "net/http_server.hpp"

namespace crmhost::test {

struct ServerHarness {
  boost::asio::io_context io;
  boost::asio::thread_pool pool{2};
  std::unique_ptr<net::HttpServer> server;
  std::thread io_thread;
  std::atomic<int> calls{0};

  explicit ServerHarness(net::ServerOptions options = {},
                         std::chrono::milliseconds delay = std::chrono::milliseconds(0)) {
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

}  // namespace crmhost::test
