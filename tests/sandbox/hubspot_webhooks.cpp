#include "sandbox/hubspot_webhooks.hpp"

#include <algorithm>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace crmsandbox {

std::string hubspot_signature_v1(const std::string &secret, const std::string &body) {
  return sha256_hex(secret + body);
}

std::string hubspot_signature_v2(const std::string &secret, const std::string &method,
                                 const std::string &uri, const std::string &body) {
  return sha256_hex(secret + method + uri + body);
}

std::string hubspot_signature_v3(const std::string &secret, const std::string &method,
                                 const std::string &uri, const std::string &body,
                                 int64_t timestamp_ms) {
  return base64_encode(hmac_sha256(secret, method + uri + body + std::to_string(timestamp_ms)));
}

HubSpotWebhooks::HubSpotWebhooks() = default;

HubSpotWebhooks::~HubSpotWebhooks() {
  stop();
}

void HubSpotWebhooks::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void HubSpotWebhooks::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HubSpotWebhooks::configure(const HubSpotWebhookSettings &settings) {
  std::lock_guard lock(mutex_);
  settings_ = settings;
  if (settings_.max_batch == 0) settings_.max_batch = 1;
  changed_.notify_all();
}

HubSpotWebhookSettings HubSpotWebhooks::settings() const {
  std::lock_guard lock(mutex_);
  return settings_;
}

int64_t HubSpotWebhooks::subscribe(const std::string &type, const std::string &property_name) {
  std::lock_guard lock(mutex_);
  subscriptions_.push_back({next_subscription_id_, type, property_name});
  return next_subscription_id_++;
}

bool HubSpotWebhooks::unsubscribe(int64_t id) {
  std::lock_guard lock(mutex_);
  const auto before = subscriptions_.size();
  std::erase_if(subscriptions_, [id](const auto &s) { return s.id == id; });
  return subscriptions_.size() != before;
}

void HubSpotWebhooks::clear_subscriptions() {
  std::lock_guard lock(mutex_);
  subscriptions_.clear();
}

std::vector<HubSpotSubscription> HubSpotWebhooks::subscriptions() const {
  std::lock_guard lock(mutex_);
  return subscriptions_;
}

bool HubSpotWebhooks::wants(const std::string &object, const std::string &kind) const {
  std::lock_guard lock(mutex_);
  if (settings_.target_url.empty()) return false;
  const auto type = object + "." + kind;
  return std::any_of(subscriptions_.begin(), subscriptions_.end(),
                     [&](const auto &s) { return s.type == type; });
}

void HubSpotWebhooks::emit(const HubSpotChange &change) {
  std::lock_guard lock(mutex_);
  if (settings_.target_url.empty()) return;
  const auto type = change.object + "." + change.kind;
  for (const auto &subscription : subscriptions_) {
    if (subscription.type != type) continue;
    if (change.kind == "propertyChange" && !subscription.property_name.empty() &&
        subscription.property_name != change.property_name)
      continue;
    if (queue_.empty()) first_queued_ms_ = now_ms();
    queue_.push_back({next_event_id_++, subscription.id, type, change});
  }
  changed_.notify_all();
}

std::vector<HubSpotDelivery> HubSpotWebhooks::deliveries() const {
  std::lock_guard lock(mutex_);
  return log_;
}

void HubSpotWebhooks::clear_deliveries() {
  std::lock_guard lock(mutex_);
  log_.clear();
}

bool HubSpotWebhooks::wait_for_deliveries(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return log_.size() >= n; });
}

std::string HubSpotWebhooks::body_of(const std::vector<Event> &events, int attempt,
                                     int64_t app_id) const {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.StartArray();
  for (const auto &event : events) {
    const auto &c = event.change;
    w.StartObject();
    w.Key("eventId");
    w.Int64(event.event_id);
    w.Key("subscriptionId");
    w.Int64(event.subscription_id);
    w.Key("portalId");
    w.Int64(c.portal_id);
    w.Key("appId");
    w.Int64(app_id);
    w.Key("occurredAt");
    w.Int64(c.occurred_at_ms);
    w.Key("subscriptionType");
    w.String(event.subscription_type);
    w.Key("attemptNumber");
    w.Int(attempt);
    w.Key("objectId");
    w.Int64(c.object_id);
    w.Key("changeSource");
    w.String("CRM");  // (guess) the fact sheet's example; HubSpot also sends API, IMPORT, ...
    if (c.kind == "propertyChange") {
      w.Key("propertyName");
      w.String(c.property_name);
      w.Key("propertyValue");
      w.String(c.property_value);
    } else {
      // (guess) beyond the fact sheet's "NEW" for creations
      static const std::map<std::string, std::string> flags = {{"creation", "NEW"},
                                                               {"deletion", "DELETED"},
                                                               {"merge", "MERGED"},
                                                               {"restore", "RESTORED"}};
      const auto flag = flags.find(c.kind);
      if (flag != flags.end()) {
        w.Key("changeFlag");
        w.String(flag->second);
      }
    }
    if (c.kind == "merge") {
      w.Key("primaryObjectId");
      w.Int64(c.primary_object_id);
      w.Key("mergedObjectIds");
      w.StartArray();
      for (const auto id : c.merged_object_ids) w.Int64(id);
      w.EndArray();
    }
    w.EndObject();
  }
  w.EndArray();
  return {buffer.GetString(), buffer.GetSize()};
}

