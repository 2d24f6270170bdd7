// The Zoho emulator's public C++ interface for tests: seeding, writes as a UI user makes them,
// inspecting, knobs, channels, workflow rules and deliveries.
#include <algorithm>
#include <random>

#include "sandbox/zoho_internal.hpp"

namespace crmsandbox {

using namespace zoho;

namespace {

const ModuleDef &module_or_throw(const std::string &name) {
  const auto *module = find_module(name);
  if (!module) throw std::invalid_argument("unknown Zoho module " + name);
  return *module;
}

ZohoRecord public_record(const ModuleDef &module, const Stored &r) {
  return {std::to_string(r.id), module.name, r.fields, r.created_ms, r.modified_ms};
}

// The seed's values: the same seed, module and index give the same record.
ZohoFields generated(const ModuleDef &module, size_t i, std::mt19937_64 &rng, bool multi) {
  static const std::vector<std::string> first = {"Ann",  "Bram",  "Chloé", "Dev",  "Elif",
                                                 "Femi", "Greta", "Hiro",  "Ines", "Jonas"};
  static const std::vector<std::string> last = {"Peeters", "Okafor", "Tanaka", "Silva", "Kowalski",
                                                "Nguyen",  "Dubois", "Haddad", "Olsen", "Moreau"};
  static const std::vector<std::string> stages = {"Qualification", "Needs Analysis",
                                                  "Proposal/Price Quote", "Closed Won"};
  static const std::vector<std::string> interests = {"Widgets", "Gadgets", "Support", "Training"};
  const auto pick = [&](const std::vector<std::string> &from) {
    return from[static_cast<size_t>(rng() % from.size())];
  };
  const auto n = std::to_string(i + 1);
  ZohoFields f;
  if (module.has_full_name()) {
    f["First_Name"] = pick(first);
    f["Last_Name"] = pick(last);
    f["Email"] = lowercase(std::get<std::string>(f["First_Name"]).substr(0, 1)) +
                 lowercase(std::get<std::string>(f["Last_Name"])) + n + "@example.com";
    f["Phone"] = "+32 2 555 " + std::to_string(1000 + rng() % 9000);
    if (module.name == "Leads")
      f["Company"] = pick(last) + " " + n + " Ltd";
    else
      f["Title"] = std::string(rng() % 2 ? "Manager" : "Engineer");
  } else if (module.name == "Accounts") {
    const auto name = pick(last) + " " + n;
    f["Account_Name"] = name + " Inc";
    f["Website"] = "https://" + lowercase(pick(last)) + n + ".example.com";
    f["Phone"] = "+32 3 555 " + std::to_string(1000 + rng() % 9000);
  } else {
    f["Deal_Name"] = "Deal " + n;
    f["Amount"] = static_cast<double>(500 * (1 + rng() % 40));
    f["Stage"] = pick(stages);
    f["Closing_Date"] = "2026-" + std::string(rng() % 2 ? "06" : "11") + "-15";
  }
  if (multi && i % 3 == 0)
    f["Product_Interest"] = std::vector<std::string>{pick(interests), "Support"};
  return f;
}

}  // namespace

std::vector<std::string> ZohoSandbox::seed(int64_t org_id, const std::string &module_name,
                                           const std::vector<ZohoFields> &records) {
  const auto &module = module_or_throw(module_name);
  std::lock_guard lock(impl_->mutex);
  auto &o = impl_->org(org_id);
  std::vector<ZohoFields> checked;
  for (size_t i = 0; i < records.size(); ++i) {
    auto fields = records[i];
    if (auto e = impl_->validate(o, module, fields, 0, true, "$.data[" + std::to_string(i) + "]"))
      throw std::invalid_argument("seed refused: " + e->code + " " + e->message);
    checked.push_back(std::move(fields));
  }
  std::vector<std::string> ids;
  for (auto &fields : checked)
    ids.push_back(std::to_string(impl_->insert(o, module, std::move(fields), 0, 0)));
  return ids;
}

std::vector<std::string> ZohoSandbox::seed_generated(int64_t org_id, const std::string &module_name,
                                                     size_t n, const ZohoSeedOptions &options) {
  const auto &module = module_or_throw(module_name);
  std::seed_seq seq{static_cast<uint32_t>(options.seed), static_cast<uint32_t>(options.seed >> 32),
                    static_cast<uint32_t>(std::hash<std::string>{}(module.name))};
  std::mt19937_64 rng(seq);
  std::lock_guard lock(impl_->mutex);
  auto &o = impl_->org(org_id);
  const int64_t now = impl_->clock() / 1000 * 1000;
  std::vector<std::string> ids;
  ids.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t at = now - static_cast<int64_t>(n - 1 - i) * options.spacing_ms;
    ids.push_back(std::to_string(
        impl_->insert(o, module, generated(module, i, rng, options.multi_select), at, at)));
  }
  return ids;
}

