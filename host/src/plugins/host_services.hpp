#pragma once
// The services the host lends to plugins through crm_host_api and its extensions.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "crmhost/plugin.h"

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

struct HostServices {
  std::shared_ptr<ConnectionStateBackend> state = std::make_shared<InMemoryStateBackend>();
  std::function<int64_t()> clock;  // Unix ms; the system clock when empty
  // crm.http.v1 is declared in plugin.h; its implementation arrives with the HTTP service, and
  // until then get_extension answers NULL for it, as for any extension a host lacks.

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
