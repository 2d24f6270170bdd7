#pragma once
// crm.state.v1 backed by the store: plugin state survives restarts and is encrypted at rest
// (AES-256-GCM, key from CRMHOST_SECRET_KEY or a key file; see store/store.hpp).
#include <memory>

#include "plugins/host_services.hpp"
#include "store/store.hpp"

namespace crmhost::pipeline {

class StoreStateBackend final : public plugins::ConnectionStateBackend {
 public:
  explicit StoreStateBackend(std::shared_ptr<store::Store> store) : store_(std::move(store)) {}
  std::optional<std::string> get(const std::string &connection, const std::string &key) override {
    return store_->get_state(connection, key);
  }
  void put(const std::string &connection, const std::string &key,
           const std::string &value) override {
    store_->put_state(connection, key, value);
  }
  void remove(const std::string &connection, const std::string &key) override {
    store_->delete_state(connection, key);
  }

 private:
  std::shared_ptr<store::Store> store_;
};

}  // namespace crmhost::pipeline