void HubSpotWebhooks::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const int64_t now = now_ms();
    const auto window = settings_.batch_window.count();
    if (!queue_.empty() &&
        (queue_.size() >= settings_.max_batch || now >= first_queued_ms_ + window)) {
      Pending batch{next_delivery_id_++, 0, {}, now};
      while (!queue_.empty() && batch.events.size() < settings_.max_batch) {
        batch.events.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      first_queued_ms_ = now;
      lock.unlock();
      deliver(std::move(batch));
      lock.lock();
      continue;
    }
    auto due = std::min_element(retries_.begin(), retries_.end(),
                                [](const auto &a, const auto &b) { return a.due_ms < b.due_ms; });
    if (due != retries_.end() && due->due_ms <= now) {
      Pending retry = std::move(*due);
      retries_.erase(due);
      lock.unlock();
      deliver(std::move(retry));
      lock.lock();
      continue;
    }
    int64_t wake = INT64_MAX;
    if (!queue_.empty()) wake = first_queued_ms_ + window;
    if (due != retries_.end()) wake = std::min(wake, due->due_ms);
    if (wake == INT64_MAX)
      changed_.wait(lock);
    else
      changed_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(1, wake - now)));
  }
}

void HubSpotWebhooks::deliver(Pending pending) {
  const auto settings = this->settings();
  if (settings.target_url.empty()) return;
  HubSpotDelivery attempt;
  attempt.delivery_id = pending.delivery_id;
  attempt.attempt_number = pending.attempt;
  attempt.events = pending.events.size();
  attempt.url = settings.target_url;
  attempt.body = body_of(pending.events, pending.attempt, settings.app_id);
  attempt.headers = {{"Content-Type", "application/json"},
                     {"User-Agent", "HubSpot Connect 2.0 (http://dev.hubspot.com/)"}};  // (guess)
  // Signed over the target URI exactly as it is sent.
  if (settings.signature_version == "v3") {
    const auto timestamp = now_ms();
    attempt.headers.emplace_back("X-HubSpot-Request-Timestamp", std::to_string(timestamp));
    attempt.headers.emplace_back(
        "X-HubSpot-Signature-v3",
        hubspot_signature_v3(settings.app_secret, "POST", settings.target_url, attempt.body,
                             timestamp));
  } else if (settings.signature_version == "v2") {
    attempt.headers.emplace_back(
        "X-HubSpot-Signature",
        hubspot_signature_v2(settings.app_secret, "POST", settings.target_url, attempt.body));
    attempt.headers.emplace_back("X-HubSpot-Signature-Version", "v2");
  } else {
    attempt.headers.emplace_back("X-HubSpot-Signature",
                                 hubspot_signature_v1(settings.app_secret, attempt.body));
    attempt.headers.emplace_back("X-HubSpot-Signature-Version", "v1");
  }
  attempt.sent_at_ms = now_ms();
  const auto result =
      http_request("POST", settings.target_url, attempt.headers, attempt.body, settings.timeout);
  attempt.status = result.status;
  attempt.error = result.error;
  // HubSpot's rule: retry transport failures, timeouts and non-2xx except these client errors.
  const int s = result.status;
  const bool final_status =
      (s >= 200 && s < 300) || s == 400 || s == 401 || s == 403 || s == 404 || s == 405;
  attempt.will_retry = !final_status && pending.attempt + 1 < settings.max_attempts;

  std::lock_guard lock(mutex_);
  log_.push_back(std::move(attempt));
  if (log_.back().will_retry && !stopping_) {
    ++pending.attempt;
    pending.due_ms = now_ms() + settings.retry_backoff.count() * pending.attempt;
    retries_.push_back(std::move(pending));
  }
  changed_.notify_all();
}

}  // namespace crmsandbox
