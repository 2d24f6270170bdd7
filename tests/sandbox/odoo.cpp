// The Odoo emulator's request pipeline (faults, routing), the webhook sender, transactions and
// the public C++ interface.
#include <algorithm>
#include <thread>

#include "sandbox/odoo_internal.hpp"

namespace crmsandbox {

using namespace odoo;

namespace odoo {

WebhookSender::WebhookSender(std::chrono::milliseconds timeout)
    : timeout_(timeout), thread_([this] { run(); }) {}

WebhookSender::~WebhookSender() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void WebhookSender::send(std::vector<OdooDelivery> deliveries) {
  if (deliveries.empty()) return;
  {
    std::lock_guard lock(mutex_);
    for (auto &d : deliveries) queue_.push_back(std::move(d));
  }
  changed_.notify_all();
}

void WebhookSender::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    auto delivery = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    // Once, with Odoo's 1 s timeout: a slow or failing receiver loses the notification.
    const auto result =
        http_request("POST", delivery.url, delivery.headers, delivery.body, timeout_);
    delivery.status = result.status;
    delivery.error = result.error;
    delivery.sent_at_ms = now_ms();
    lock.lock();
    log_.push_back(std::move(delivery));
    changed_.notify_all();
  }
}

std::vector<OdooDelivery> WebhookSender::log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

void WebhookSender::clear() {
  std::lock_guard lock(mutex_);
  log_.clear();
}

bool WebhookSender::wait_for(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return log_.size() >= n; });
}

}  // namespace odoo

namespace {

const ModelDef &model_or_throw(const std::string &name) {
  const auto *model = find_model(name);
  if (!model) throw std::invalid_argument("unknown Odoo model " + name);
  return *model;
}

// Runs `fn` turning Odoo's exceptions into std::invalid_argument, as the C++ interface promises.
template <typename Fn>
auto checked(Fn &&fn) {
  try {
    return fn();
  } catch (const Error &error) {
    throw std::invalid_argument(error.name + ": " + error.what());
  }
}

}  // namespace

OdooSandbox::Impl::Impl(OdooOptions o)
    : options(std::move(o)), faults(options.seed), sender(options.webhook_timeout) {
  faults.configure(options.faults);
}

HttpResponse OdooSandbox::Impl::handle(const HttpRequest &request) {
  if (request.path == "/_sandbox/odoo" || request.path.rfind("/_sandbox/odoo/", 0) == 0)
    return admin(request);
  const bool rpc = request.path == "/jsonrpc";
  const bool json2_path = request.path.rfind("/json/2/", 0) == 0;
  {
    std::lock_guard lock(mutex);
    ++stats.requests;
    if (rpc) ++stats.jsonrpc;
    if (json2_path) ++stats.json2;
  }
  if (!rpc && !json2_path)  // (guess) werkzeug's 404 page
    return {404, "text/html; charset=utf-8", {}, "<!doctype html>\n<title>404 Not Found</title>\n"};
  const auto fault = faults.draw();
  if (fault.latency_ms > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(fault.latency_ms));
  HttpResponse response;
  if (fault.drop) {
    std::lock_guard lock(mutex);
    ++stats.dropped;
    response.close_without_response = true;
    return response;
  }
  if (fault.status == 429) {
    std::lock_guard lock(mutex);
    ++stats.injected_429;
    // (guess) a throttling proxy in front of hosted Odoo: werkzeug's page and a Retry-After
    return {429,
            "text/html; charset=utf-8",
            {{"Retry-After", "1"}},
            "<!doctype html>\n<title>429 Too Many Requests</title>\n<h1>Too Many Requests</h1>\n"};
  }
  if (fault.status != 0) {
    std::lock_guard lock(mutex);
    ++stats.injected_5xx;
    // (guess) what the reverse proxy in front of Odoo answers when the workers fail
    return {fault.status,
            "text/html",
            {},
            fault.status == 502 ? "<html><body><h1>502 Bad Gateway</h1></body></html>"
                                : "<html><body><h1>503 Service Unavailable</h1></body></html>"};
  }
  response = rpc ? jsonrpc(request) : json2(request);
  if (fault.malformed && response.status / 100 == 2 && response.body.size() > 1) {
    std::lock_guard lock(mutex);
    ++stats.malformed;
    response.body.resize(response.body.size() / 2);
  }
  return response;
}

