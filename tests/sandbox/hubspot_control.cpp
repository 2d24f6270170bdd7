// The HubSpot emulator's controls: the public C++ interface for tests (seeding, inspecting,
// knobs, webhooks) and the same as JSON under /_sandbox/ for scripts and demos.
#include <algorithm>

#include "sandbox/hubspot_internal.hpp"

namespace crmsandbox {

namespace {

const ObjectType &object_type(const std::string &object) {
  const auto *type = find_object_type(object);
  if (!type) throw std::invalid_argument("unknown HubSpot object " + object);
  return *type;
}

HubSpotRecord public_record(const StoredRecord &r) {
  return {std::to_string(r.id), r.properties, r.created_ms, r.updated_ms, r.archived};
}

Properties generated_properties(const ObjectType &type, int64_t k) {
  const auto n = std::to_string(k);
  if (type.plural == "contacts")
    return {{"email", "contact" + n + "@example.com"},
            {"firstname", "First" + n},
            {"lastname", "Last" + n}};
  if (type.plural == "companies")
    return {{"name", "Company " + n}, {"domain", "company" + n + ".example.com"}};
  return {{"dealname", "Deal " + n},
          {"amount", std::to_string(100 * (k % 50 + 1))},
          {"dealstage", "appointmentscheduled"},
          {"pipeline", "default"}};
}

}  // namespace

std::vector<std::string> HubSpotSandbox::seed(int64_t portal_id, const std::string &object,
                                              const std::vector<HubSpotSeed> &records) {
  const auto &type = object_type(object);
  std::lock_guard lock(impl_->mutex);
  auto &p = impl_->portal(portal_id);
  std::vector<std::string> ids;
  ids.reserve(records.size());
  for (const auto &seed : records) {
    auto properties = seed.properties;
    if (auto error = impl_->validate(p, type, properties, 0))
      throw std::invalid_argument("seed refused: " + error->message);
    ids.push_back(std::to_string(
        impl_->insert(p, type, std::move(properties), seed.created_ms, seed.updated_ms, false)));
  }
  return ids;
}

std::vector<std::string> HubSpotSandbox::seed_generated(int64_t portal_id,
                                                        const std::string &object, size_t n) {
  const auto &type = object_type(object);
  std::lock_guard lock(impl_->mutex);
  auto &p = impl_->portal(portal_id);
  const int64_t base = now_ms() - static_cast<int64_t>(n) - 1;
  std::vector<std::string> ids;
  ids.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t at = base + static_cast<int64_t>(i);
    ids.push_back(std::to_string(
        impl_->insert(p, type, generated_properties(type, impl_->next_id), at, at, false)));
  }
  return ids;
}

std::string HubSpotSandbox::create_record(int64_t portal_id, const std::string &object,
                                          const Properties &properties) {
  const auto &type = object_type(object);
  std::lock_guard lock(impl_->mutex);
  auto &p = impl_->portal(portal_id);
  auto copy = properties;
  if (auto error = impl_->validate(p, type, copy, 0))
    throw std::invalid_argument("create refused: " + error->message);
  return std::to_string(impl_->insert(p, type, std::move(copy), 0, 0, true));
}

bool HubSpotSandbox::update_record(int64_t portal_id, const std::string &object,
                                   const std::string &id, const Properties &properties) {
  const auto &type = object_type(object);
  std::lock_guard lock(impl_->mutex);
  auto &p = impl_->portal(portal_id);
  auto *record = impl_->find(p, type, id, "", false);
  if (!record) return false;
  auto copy = properties;
  if (auto error = impl_->validate(p, type, copy, record->id))
    throw std::invalid_argument("update refused: " + error->message);
  impl_->apply(p, type, *record, copy);
  return true;
}

bool HubSpotSandbox::archive_record(int64_t portal_id, const std::string &object,
                                    const std::string &id) {
  const auto &type = object_type(object);
  std::lock_guard lock(impl_->mutex);
  auto &p = impl_->portal(portal_id);
  auto *record = impl_->find(p, type, id, "", false);
  if (!record) return false;
  impl_->archive_record(p, type, *record);
  return true;
}

bool HubSpotSandbox::restore_record(int64_t portal_id, const std::string &object,
                                    const std::string &id) {
  const auto &type = object_type(object);
  std::lock_guard lock(impl_->mutex);
  auto &p = impl_->portal(portal_id);
  auto *record = impl_->find(p, type, id, "", true);
  if (!record) return false;
  impl_->restore_record(p, type, *record);
  return true;
}

bool HubSpotSandbox::merge_records(int64_t portal_id, const std::string &object,
                                   const std::string &primary_id, const std::string &merged_id) {
  const auto &type = object_type(object);
  std::lock_guard lock(impl_->mutex);
  StoredRecord *primary = nullptr;
  return !impl_->merge_records(impl_->portal(portal_id), type, primary_id, merged_id, &primary);
}

