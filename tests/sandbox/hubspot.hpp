#pragma once
// The HubSpot emulator of crm-sandbox: HubSpot's public CRM v3 API (objects, batch, search, merge),
// OAuth refresh, rate limits and webhooks, stateful and in memory, over real HTTP on loopback.
// Source of truth: shared/design/providers/hubspot.md. Link `crm_sandbox_lib` to use it in a test:
//
//   crmsandbox::HubSpotSandbox hubspot;             // listens on 127.0.0.1:0 by default
//   hubspot.add_token("pat-1", 101);                // Bearer token -> portal 101
//   hubspot.start();                                // binds; port() is known from here on
//   settings.base_url = hubspot.base_url();         // "http://127.0.0.1:<port>"
//   hubspot.seed_generated(101, "contacts", 250);   // instant, searchable at once, no webhooks
//   hubspot.set_indexing_delay(std::chrono::milliseconds(1500));
//   hubspot.set_faults({.p429 = 0.1, .p5xx = 0.05});
//   hubspot.set_webhook_target("http://127.0.0.1:9000/hooks", "app-secret", "v3");
//   hubspot.subscribe("contact.propertyChange", "email");
//   ... hubspot.records(101, "contacts"), hubspot.deliveries(), hubspot.stats() ...
//
// Every public function is thread-safe and may be called before or after start(). Objects are
// "contacts", "companies", "deals" (also "0-1", "0-2", "0-3"); an unknown object, or a seed or
// write HubSpot would refuse (an invalid or duplicate contact email), throws
// std::invalid_argument. Portals are created on first use. Faults apply to the API and OAuth
// requests, never to the /_sandbox/ controls (hubspot_admin.cpp lists them).
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/common.hpp"

namespace crmsandbox {

using Properties = std::map<std::string, std::string>;

struct HubSpotRecord {
  std::string id;
  Properties properties;  // current values, strings as HubSpot returns them
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  bool archived = false;
};

// A record to seed: timestamps 0 mean "now".
struct HubSpotSeed {
  Properties properties;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

struct HubSpotRateLimits {
  int64_t per_window = 100;  // requests per rolling window and token (HubSpot: 100 or 190)
  int64_t window_ms = 10'000;
  int64_t search_per_second = 5;  // search requests per rolling second and token
  int64_t daily = 250'000;        // requests per portal and UTC day
};

struct HubSpotWebhookSettings {
  std::string target_url;  // http:// only; empty: no deliveries (events are not recorded)
  std::string app_secret;
  std::string signature_version = "v1";  // v1 | v2 | v3
  int64_t app_id = 54321;
  size_t max_batch = 100;                        // events per delivery
  std::chrono::milliseconds batch_window{100};   // events gathered before a delivery
  std::chrono::milliseconds retry_backoff{200};  // attempt n waits n x this (guess: HubSpot
                                                 // spreads 10 attempts over about a day)
  int max_attempts = 10;
  std::chrono::milliseconds timeout{5'000};  // (guess) a slower receiver counts as a failure
};

struct HubSpotSubscription {
  int64_t id = 0;
  std::string type;           // "contact.creation", "deal.propertyChange", ...
  std::string property_name;  // propertyChange only; empty: every property (guess)
};

// One delivery attempt, as the receiver saw it (or did not).
struct HubSpotDelivery {
  int64_t delivery_id = 0;  // the same across the attempts of one batch
  int attempt_number = 0;   // attemptNumber in the events (0 first)
  size_t events = 0;
  std::string url;
  Headers headers;   // as sent, signature included
  std::string body;  // the exact bytes sent
  int status = 0;    // the receiver's status; 0 when none (error says why)
  std::string error;
  bool will_retry = false;
  int64_t sent_at_ms = 0;
};

struct HubSpotStats {
  uint64_t requests = 0;  // API requests (admin endpoints excluded)
  uint64_t unauthorized = 0;
  uint64_t limited_ten_secondly = 0;  // real 429s, by policy
  uint64_t limited_secondly = 0;
  uint64_t limited_daily = 0;
  uint64_t injected_429 = 0;  // injected faults
  uint64_t injected_5xx = 0;
  uint64_t dropped = 0;
  uint64_t malformed = 0;
};

struct HubSpotOptions {
  std::string listen = "127.0.0.1:0";
  HubSpotRateLimits rate_limits;
  std::chrono::milliseconds indexing_delay{0};  // records reach search this long after a write
  int64_t token_ttl_seconds = 1800;             // OAuth access tokens (expires_in)
  uint64_t seed = 0;                            // fault injection
  FaultConfig faults;
  size_t handler_threads = 4;
};

class HubSpotSandbox {
 public:
  explicit HubSpotSandbox(HubSpotOptions options = {});
  ~HubSpotSandbox();  // stops the server and the webhook thread
  HubSpotSandbox(const HubSpotSandbox &) = delete;
  HubSpotSandbox &operator=(const HubSpotSandbox &) = delete;