OdooSandbox::OdooSandbox(OdooOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->owner = this;
}

OdooSandbox::~OdooSandbox() {
  stop();
}

void OdooSandbox::start() {
  if (impl_->server) return;
  auto server = std::make_unique<LoopbackServer>(
      impl_->options.listen, [impl = impl_.get()](const HttpRequest &r) { return impl->handle(r); },
      impl_->options.handler_threads);
  server->start();
  impl_->server = std::move(server);
}

void OdooSandbox::stop() {
  if (impl_->server) impl_->server->stop();
  impl_->server.reset();
}

uint16_t OdooSandbox::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

std::string OdooSandbox::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port());
}

HttpResponse OdooSandbox::handle(const HttpRequest &request) {
  return impl_->handle(request);
}

void OdooSandbox::add_database(const std::string &db) {
  std::lock_guard lock(impl_->mutex);
  impl_->database(db);
}

std::vector<std::string> OdooSandbox::databases() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> out;
  for (const auto &[name, db] : impl_->databases) out.push_back(name);
  return out;
}

int64_t OdooSandbox::add_user(const std::string &db, const OdooUser &user) {
  std::lock_guard lock(impl_->mutex);
  auto &d = impl_->database(db);
  for (auto &[uid, existing] : d.users)
    if (existing.spec.login == user.login) {
      existing.spec = user;
      return uid;
    }
  const int64_t uid = d.next_uid++;
  d.users[uid] = {uid, user};
  return uid;
}

void OdooSandbox::add_api_key(const std::string &db, const std::string &login,
                              const std::string &key) {
  std::lock_guard lock(impl_->mutex);
  for (auto &[uid, user] : impl_->database(db).users)
    if (user.spec.login == login) {
      user.spec.api_keys.push_back(key);
      return;
    }
  throw std::invalid_argument("no user " + login + " in database " + db);
}

void OdooSandbox::revoke_api_key(const std::string &key) {
  std::lock_guard lock(impl_->mutex);
  for (auto &[name, db] : impl_->databases)
    for (auto &[uid, user] : db.users) std::erase(user.spec.api_keys, key);
}

int64_t OdooSandbox::create(const std::string &db, const std::string &model,
                            const OdooValues &values) {
  return create(db, model, std::vector<OdooValues>{values}).front();
}

std::vector<int64_t> OdooSandbox::create(const std::string &db, const std::string &model,
                                         const std::vector<OdooValues> &values) {
  std::vector<OdooDelivery> webhooks;
  std::vector<int64_t> ids;
  {
    std::lock_guard lock(impl_->mutex);
    const auto &m = model_or_throw(model);
    auto &d = impl_->database(db);
    checked([&] {
      std::vector<OdooValues> rows;
      for (const auto &v : values) rows.push_back(impl_->check_values(d, m, v));
      for (const auto &row : rows) check_required(m, row, true);
      const auto stamp = impl_->stamp_now();
      for (auto &row : rows) {
        ids.push_back(impl_->insert(d, m, std::move(row), stamp));
        impl_->collect_webhooks(d, m, ids.back(), "create", webhooks);
      }
      return 0;
    });
  }
  impl_->sender.send(std::move(webhooks));
  return ids;
}

void OdooSandbox::write(const std::string &db, const std::string &model,
                        const std::vector<int64_t> &ids, const OdooValues &values) {
  std::vector<OdooDelivery> webhooks;
  {
    std::lock_guard lock(impl_->mutex);
    const auto &m = model_or_throw(model);
    auto &d = impl_->database(db);
    checked([&] {
      impl_->require_rows(d, m, ids, 1);
      const auto row = impl_->check_values(d, m, values);
      impl_->update(d, m, ids, row, impl_->stamp_now());
      for (const auto id : ids) impl_->collect_webhooks(d, m, id, "write", webhooks);
      return 0;
    });
  }
  impl_->sender.send(std::move(webhooks));
}

