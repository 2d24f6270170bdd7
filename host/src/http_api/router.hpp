#pragma once
// The HTTP routes of a running host: health, the admin API (JSON, behind the admin token) and
// webhook ingress for every pipeline's path.
#include <mutex>
#include <string>

#include "net/http_server.hpp"
#include "pipeline/engine.hpp"
#include "store/store.hpp"

namespace crmhost::http_api {

struct RouterContext {
  pipeline::Engine &engine;
  store::Store &store;
  std::string admin_token;  // empty: the admin API is disabled (health and webhooks still work)
  std::string metrics_token = {};  // empty: GET /metrics is open
  // How webhook URLs are given to plugins (they sign scheme://host/path?query): "https" when
  // the listeners speak TLS. Behind a TLS proxy, configure the plugin's public base URL.
  std::string scheme = "http";
  // Guards the tokens, which a reload (SIGHUP) replaces while requests are answered.
  mutable std::mutex tokens_mutex = {};

  void set_tokens(std::string admin, std::string metrics) {
    std::lock_guard lock(tokens_mutex);
    admin_token = std::move(admin);
    metrics_token = std::move(metrics);
  }
};

// Answers one request: GET /healthz, GET /readyz, the admin routes under a Bearer token, and
// POSTs to webhook paths. Never throws.
net::HttpResponse route(const net::HttpRequest &request, RouterContext &context);
// The same for the server's asynchronous handler: a webhook is answered when its events are
// durable, without holding a thread meanwhile. Everything else answers at once.
void route_async(const net::HttpRequest &request, RouterContext &context, net::Respond respond);

// Compares in time independent of where the inputs differ.
bool constant_time_equals(const std::string &a, const std::string &b);

}  // namespace crmhost::http_api
