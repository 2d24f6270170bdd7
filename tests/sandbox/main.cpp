// crm-sandbox: local, stateful emulators of the CRM providers' APIs for tests, demos and
// benchmarks. Each provider listens on its own address: HubSpot, Odoo, or both in one process.
#include <pthread.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/hubspot.hpp"
#include "sandbox/odoo.hpp"
#include "util/logging.hpp"

namespace {

constexpr const char *kUsage =
    R"(usage: crm-sandbox [--hubspot HOST:PORT] [--odoo HOST:PORT] [options]

Serves until SIGINT or SIGTERM, then exits 0. Port 0 picks a free port; each emulator prints
its bound address on stdout as one line, e.g. "hubspot 127.0.0.1:41234".

HubSpot (API at http://HOST:PORT, sandbox controls under /_sandbox/, see hubspot_admin.cpp):
  --hubspot HOST:PORT                   listen address
  --hubspot-token TOKEN[:PORTAL]        a private-app token for a portal (repeatable; default
                                        portal 62515). Without tokens or OAuth clients, the token
                                        "sandbox-token" for portal 62515 is created and printed.
  --hubspot-oauth ID:SECRET:REFRESH[:PORTAL]
                                        an OAuth client and its refresh token (repeatable)
  --hubspot-token-ttl SECONDS           lifetime of issued access tokens (default 1800)
  --hubspot-rate-limit N                requests per rolling window and token (default 100; 190
                                        for Professional/Enterprise)
  --hubspot-rate-window-ms MS           the rolling window (default 10000)
  --hubspot-search-limit N              search requests per second and token (default 5)
  --hubspot-daily-limit N               requests per portal and UTC day (default 250000)
  --hubspot-indexing-delay-ms MS        written records reach search after MS (default 0; the
                                        real HubSpot takes a few seconds)
  --hubspot-seed-contacts N             generated records in the first token's portal
  --hubspot-seed-companies N
  --hubspot-seed-deals N
  --hubspot-webhook-url URL             http:// target for webhook deliveries
  --hubspot-webhook-secret SECRET       the app's client secret, signs deliveries
  --hubspot-webhook-signature v1|v2|v3  (default v1, as HubSpot signs CRM subscriptions)
  --hubspot-subscribe TYPE[:PROPERTY]   e.g. contact.creation, contact.propertyChange:email
                                        (repeatable)
  --hubspot-webhook-batch-ms MS         events gathered per delivery (default 100)
  --hubspot-webhook-retry-ms MS         retry n waits n x MS (default 200)
  --hubspot-webhook-max-attempts N      (default 10)

Odoo (JSON-RPC at /jsonrpc, JSON-2 at /json/2/, controls under /_sandbox/odoo/, see
odoo_admin.cpp):
  --odoo HOST:PORT                      listen address
  --odoo-db NAME                        a database (repeatable; default "crm"); users and seeds
                                        go to the first one
  --odoo-user LOGIN:PASSWORD[:APIKEY]   a user of the first database (repeatable). Without one,
                                        admin:admin with a random API key, printed on stdout.
  --odoo-seed-partners N                generated companies and contacts (one transaction)
  --odoo-seed-leads N                   generated crm.lead rows
  --odoo-webhook-url URL                http:// target of an automation rule on res.partner and
                                        crm.lead (create, write, unlink)
  --odoo-webhook-secret-header NAME:VALUE
                                        the shared secret header those POSTs carry
  --odoo-webhook-fields F1,F2           fields added to the payload (default name,email)
  --odoo-version V                      version()'s server_version (default 19.0)

Fault injection (every emulator; shares are 0..1):
  --fault-429 P  --fault-5xx P  --fault-latency-ms MS  --fault-drop P  --fault-malformed P
  --seed N                              the faults' random seed (default 0)
  --help
)";

struct Args {
  std::vector<std::string> items;
  size_t at = 0;
};

[[noreturn]] void usage_error(const std::string &message) {
  std::cerr << "crm-sandbox: " << message << "\n(crm-sandbox --help lists the options)\n";
  std::exit(2);
}

std::vector<std::string> split(const std::string &text, char separator) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || text[i] == separator) {
      out.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

int64_t integer(const std::string &flag, const std::string &value) {
  try {
    size_t used = 0;
    const auto n = std::stoll(value, &used);
    if (used == value.size() && n >= 0) return n;
  } catch (const std::exception &) {
  }
  usage_error(flag + " needs a non-negative integer, not \"" + value + "\"");
}

double share(const std::string &flag, const std::string &value) {
  try {
    size_t used = 0;
    const auto p = std::stod(value, &used);
    if (used == value.size() && p >= 0 && p <= 1) return p;
  } catch (const std::exception &) {
  }
  usage_error(flag + " needs a share from 0 to 1, not \"" + value + "\"");
}

}  // namespace