void OdooSandbox::unlink(const std::string &db, const std::string &model,
                         const std::vector<int64_t> &ids) {
  std::vector<OdooDelivery> webhooks;
  {
    std::lock_guard lock(impl_->mutex);
    const auto &m = model_or_throw(model);
    auto &d = impl_->database(db);
    checked([&] {
      impl_->require_rows(d, m, ids, 1);
      for (const auto id : ids) impl_->collect_webhooks(d, m, id, "unlink", webhooks);
      impl_->remove(d, m, ids);
      return 0;
    });
  }
  impl_->sender.send(std::move(webhooks));
}

std::vector<int64_t> OdooSandbox::seed(const std::string &db, const std::string &model,
                                       const std::vector<OdooValues> &values) {
  std::lock_guard lock(impl_->mutex);
  const auto &m = model_or_throw(model);
  auto &d = impl_->database(db);
  return checked([&] {
    std::vector<OdooValues> rows;
    for (const auto &v : values) rows.push_back(impl_->check_values(d, m, v));
    for (const auto &row : rows) check_required(m, row, true);
    const auto stamp = impl_->stamp_now();
    std::vector<int64_t> ids;
    for (auto &row : rows) ids.push_back(impl_->insert(d, m, std::move(row), stamp));
    return ids;
  });
}

std::vector<int64_t> OdooSandbox::seed_partners(const std::string &db, size_t n) {
  std::lock_guard lock(impl_->mutex);
  auto &d = impl_->database(db);
  const auto &m = *find_model("res.partner");
  const auto stamp = impl_->stamp_now();
  std::vector<int64_t> ids;
  int64_t company = 0;
  for (size_t i = 1; i <= n; ++i) {
    const auto n_text = std::to_string(i);
    OdooValues v;
    if (i % 5 == 1) {
      v = {{"name", "Company " + n_text},
           {"is_company", true},
           {"email", "info@company" + n_text + ".example.com"},
           {"city", std::string("Brussels")}};
    } else {
      v = {{"name", "Contact " + n_text},
           {"email", "contact" + n_text + "@example.com"},
           {"phone", "+32 2 555 " + n_text}};
      if (company) v["parent_id"] = company;
    }
    ids.push_back(impl_->insert(d, m, std::move(v), stamp));
    if (i % 5 == 1) company = ids.back();
  }
  return ids;
}

std::vector<int64_t> OdooSandbox::seed_leads(const std::string &db, size_t n) {
  std::lock_guard lock(impl_->mutex);
  auto &d = impl_->database(db);
  const auto &m = *find_model("crm.lead");
  const auto stamp = impl_->stamp_now();
  std::vector<int64_t> stages;
  for (const auto &[id, row] : d.tables["crm.stage"].rows) stages.push_back(id);
  std::vector<int64_t> ids;
  for (size_t i = 1; i <= n; ++i) {
    OdooValues v = {{"name", "Lead " + std::to_string(i)},
                    {"type", std::string(i % 2 ? "lead" : "opportunity")},
                    {"expected_revenue", static_cast<double>(1000 * i)},
                    {"email_from", "lead" + std::to_string(i) + "@example.com"}};
    if (!stages.empty()) v["stage_id"] = stages[i % stages.size()];
    ids.push_back(impl_->insert(d, m, std::move(v), stamp));
  }
  return ids;
}

std::optional<OdooRecord> OdooSandbox::record(const std::string &db, const std::string &model,
                                              int64_t id) const {
  std::lock_guard lock(impl_->mutex);
  model_or_throw(model);
  const auto d = impl_->databases.find(db);
  if (d == impl_->databases.end()) return std::nullopt;
  const auto &rows = d->second.tables.at(model).rows;
  const auto row = rows.find(id);
  if (row == rows.end()) return std::nullopt;
  return OdooRecord{id, row->second};
}