std::optional<HubSpotRecord> HubSpotSandbox::record(int64_t portal_id, const std::string &object,
                                                    const std::string &id) const {
  const auto &type = object_type(object);
  std::lock_guard lock(impl_->mutex);
  auto &p = impl_->portal(portal_id);
  const auto *record = impl_->find(p, type, id, "", false);
  if (!record) record = impl_->find(p, type, id, "", true);
  if (!record) return std::nullopt;
  return public_record(*record);
}

std::vector<HubSpotRecord> HubSpotSandbox::records(int64_t portal_id, const std::string &object,
                                                   bool include_archived) const {
  const auto &type = object_type(object);
  std::lock_guard lock(impl_->mutex);
  std::vector<HubSpotRecord> out;
  for (const auto &[id, record] : impl_->portal(portal_id).tables[type.plural].records)
    if (include_archived || !record.archived) out.push_back(public_record(record));
  return out;
}

size_t HubSpotSandbox::count(int64_t portal_id, const std::string &object) const {
  const auto &type = object_type(object);
  std::lock_guard lock(impl_->mutex);
  const auto &records = impl_->portal(portal_id).tables[type.plural].records;
  return static_cast<size_t>(std::count_if(records.begin(), records.end(),
                                           [](const auto &kv) { return !kv.second.archived; }));
}

void HubSpotSandbox::set_faults(const FaultConfig &faults) {
  impl_->faults.configure(faults);
}

void HubSpotSandbox::set_fault_seed(uint64_t seed) {
  impl_->faults.reseed(seed);
}

FaultConfig HubSpotSandbox::faults() const {
  return impl_->faults.config();
}

void HubSpotSandbox::set_indexing_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(impl_->mutex);
  impl_->indexing_delay_ms = delay.count();
}

void HubSpotSandbox::set_rate_limits(const HubSpotRateLimits &limits) {
  std::lock_guard lock(impl_->mutex);
  impl_->limits = limits;
}

HubSpotRateLimits HubSpotSandbox::rate_limits() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->limits;
}

void HubSpotSandbox::reset_rate_windows() {
  std::lock_guard lock(impl_->mutex);
  for (auto &[token, state] : impl_->tokens) {
    state.window.clear();
    state.search_window.clear();
  }
  for (auto &[id, portal] : impl_->portals) portal.daily_used = 0;
}

HubSpotStats HubSpotSandbox::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

void HubSpotSandbox::set_webhook_target(const std::string &url, const std::string &app_secret,
                                        const std::string &signature_version) {
  auto settings = impl_->webhooks.settings();
  settings.target_url = url;
  settings.app_secret = app_secret;
  settings.signature_version = signature_version;
  set_webhook_settings(settings);
}

void HubSpotSandbox::set_webhook_settings(const HubSpotWebhookSettings &settings) {
  const auto &v = settings.signature_version;
  if (v != "v1" && v != "v2" && v != "v3")
    throw std::invalid_argument("signature version must be v1, v2 or v3");
  if (!settings.target_url.empty() && settings.target_url.rfind("http://", 0) != 0)
    throw std::invalid_argument("the webhook target must be an http:// URL");
  impl_->webhooks.configure(settings);
}

HubSpotWebhookSettings HubSpotSandbox::webhook_settings() const {
  return impl_->webhooks.settings();
}

int64_t HubSpotSandbox::subscribe(const std::string &type, const std::string &property_name) {
  static const std::vector<std::string> objects = {"contact", "company", "deal"};
  static const std::vector<std::string> kinds = {"creation", "deletion", "propertyChange", "merge",
                                                 "restore"};
  const auto dot = type.find('.');
  if (dot == std::string::npos ||
      std::find(objects.begin(), objects.end(), type.substr(0, dot)) == objects.end() ||
      std::find(kinds.begin(), kinds.end(), type.substr(dot + 1)) == kinds.end())
    throw std::invalid_argument("unknown subscription type " + type);
  return impl_->webhooks.subscribe(type, property_name);
}

bool HubSpotSandbox::unsubscribe(int64_t subscription_id) {
  return impl_->webhooks.unsubscribe(subscription_id);
}

void HubSpotSandbox::clear_subscriptions() {
  impl_->webhooks.clear_subscriptions();
}

std::vector<HubSpotSubscription> HubSpotSandbox::subscriptions() const {
  return impl_->webhooks.subscriptions();
}

std::vector<HubSpotDelivery> HubSpotSandbox::deliveries() const {
  return impl_->webhooks.deliveries();
}

void HubSpotSandbox::clear_deliveries() {
  impl_->webhooks.clear_deliveries();
}

bool HubSpotSandbox::wait_for_deliveries(size_t n, std::chrono::milliseconds timeout) const {
  return impl_->webhooks.wait_for_deliveries(n, timeout);
}

}  // namespace crmsandbox