  void start();                  // throws std::runtime_error when the address cannot be bound
  void stop();                   // the state is kept; start() again serves it on a new server
  uint16_t port() const;         // 0 when not serving
  std::string base_url() const;  // "http://127.0.0.1:<port>"

  // The whole API as a function (what the server calls for each request).
  HttpResponse handle(const HttpRequest &request);

  // Auth. Private-app style tokens never expire; OAuth access tokens expire after the TTL.
  void add_token(const std::string &token, int64_t portal_id);
  void add_oauth_client(const std::string &client_id, const std::string &client_secret,
                        const std::string &refresh_token, int64_t portal_id);
  void set_token_ttl(std::chrono::seconds ttl);
  void expire_oauth_tokens();  // every issued access token expires now: the next call gets 401
  void revoke_token(const std::string &token);
  std::vector<std::string> issued_access_tokens() const;

  // Records written directly: no webhooks, no rate limits, searchable at once. Return the ids.
  std::vector<std::string> seed(int64_t portal_id, const std::string &object,
                                const std::vector<HubSpotSeed> &records);
  // n generated records (contacts: email contact<id>@example.com, firstname, lastname; companies:
  // name, domain; deals: dealname, amount, dealstage, pipeline), modified 1 ms apart, in the past.
  std::vector<std::string> seed_generated(int64_t portal_id, const std::string &object, size_t n);
  // Writes as a user in HubSpot's UI would make them: webhooks fire, the indexing delay applies.
  // create returns the id; update/archive/restore return false when the record is missing.
  std::string create_record(int64_t portal_id, const std::string &object,
                            const Properties &properties);
  bool update_record(int64_t portal_id, const std::string &object, const std::string &id,
                     const Properties &properties);
  bool archive_record(int64_t portal_id, const std::string &object, const std::string &id);
  bool restore_record(int64_t portal_id, const std::string &object, const std::string &id);
  bool merge_records(int64_t portal_id, const std::string &object, const std::string &primary_id,
                     const std::string &merged_id);

  std::optional<HubSpotRecord> record(int64_t portal_id, const std::string &object,
                                      const std::string &id) const;
  // Ordered by id; archived ones only when asked.
  std::vector<HubSpotRecord> records(int64_t portal_id, const std::string &object,
                                     bool include_archived = false) const;
  size_t count(int64_t portal_id, const std::string &object) const;  // not archived

  // Knobs, effective for the next request.
  void set_faults(const FaultConfig &faults);
  void set_fault_seed(uint64_t seed);
  FaultConfig faults() const;
  void set_indexing_delay(std::chrono::milliseconds delay);
  void set_rate_limits(const HubSpotRateLimits &limits);
  HubSpotRateLimits rate_limits() const;
  void reset_rate_windows();  // forget the requests counted so far (windows and daily)
  HubSpotStats stats() const;

  // Webhooks: one app, one target, events of every portal.
  void set_webhook_target(const std::string &url, const std::string &app_secret,
                          const std::string &signature_version = "v1");
  void set_webhook_settings(const HubSpotWebhookSettings &settings);
  HubSpotWebhookSettings webhook_settings() const;
  int64_t subscribe(const std::string &type, const std::string &property_name = "");
  bool unsubscribe(int64_t subscription_id);
  void clear_subscriptions();
  std::vector<HubSpotSubscription> subscriptions() const;
  std::vector<HubSpotDelivery> deliveries() const;  // every attempt, oldest first
  void clear_deliveries();
  // Waits until at least `n` attempts are recorded; false on timeout.
  bool wait_for_deliveries(size_t n, std::chrono::milliseconds timeout) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// HubSpot's webhook signatures (the fact sheet's "Webhook signatures"), for the sandbox and tests.
std::string hubspot_signature_v1(const std::string &secret, const std::string &body);
std::string hubspot_signature_v2(const std::string &secret, const std::string &method,
                                 const std::string &uri, const std::string &body);
std::string hubspot_signature_v3(const std::string &secret, const std::string &method,
                                 const std::string &uri, const std::string &body,
                                 int64_t timestamp_ms);

}  // namespace crmsandbox