std::vector<OdooRecord> OdooSandbox::records(const std::string &db, const std::string &model,
                                             bool include_archived) const {
  std::lock_guard lock(impl_->mutex);
  model_or_throw(model);
  std::vector<OdooRecord> out;
  const auto d = impl_->databases.find(db);
  if (d == impl_->databases.end()) return out;
  for (const auto &[id, row] : d->second.tables.at(model).rows) {
    const auto active = row.find("active");
    if (!include_archived && active != row.end() && !truthy(active->second)) continue;
    out.push_back({id, row});
  }
  return out;
}

size_t OdooSandbox::count(const std::string &db, const std::string &model) const {
  return records(db, model).size();
}

void OdooSandbox::set_clock_offset(std::chrono::seconds offset) {
  std::lock_guard lock(impl_->mutex);
  impl_->clock_offset_s = offset.count();
}

void OdooSandbox::freeze_clock(const std::string &utc) {
  std::lock_guard lock(impl_->mutex);
  if (utc.empty()) {
    impl_->frozen_s.reset();
    return;
  }
  const auto seconds = parse_odoo_datetime(utc);
  if (!seconds) throw std::invalid_argument("not a \"YYYY-MM-DD HH:MM:SS\" time: " + utc);
  impl_->frozen_s = *seconds;
}

std::string OdooSandbox::now() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stamp_now();
}

void OdooSandbox::set_faults(const FaultConfig &faults) {
  impl_->faults.configure(faults);
}

void OdooSandbox::set_fault_seed(uint64_t seed) {
  impl_->faults.reseed(seed);
}

FaultConfig OdooSandbox::faults() const {
  return impl_->faults.config();
}

OdooStats OdooSandbox::stats() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->stats;
}

int64_t OdooSandbox::add_webhook(const OdooWebhookRule &rule) {
  model_or_throw(rule.model);
  if (rule.url.rfind("http://", 0) != 0)
    throw std::invalid_argument("webhook URLs must be http://, not " + rule.url);
  std::lock_guard lock(impl_->mutex);
  auto copy = rule;
  copy.id = impl_->next_rule++;
  impl_->rules.push_back(copy);
  return copy.id;
}

bool OdooSandbox::remove_webhook(int64_t rule_id) {
  std::lock_guard lock(impl_->mutex);
  return std::erase_if(impl_->rules, [&](const auto &r) { return r.id == rule_id; }) > 0;
}

void OdooSandbox::clear_webhooks() {
  std::lock_guard lock(impl_->mutex);
  impl_->rules.clear();
}

std::vector<OdooWebhookRule> OdooSandbox::webhooks() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->rules;
}

std::vector<OdooDelivery> OdooSandbox::deliveries() const {
  return impl_->sender.log();
}

void OdooSandbox::clear_deliveries() {
  impl_->sender.clear();
}

bool OdooSandbox::wait_for_deliveries(size_t n, std::chrono::milliseconds timeout) const {
  return impl_->sender.wait_for(n, timeout);
}

OdooTransaction::OdooTransaction(OdooSandbox::Impl *impl, int64_t id, std::string stamp)
    : impl_(impl), id_(id), stamp_(std::move(stamp)) {}

OdooTransaction::OdooTransaction(OdooTransaction &&other) noexcept
    : impl_(std::exchange(other.impl_, nullptr)), id_(other.id_), stamp_(std::move(other.stamp_)) {}

OdooTransaction &OdooTransaction::operator=(OdooTransaction &&other) noexcept {
  if (this != &other) {
    rollback();
    impl_ = std::exchange(other.impl_, nullptr);
    id_ = other.id_;
    stamp_ = std::move(other.stamp_);
  }
  return *this;
}

OdooTransaction::~OdooTransaction() {
  rollback();
}