std::string ZohoSandbox::create_record(int64_t org_id, const std::string &module_name,
                                       const ZohoFields &fields) {
  const auto &module = module_or_throw(module_name);
  std::vector<ZohoDelivery> out;
  int64_t id = 0;
  {
    std::lock_guard lock(impl_->mutex);
    auto &o = impl_->org(org_id);
    auto copy = fields;
    if (auto e = impl_->validate(o, module, copy, 0, true, "$.data[0]"))
      throw std::invalid_argument("create refused: " + e->code + " " + e->message);
    id = impl_->insert(o, module, std::move(copy), 0, 0);
    const auto &r = o.tables[module.name].records.at(id);
    impl_->deliveries_for(
        o, {{module.name, "insert", id, {}, {}, r.fields, r.created_ms, r.modified_ms}}, true,
        o.spec.data_centre, out);
  }
  impl_->sender.send(std::move(out));
  return std::to_string(id);
}

bool ZohoSandbox::update_record(int64_t org_id, const std::string &module_name,
                                const std::string &id, const ZohoFields &fields) {
  const auto &module = module_or_throw(module_name);
  std::vector<ZohoDelivery> out;
  {
    std::lock_guard lock(impl_->mutex);
    auto &o = impl_->org(org_id);
    auto *record = impl_->find(o, module, id);
    if (!record) return false;
    auto copy = fields;
    if (auto e = impl_->validate(o, module, copy, record->id, false, "$.data[0]"))
      throw std::invalid_argument("update refused: " + e->code + " " + e->message);
    impl_->apply(*record, copy);
    Change change{module.name, "update",       record->id,         {},
                  copy,        record->fields, record->created_ms, record->modified_ms};
    for (const auto &[name, value] : copy) change.affected_fields.push_back(name);
    impl_->deliveries_for(o, {change}, true, o.spec.data_centre, out);
  }
  impl_->sender.send(std::move(out));
  return true;
}

bool ZohoSandbox::delete_record(int64_t org_id, const std::string &module_name,
                                const std::string &id) {
  const auto &module = module_or_throw(module_name);
  std::vector<ZohoDelivery> out;
  {
    std::lock_guard lock(impl_->mutex);
    auto &o = impl_->org(org_id);
    auto *record = impl_->find(o, module, id);
    if (!record) return false;
    const Change change{module.name, "delete",       record->id,         {},
                        {},          record->fields, record->created_ms, record->modified_ms};
    impl_->remove_record(o, module, record->id);
    impl_->deliveries_for(o, {change}, true, o.spec.data_centre, out);
  }
  impl_->sender.send(std::move(out));
  return true;
}

void ZohoSandbox::empty_recycle_bin(int64_t org_id, const std::string &module_name) {
  const auto &module = module_or_throw(module_name);
  std::lock_guard lock(impl_->mutex);
  for (auto &e : impl_->org(org_id).tables[module.name].deleted) e.type = "permanent";
}

std::optional<ZohoRecord> ZohoSandbox::record(int64_t org_id, const std::string &module_name,
                                              const std::string &id) const {
  const auto &module = module_or_throw(module_name);
  std::lock_guard lock(impl_->mutex);
  const auto *r = impl_->find(impl_->org(org_id), module, id);
  if (!r) return std::nullopt;
  return public_record(module, *r);
}

std::vector<ZohoRecord> ZohoSandbox::records(int64_t org_id, const std::string &module_name) const {
  const auto &module = module_or_throw(module_name);
  std::lock_guard lock(impl_->mutex);
  std::vector<ZohoRecord> out;
  for (const auto &[id, r] : impl_->org(org_id).tables[module.name].records)
    out.push_back(public_record(module, r));
  return out;
}

size_t ZohoSandbox::count(int64_t org_id, const std::string &module_name) const {
  const auto &module = module_or_throw(module_name);
  std::lock_guard lock(impl_->mutex);
  return impl_->org(org_id).tables[module.name].records.size();
}

