#pragma once
// HubSpot's webhook side of the sandbox: subscriptions, events in HubSpot's shape, batched
// signed deliveries on a background thread with HubSpot's retry rule, and a log of attempts.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sandbox/hubspot.hpp"

namespace crmsandbox {

// A change, before it is matched against subscriptions.
struct HubSpotChange {
  int64_t portal_id = 0;
  std::string object;  // "contact", "company", "deal"
  std::string kind;    // "creation", "deletion", "propertyChange", "merge", "restore"
  int64_t object_id = 0;
  std::string property_name;  // propertyChange
  std::string property_value;
  int64_t primary_object_id = 0;  // merge
  std::vector<int64_t> merged_object_ids;
  int64_t occurred_at_ms = 0;
};

class HubSpotWebhooks {
 public:
  HubSpotWebhooks();
  ~HubSpotWebhooks();  // stops the delivery thread; pending deliveries are abandoned
  void start();
  void stop();

  void configure(const HubSpotWebhookSettings &settings);
  HubSpotWebhookSettings settings() const;
  int64_t subscribe(const std::string &type, const std::string &property_name);
  bool unsubscribe(int64_t id);
  void clear_subscriptions();
  std::vector<HubSpotSubscription> subscriptions() const;

  // Queues one event per matching subscription (nothing without a target). Thread-safe.
  void emit(const HubSpotChange &change);
  // Whether any subscription would take a change of `object` and `kind` (skips building
  // propertyChange events nobody wants).
  bool wants(const std::string &object, const std::string &kind) const;

  std::vector<HubSpotDelivery> deliveries() const;
  void clear_deliveries();
  bool wait_for_deliveries(size_t n, std::chrono::milliseconds timeout) const;

 private:
  struct Event {
    int64_t event_id = 0;
    int64_t subscription_id = 0;
    std::string subscription_type;
    HubSpotChange change;
  };
  struct Pending {
    int64_t delivery_id = 0;
    int attempt = 0;
    std::vector<Event> events;
    int64_t due_ms = 0;
  };
  void run();
  void deliver(Pending pending);
  std::string body_of(const std::vector<Event> &events, int attempt, int64_t app_id) const;

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  HubSpotWebhookSettings settings_;
  std::vector<HubSpotSubscription> subscriptions_;
  int64_t next_subscription_id_ = 1;
  int64_t next_event_id_ = 1;
  int64_t next_delivery_id_ = 1;
  std::deque<Event> queue_;
  int64_t first_queued_ms_ = 0;
  std::vector<Pending> retries_;
  std::vector<HubSpotDelivery> log_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace crmsandbox