namespace {

Transaction &open_transaction(OdooSandbox::Impl &impl, int64_t id) {
  const auto it = impl.transactions.find(id);
  if (it == impl.transactions.end())
    throw std::invalid_argument("transaction " + std::to_string(id) + " is not open");
  return it->second;
}

std::set<std::pair<std::string, int64_t>> reserved_ids(const Transaction &tx) {
  std::set<std::pair<std::string, int64_t>> out;
  for (const auto &op : tx.ops)
    if (op.kind == PendingOp::Create) out.insert({op.model, op.ids.front()});
  return out;
}

}  // namespace

int64_t OdooSandbox::Impl::begin(const std::string &db, int64_t backdate_seconds,
                                 std::string &stamp) {
  std::lock_guard lock(mutex);
  database(db);
  const auto now = parse_odoo_datetime(stamp_now()).value_or(0);
  const int64_t id = next_transaction++;
  auto &tx = transactions[id];
  tx.db = db;
  tx.stamp = odoo_datetime(now - backdate_seconds);
  stamp = tx.stamp;
  return id;
}

int64_t OdooSandbox::Impl::tx_create(int64_t tx_id, const std::string &model,
                                     const OdooValues &values) {
  std::lock_guard lock(mutex);
  auto &tx = open_transaction(*this, tx_id);
  const auto &m = model_or_throw(model);
  auto &d = database(tx.db);
  auto row = checked([&] {
    auto checked_row = check_values(d, m, values, reserved_ids(tx));
    check_required(m, checked_row, true);
    return checked_row;
  });
  const int64_t id = d.tables[model].next_id++;
  tx.ops.push_back({PendingOp::Create, model, {id}, std::move(row)});
  return id;
}

void OdooSandbox::Impl::tx_write(int64_t tx_id, const std::string &model,
                                 const std::vector<int64_t> &ids, const OdooValues &values) {
  std::lock_guard lock(mutex);
  auto &tx = open_transaction(*this, tx_id);
  const auto &m = model_or_throw(model);
  auto &d = database(tx.db);
  auto row = checked([&] { return check_values(d, m, values, reserved_ids(tx)); });
  tx.ops.push_back({PendingOp::Write, model, ids, std::move(row)});
}

void OdooSandbox::Impl::tx_unlink(int64_t tx_id, const std::string &model,
                                  const std::vector<int64_t> &ids) {
  std::lock_guard lock(mutex);
  auto &tx = open_transaction(*this, tx_id);
  model_or_throw(model);
  tx.ops.push_back({PendingOp::Unlink, model, ids, {}});
}

void OdooSandbox::Impl::tx_commit(int64_t tx_id) {
  std::vector<OdooDelivery> webhooks;
  {
    std::lock_guard lock(mutex);
    commit(tx_id, webhooks);
  }
  sender.send(std::move(webhooks));
}

bool OdooSandbox::Impl::tx_rollback(int64_t tx_id) {
  std::lock_guard lock(mutex);
  return transactions.erase(tx_id) > 0;
}

OdooTransaction OdooSandbox::begin_transaction(const std::string &db,
                                               std::chrono::seconds backdate) {
  std::string stamp;
  const auto id = impl_->begin(db, backdate.count(), stamp);
  return OdooTransaction(impl_.get(), id, stamp);
}

int64_t OdooTransaction::create(const std::string &model, const OdooValues &values) {
  if (!impl_) throw std::invalid_argument("transaction is closed");
  return impl_->tx_create(id_, model, values);
}

void OdooTransaction::write(const std::string &model, const std::vector<int64_t> &ids,
                            const OdooValues &values) {
  if (!impl_) throw std::invalid_argument("transaction is closed");
  impl_->tx_write(id_, model, ids, values);
}

void OdooTransaction::unlink(const std::string &model, const std::vector<int64_t> &ids) {
  if (!impl_) throw std::invalid_argument("transaction is closed");
  impl_->tx_unlink(id_, model, ids);
}

void OdooTransaction::commit() {
  if (!impl_) throw std::invalid_argument("transaction is closed");
  impl_->tx_commit(id_);
  impl_ = nullptr;
}

void OdooTransaction::rollback() {
  if (!impl_) return;
  impl_->tx_rollback(id_);
  impl_ = nullptr;
}

}  // namespace crmsandbox