std::vector<ZohoDeletedRecord> ZohoSandbox::deleted_records(int64_t org_id,
                                                            const std::string &module_name) const {
  const auto &module = module_or_throw(module_name);
  std::lock_guard lock(impl_->mutex);
  std::vector<ZohoDeletedRecord> out;
  for (const auto &e : impl_->org(org_id).tables[module.name].deleted)
    out.push_back(
        {std::to_string(e.id), module.name, e.display_name, e.type, e.deleted_ms, e.created_ms});
  return out;
}

void ZohoSandbox::set_unique_fields(const std::string &module_name,
                                    const std::vector<std::string> &fields) {
  const auto &module = module_or_throw(module_name);
  std::lock_guard lock(impl_->mutex);
  impl_->unique_fields[module.name] = fields;
}

void ZohoSandbox::set_search_index_delay(std::chrono::milliseconds delay) {
  std::lock_guard lock(impl_->mutex);
  impl_->search_index_delay_ms = delay.count();
}

void ZohoSandbox::set_faults(const FaultConfig &faults) {
  impl_->faults.configure(faults);
}

void ZohoSandbox::set_fault_seed(uint64_t seed) {
  impl_->faults.reseed(seed);
}

FaultConfig ZohoSandbox::faults() const {
  return impl_->faults.config();
}

ZohoStats ZohoSandbox::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

void ZohoSandbox::reset_stats() {
  std::lock_guard lock(impl_->mutex);
  impl_->stats = {};
}

std::vector<ZohoWriteCall> ZohoSandbox::write_calls() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->write_log;
}

void ZohoSandbox::clear_write_calls() {
  std::lock_guard lock(impl_->mutex);
  impl_->write_log.clear();
}

std::vector<ZohoChannel> ZohoSandbox::channels(int64_t org_id) const {
  std::lock_guard lock(impl_->mutex);
  std::vector<ZohoChannel> out;
  for (const auto &[id, c] : impl_->org(org_id).channels) out.push_back(c);
  return out;
}

void ZohoSandbox::add_channel(const ZohoChannel &channel) {
  if (channel.channel_id.empty() ||
      channel.channel_id.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument("a channel id is a long, not " + channel.channel_id);
  if (channel.notify_url.rfind("http://", 0) != 0)
    throw std::invalid_argument("notify URLs must be http://, not " + channel.notify_url);
  if (channel.token.size() > 49)
    throw std::invalid_argument("a channel token has at most 49 chars");
  for (const auto &e : channel.events) {
    const auto dot = e.find('.');
    if (dot == std::string::npos || !find_module(e.substr(0, dot)))
      throw std::invalid_argument("unknown event " + e);
  }
  std::lock_guard lock(impl_->mutex);
  auto copy = channel;
  if (copy.expiry_ms == 0) copy.expiry_ms = impl_->clock() + 3'600'000;
  impl_->org(channel.org_id).channels[copy.channel_id] = copy;
}

int64_t ZohoSandbox::add_workflow_rule(const ZohoWorkflowRule &rule) {
  const auto &module = module_or_throw(rule.module);
  if (rule.url.rfind("http://", 0) != 0)
    throw std::invalid_argument("webhook URLs must be http://, not " + rule.url);
  for (const auto &e : rule.events)
    if (e != "create" && e != "edit" && e != "delete")
      throw std::invalid_argument("workflow events are create, edit and delete, not " + e);
  std::lock_guard lock(impl_->mutex);
  auto copy = rule;
  copy.module = module.name;
  copy.id = impl_->next_rule++;
  impl_->org(copy.org_id);
  impl_->rules.push_back(copy);
  return copy.id;
}

bool ZohoSandbox::remove_workflow_rule(int64_t rule_id) {
  std::lock_guard lock(impl_->mutex);
  return std::erase_if(impl_->rules, [&](const auto &r) { return r.id == rule_id; }) > 0;
}

void ZohoSandbox::clear_workflow_rules() {
  std::lock_guard lock(impl_->mutex);
  impl_->rules.clear();
}

std::vector<ZohoWorkflowRule> ZohoSandbox::workflow_rules() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->rules;
}

std::vector<ZohoDelivery> ZohoSandbox::deliveries() const {
  return impl_->sender.log();
}

void ZohoSandbox::clear_deliveries() {
  impl_->sender.clear();
}

bool ZohoSandbox::wait_for_deliveries(size_t n, std::chrono::milliseconds timeout) const {
  return impl_->sender.wait_for(n, timeout);
}

}  // namespace crmsandbox
