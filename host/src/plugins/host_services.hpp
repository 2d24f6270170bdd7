#pragma once
// The services the host lends to plugins through crm_host_api and its extensions.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "crmhost/plugin.h"
#include "plugins/call_error.hpp"

namespace crmhost::plugins {

// Durable per-connection key-value state behind crm.state.v1. The store implements it for
// production; the in-memory one serves tests and tools that run without a store.
class ConnectionStateBackend {
 public:
  virtual ~ConnectionStateBackend() = default;
  virtual std::optional<std::string> get(const std::string &connection, const std::string &key) = 0;
  virtual void put(const std::string &connection, const std::string &key,
                   const std::string &value) = 0;
  virtual void remove(const std::string &connection, const std::string &key) = 0;
};

class InMemoryStateBackend final : public ConnectionStateBackend {
 public:
  std::optional<std::string> get(const std::string &connection, const std::string &key) override;
  void put(const std::string &connection, const std::string &key,
           const std::string &value) override;
  void remove(const std::string &connection, const std::string &key) override;

 private:
  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::string> values_;
};

// One outbound HTTP call behind crm.http.v1, in plain C++ (the host's net library implements it;
// plugins must not depend on net, so the interface lives here).
struct HttpCall {
  std::string method;
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  uint32_t timeout_ms = 0;  // whole exchange, retries included; 0 = the client's default
  uint32_t flags = 0;       // CRM_HTTP_* bits
  std::string bucket;       // rate-limit bucket; empty = the connection's default
};

struct HttpReply {
  int32_t status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  uint32_t attempts = 0;
};

using HttpResult = Outcome<HttpReply>;

class OutboundHttp {
 public:
  virtual ~OutboundHttp() = default;
  // Blocking; the final response of any status, or a CallError (transport, rate_limited, ...).
  virtual HttpResult request(const std::string &connection, const HttpCall &call) = 0;
};

struct HostServices {
  std::shared_ptr<ConnectionStateBackend> state = std::make_shared<InMemoryStateBackend>();
  std::function<int64_t()> clock;  // Unix ms; the system clock when empty
  // Behind crm.http.v1; get_extension answers NULL for it while this is unset.
  std::shared_ptr<OutboundHttp> http;

  int64_t now_ms() const;
};

constexpr size_t kMaxStateKeyBytes = 256;
constexpr size_t kMaxStateValueBytes = 64 * 1024;

// Per-plugin context behind crm_host_api.host_data.
struct PluginHostContext {
  std::string plugin_id;
  std::shared_ptr<HostServices> services;
};

// Fills a crm_host_api whose functions read `context`, which must outlive the table.
crm_host_api make_host_api(PluginHostContext *context, uint32_t negotiated_abi);

}  // namespace crmhost::plugins

// The host's side of one connector instance; plugins see only the opaque pointer.
struct crm_host_instance {
  std::string plugin_id;
  std::string connection;
  std::shared_ptr<crmhost::plugins::HostServices> services;
};