int main(int argc, char **argv) {
  crmhost::logging::setup("warn");
  std::optional<std::string> hubspot_listen;
  crmsandbox::HubSpotOptions options;
  std::vector<std::pair<std::string, int64_t>> tokens;
  std::vector<std::vector<std::string>> oauth_clients;
  std::vector<std::pair<std::string, std::string>> subscriptions;
  std::map<std::string, size_t> seeds;
  crmsandbox::HubSpotWebhookSettings webhooks;
  std::optional<std::string> odoo_listen;
  crmsandbox::OdooOptions odoo_options;
  std::vector<std::string> odoo_dbs;
  std::vector<crmsandbox::OdooUser> odoo_users;
  size_t odoo_partners = 0, odoo_leads = 0;
  std::string odoo_webhook_url, odoo_secret_name, odoo_secret_value;
  std::vector<std::string> odoo_webhook_fields = {"name", "email"};

  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (const auto eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else {
      if (i + 1 >= args.size()) usage_error(flag + " needs a value");
      value = args[++i];
    }
    if (flag == "--hubspot") {
      hubspot_listen = value;
    } else if (flag == "--hubspot-token") {
      const auto parts = split(value, ':');
      if (parts.size() > 2 || parts[0].empty()) usage_error("--hubspot-token TOKEN[:PORTAL]");
      tokens.emplace_back(parts[0], parts.size() == 2 ? integer(flag, parts[1]) : 62515);
    } else if (flag == "--hubspot-oauth") {
      auto parts = split(value, ':');
      if (parts.size() < 3 || parts.size() > 4)
        usage_error("--hubspot-oauth CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN[:PORTAL]");
      if (parts.size() == 3) parts.push_back("62515");
      integer(flag, parts[3]);
      oauth_clients.push_back(parts);
    } else if (flag == "--hubspot-token-ttl") {
      options.token_ttl_seconds = integer(flag, value);
    } else if (flag == "--hubspot-rate-limit") {
      options.rate_limits.per_window = integer(flag, value);
    } else if (flag == "--hubspot-rate-window-ms") {
      options.rate_limits.window_ms = std::max<int64_t>(1, integer(flag, value));
    } else if (flag == "--hubspot-search-limit") {
      options.rate_limits.search_per_second = integer(flag, value);
    } else if (flag == "--hubspot-daily-limit") {
      options.rate_limits.daily = integer(flag, value);
    } else if (flag == "--hubspot-indexing-delay-ms") {
      options.indexing_delay = std::chrono::milliseconds(integer(flag, value));
    } else if (flag == "--hubspot-seed-contacts") {
      seeds["contacts"] = static_cast<size_t>(integer(flag, value));
    } else if (flag == "--hubspot-seed-companies") {
      seeds["companies"] = static_cast<size_t>(integer(flag, value));
    } else if (flag == "--hubspot-seed-deals") {
      seeds["deals"] = static_cast<size_t>(integer(flag, value));
    } else if (flag == "--hubspot-webhook-url") {
      webhooks.target_url = value;
    } else if (flag == "--hubspot-webhook-secret") {
      webhooks.app_secret = value;
    } else if (flag == "--hubspot-webhook-signature") {
      webhooks.signature_version = value;
    } else if (flag == "--hubspot-subscribe") {
      const auto colon = value.find(':');
      subscriptions.emplace_back(value.substr(0, colon),
                                 colon == std::string::npos ? "" : value.substr(colon + 1));
    } else if (flag == "--hubspot-webhook-batch-ms") {
      webhooks.batch_window = std::chrono::milliseconds(integer(flag, value));
    } else if (flag == "--hubspot-webhook-retry-ms") {
      webhooks.retry_backoff = std::chrono::milliseconds(integer(flag, value));
    } else if (flag == "--hubspot-webhook-max-attempts") {
      webhooks.max_attempts = static_cast<int>(std::max<int64_t>(1, integer(flag, value)));
    } else if (flag == "--odoo") {
      odoo_listen = value;
    } else if (flag == "--odoo-db") {
      if (value.empty()) usage_error("--odoo-db NAME");
      odoo_dbs.push_back(value);
    } else if (flag == "--odoo-user") {
      const auto parts = split(value, ':');
      if (parts.size() < 2 || parts.size() > 3 || parts[0].empty())
        usage_error("--odoo-user LOGIN:PASSWORD[:APIKEY]");
      crmsandbox::OdooUser user{parts[0], parts[1], {}, false};
      if (parts.size() == 3 && !parts[2].empty()) user.api_keys.push_back(parts[2]);
      odoo_users.push_back(user);
    } else if (flag == "--odoo-seed-partners") {
      odoo_partners = static_cast<size_t>(integer(flag, value));
    } else if (flag == "--odoo-seed-leads") {
      odoo_leads = static_cast<size_t>(integer(flag, value));
    } else if (flag == "--odoo-webhook-url") {
      odoo_webhook_url = value;
    } else if (flag == "--odoo-webhook-secret-header") {
      const auto colon = value.find(':');
      if (colon == std::string::npos || colon == 0)
        usage_error("--odoo-webhook-secret-header NAME:VALUE");
      odoo_secret_name = value.substr(0, colon);
      odoo_secret_value = value.substr(colon + 1);
    } else if (flag == "--odoo-webhook-fields") {
      odoo_webhook_fields = split(value, ',');
    } else if (flag == "--odoo-version") {
      odoo_options.server_version = value;
    } else if (flag == "--fault-429") {
      options.faults.p429 = share(flag, value);
    } else if (flag == "--fault-5xx") {
      options.faults.p5xx = share(flag, value);
    } else if (flag == "--fault-latency-ms") {
      options.faults.latency_ms = static_cast<int>(integer(flag, value));
    } else if (flag == "--fault-drop") {
      options.faults.drop = share(flag, value);
    } else if (flag == "--fault-malformed") {
      options.faults.malformed = share(flag, value);
    } else if (flag == "--seed") {
      options.seed = static_cast<uint64_t>(integer(flag, value));
    } else {
      usage_error("unknown option " + flag);
    }
  }
  if (!hubspot_listen && !odoo_listen)
    usage_error("name at least one emulator, e.g. --hubspot 127.0.0.1:0 or --odoo 127.0.0.1:0");
  odoo_options.faults = options.faults;  // the fault flags apply to every emulator
  odoo_options.seed = options.seed;

  // Signals are taken by sigwait below: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::optional<crmsandbox::HubSpotSandbox> hubspot;
  std::optional<crmsandbox::OdooSandbox> odoo;
  if (hubspot_listen) {
    options.listen = *hubspot_listen;
    hubspot.emplace(options);
    const bool default_token = tokens.empty() && oauth_clients.empty();
    if (default_token) tokens.emplace_back("sandbox-token", 62515);
    for (const auto &[token, portal] : tokens) hubspot->add_token(token, portal);
    for (const auto &c : oauth_clients)
      hubspot->add_oauth_client(c[0], c[1], c[2], std::stoll(c[3]));
    const int64_t seed_portal =
        !tokens.empty() ? tokens.front().second : std::stoll(oauth_clients.front()[3]);
    try {
      for (const auto &[object, n] : seeds) hubspot->seed_generated(seed_portal, object, n);
      hubspot->set_webhook_settings(webhooks);
      for (const auto &[type, property] : subscriptions) hubspot->subscribe(type, property);
      hubspot->start();
    } catch (const std::exception &e) {
      std::cerr << "crm-sandbox: " << e.what() << "\n";
      return 1;
    }
    const auto colon = hubspot_listen->rfind(':');
    std::cout << "hubspot " << hubspot_listen->substr(0, colon) << ":" << hubspot->port() << "\n";
    if (default_token) std::cout << "hubspot token sandbox-token portal 62515\n";
  }
  if (odoo_listen) {
    odoo_options.listen = *odoo_listen;
    odoo.emplace(odoo_options);
    if (odoo_dbs.empty()) odoo_dbs.push_back("crm");
    const bool default_user = odoo_users.empty();
    if (default_user) odoo_users.push_back({"admin", "admin", {crmsandbox::random_hex(20)}, false});
    try {
      for (const auto &db : odoo_dbs) odoo->add_database(db);
      for (const auto &user : odoo_users) odoo->add_user(odoo_dbs.front(), user);
      odoo->seed_partners(odoo_dbs.front(), odoo_partners);
      odoo->seed_leads(odoo_dbs.front(), odoo_leads);
      if (!odoo_webhook_url.empty())
        for (const auto *model : {"res.partner", "crm.lead"})
          odoo->add_webhook({.model = model,
                             .url = odoo_webhook_url,
                             .header_name = odoo_secret_name,
                             .header_value = odoo_secret_value,
                             .fields = odoo_webhook_fields});
      odoo->start();
    } catch (const std::exception &e) {
      std::cerr << "crm-sandbox: " << e.what() << "\n";
      return 1;
    }
    const auto colon = odoo_listen->rfind(':');
    std::cout << "odoo " << odoo_listen->substr(0, colon) << ":" << odoo->port() << "\n";
    if (default_user)
      std::cout << "odoo db " << odoo_dbs.front() << " login admin password admin api-key "
                << odoo_users.front().api_keys.front() << "\n";
  }
  std::cout << std::flush;

  int received = 0;
  sigwait(&signals, &received);
  if (hubspot) hubspot->stop();
  if (odoo) odoo->stop();
  return 0;
}
