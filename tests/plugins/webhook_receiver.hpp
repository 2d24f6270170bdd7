#pragma once
// Where a provider's webhook deliveries arrive in the end-to-end tests: a loopback HTTP server
// whose handler gives each request to the engine as the host's router does (the URL from the
// Host header and the target), and answers with the engine's status. Before and after the
// engine runs it answers 503 (HubSpot retries that; Zoho does not, and polling covers it).
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "net/http_server.hpp"
#include "pipeline/engine.hpp"

struct WebhookReceiver {
  boost::asio::io_context io;
  boost::asio::thread_pool handlers{2};
  std::unique_ptr<crmhost::net::HttpServer> server;
  std::thread io_thread;
  std::mutex mutex;  // guards `engine`: set when the world starts, cleared before it stops
  crmhost::pipeline::Engine *engine = nullptr;

  WebhookReceiver() {
    crmhost::net::ServerOptions options;
    options.listen = {"127.0.0.1:0"};
    server = std::make_unique<crmhost::net::HttpServer>(
        io, handlers, options, [this](const crmhost::net::HttpRequest &r) {
          crmhost::plugins::WebhookRequest webhook;
          webhook.method = r.method;
          webhook.url = "http://" + r.header("Host") + r.target;
          webhook.headers = r.headers;
          webhook.body = r.body;
          webhook.received_at_ms = r.received_at_ms;
          std::lock_guard lock(mutex);
          if (!engine) return crmhost::net::HttpResponse{503, "text/plain", {}, "not running\n"};
          const auto ingest = engine->ingest_webhook(r.path, webhook, r.request_id);
          return crmhost::net::HttpResponse{ingest.http_status, "text/plain", {}, ingest.body};
        });
    server->start();
    io_thread = std::thread([this] { io.run(); });
  }
  ~WebhookReceiver() {
    server->stop();
    io.stop();
    io_thread.join();
    handlers.join();
  }
  void serve(crmhost::pipeline::Engine *e) {
    std::lock_guard lock(mutex);
    engine = e;
  }
  std::string base_url() const {
    return "http://127.0.0.1:" + std::to_string(server->ports().at(0));
  }
};
