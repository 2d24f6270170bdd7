// crm-sandbox: local, stateful emulators of the CRM providers' APIs for tests, demos and
// benchmarks. Each provider listens on its own address: HubSpot, Odoo, Zoho, or any together.
#include <pthread.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/hubspot.hpp"
#include "sandbox/odoo.hpp"
#include "sandbox/zoho.hpp"
#include "util/logging.hpp"

namespace {

constexpr const char *kUsage =
    R"(usage: crm-sandbox [--hubspot HOST:PORT] [--odoo HOST:PORT] [--zoho HOST:PORT] [options]

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

Zoho CRM (API at /crm/v8/ and /crm/v2/, the accounts server's /oauth/v2/token on its own
port, controls under /_sandbox/zoho/ on either, see zoho_admin.cpp). Prints "zoho HOST:PORT"
(the API) and "zoho accounts HOST:PORT"; each further data centre "zoho dc LABEL api HOST:PORT
accounts HOST:PORT":
  --zoho HOST:PORT                      the first data centre's API listen address
  --zoho-accounts HOST:PORT             its accounts server (default HOST:0)
  --zoho-dc LABEL                       data centres (repeatable; default com); the first one
                                        listens on --zoho, the others on free ports
  --zoho-org ID[:DC[:UTC_OFFSET]]       an org (repeatable; default 60000001 in the first data
                                        centre); UTC_OFFSET in minutes or +HH:MM
  --zoho-client ID:SECRET:REFRESH[:ORG] an OAuth client and its refresh token (repeatable).
                                        Without one, sandbox-client:sandbox-secret:
                                        sandbox-refresh for the first org, printed on stdout.
  --zoho-token-ttl SECONDS              expires_in of access tokens (default 3600)
  --zoho-page-token-ttl-ms MS           page_token lifetime (default 86400000, 24 h)
  --zoho-credits N                      API credits per rolling 24 h and org (default 50000)
  --zoho-concurrency N                  requests in flight per org (default 10)
  --zoho-utc-offset OFFSET              the orgs' offset unless --zoho-org gives one
  --zoho-seed-leads N  --zoho-seed-contacts N  --zoho-seed-accounts N  --zoho-seed-deals N
                                        generated records in the first org
  --zoho-data-seed N                    their values' seed (default 0)
  --zoho-seed-multi-select              every third generated record has a multi-select array
  --zoho-search-delay-ms MS             records reach search MS after a write (default 0)
  --zoho-webhook-url URL                http:// target of a workflow rule on every module of the
                                        first org (create, edit, delete)
  --zoho-webhook-header NAME:VALUE      the custom header those POSTs carry
  --zoho-webhook-template TEXT          their body (${id}, ${module}, ${operation}, ${Field});
                                        default {"operation":..,"module":..,"data":[record]}

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

// Minutes east of UTC: "330", "-300" or "+05:30".
int utc_offset(const std::string &flag, const std::string &value) {
  try {
    if (value.size() == 6 && (value[0] == '+' || value[0] == '-') && value[3] == ':') {
      const int minutes = std::stoi(value.substr(1, 2)) * 60 + std::stoi(value.substr(4, 2));
      return value[0] == '-' ? -minutes : minutes;
    }
    size_t used = 0;
    const int minutes = std::stoi(value, &used);
    if (used == value.size() && minutes > -15 * 60 && minutes < 15 * 60) return minutes;
  } catch (const std::exception &) {
  }
  usage_error(flag + " needs minutes east of UTC or +HH:MM, not \"" + value + "\"");
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
  std::optional<std::string> zoho_listen, zoho_accounts_listen;
  crmsandbox::ZohoOptions zoho_options;
  std::vector<std::string> zoho_dcs;
  std::vector<crmsandbox::ZohoOrg> zoho_orgs;
  std::vector<bool> zoho_org_offset_given;
  std::vector<std::vector<std::string>> zoho_clients;
  std::map<std::string, size_t> zoho_seeds;
  crmsandbox::ZohoSeedOptions zoho_seed_options;
  std::optional<int64_t> zoho_credits, zoho_concurrency;
  std::optional<int> zoho_offset;
  std::string zoho_webhook_url, zoho_header_name, zoho_header_value, zoho_template;

  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (flag == "--zoho-seed-multi-select") {  // the one flag without a value
      zoho_seed_options.multi_select = true;
      continue;
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
    } else if (flag == "--zoho") {
      zoho_listen = value;
    } else if (flag == "--zoho-accounts") {
      zoho_accounts_listen = value;
    } else if (flag == "--zoho-dc") {
      if (value.empty()) usage_error("--zoho-dc LABEL");
      zoho_dcs.push_back(value);
    } else if (flag == "--zoho-org") {
      const auto parts = split(value, ':');
      if (parts.size() > 4 || parts[0].empty()) usage_error("--zoho-org ID[:DC[:UTC_OFFSET]]");
      crmsandbox::ZohoOrg org;
      org.id = integer(flag, parts[0]);
      org.data_centre = parts.size() > 1 && !parts[1].empty() ? parts[1] : "";
      // "+05:30" holds a colon of its own
      const auto offset = parts.size() == 4   ? parts[2] + ":" + parts[3]
                          : parts.size() == 3 ? parts[2]
                                              : std::string();
      if (!offset.empty()) org.utc_offset_minutes = utc_offset(flag, offset);
      zoho_orgs.push_back(org);
      zoho_org_offset_given.push_back(!offset.empty());
    } else if (flag == "--zoho-client") {
      auto parts = split(value, ':');
      if (parts.size() < 3 || parts.size() > 4)
        usage_error("--zoho-client CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN[:ORG]");
      if (parts.size() == 4) integer(flag, parts[3]);
      zoho_clients.push_back(parts);
    } else if (flag == "--zoho-token-ttl") {
      zoho_options.token_ttl_seconds = integer(flag, value);
    } else if (flag == "--zoho-page-token-ttl-ms") {
      zoho_options.page_token_ttl = std::chrono::milliseconds(integer(flag, value));
    } else if (flag == "--zoho-credits") {
      zoho_credits = integer(flag, value);
    } else if (flag == "--zoho-concurrency") {
      zoho_concurrency = integer(flag, value);
    } else if (flag == "--zoho-utc-offset") {
      zoho_offset = utc_offset(flag, value);
    } else if (flag == "--zoho-seed-leads" || flag == "--zoho-seed-contacts" ||
               flag == "--zoho-seed-accounts" || flag == "--zoho-seed-deals") {
      auto module = flag.substr(std::string("--zoho-seed-").size());
      module[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(module[0])));
      zoho_seeds[module] = static_cast<size_t>(integer(flag, value));
    } else if (flag == "--zoho-data-seed") {
      zoho_seed_options.seed = static_cast<uint64_t>(integer(flag, value));
    } else if (flag == "--zoho-search-delay-ms") {
      zoho_options.search_index_delay = std::chrono::milliseconds(integer(flag, value));
    } else if (flag == "--zoho-webhook-url") {
      zoho_webhook_url = value;
    } else if (flag == "--zoho-webhook-header") {
      const auto colon = value.find(':');
      if (colon == std::string::npos || colon == 0) usage_error("--zoho-webhook-header NAME:VALUE");
      zoho_header_name = value.substr(0, colon);
      zoho_header_value = value.substr(colon + 1);
    } else if (flag == "--zoho-webhook-template") {
      zoho_template = value;
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
  if (!hubspot_listen && !odoo_listen && !zoho_listen)
    usage_error(
        "name at least one emulator, e.g. --hubspot 127.0.0.1:0, --odoo 127.0.0.1:0 or "
        "--zoho 127.0.0.1:0");
  odoo_options.faults = options.faults;  // the fault flags apply to every emulator
  odoo_options.seed = options.seed;
  zoho_options.faults = options.faults;
  zoho_options.seed = options.seed;

  // Signals are taken by sigwait below: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::optional<crmsandbox::HubSpotSandbox> hubspot;
  std::optional<crmsandbox::OdooSandbox> odoo;
  std::optional<crmsandbox::ZohoSandbox> zoho;
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
  if (zoho_listen) {
    const auto colon = zoho_listen->rfind(':');
    const auto host = zoho_listen->substr(0, colon);
    zoho_options.api_listen = *zoho_listen;
    zoho_options.accounts_listen = zoho_accounts_listen.value_or(host + ":0");
    if (!zoho_dcs.empty()) zoho_options.data_centres = zoho_dcs;
    zoho.emplace(zoho_options);
    if (zoho_orgs.empty()) {
      zoho_orgs.push_back({.id = 60000001, .data_centre = ""});
      zoho_org_offset_given.push_back(false);
    }
    const bool default_client = zoho_clients.empty();
    if (default_client)
      zoho_clients.push_back({"sandbox-client", "sandbox-secret", "sandbox-refresh"});
    const auto first_org = zoho_orgs.front().id;
    try {
      for (size_t i = 0; i < zoho_orgs.size(); ++i) {
        auto org = zoho_orgs[i];
        if (org.data_centre.empty()) org.data_centre = zoho_options.data_centres.front();
        if (!zoho_org_offset_given[i] && zoho_offset) org.utc_offset_minutes = *zoho_offset;
        if (zoho_credits) org.credits_per_day = *zoho_credits;
        if (zoho_concurrency) org.concurrency = *zoho_concurrency;
        zoho->add_org(org);
      }
      for (const auto &c : zoho_clients)
        zoho->add_client(c[0], c[1], c[2], c.size() == 4 ? std::stoll(c[3]) : first_org);
      for (const auto &[module, n] : zoho_seeds)
        zoho->seed_generated(first_org, module, n, zoho_seed_options);
      if (!zoho_webhook_url.empty())
        for (const auto *module : {"Leads", "Contacts", "Accounts", "Deals"})
          zoho->add_workflow_rule({.org_id = first_org,
                                   .module = module,
                                   .url = zoho_webhook_url,
                                   .header_name = zoho_header_name,
                                   .header_value = zoho_header_value,
                                   .payload_template = zoho_template});
      zoho->start();
    } catch (const std::exception &e) {
      std::cerr << "crm-sandbox: " << e.what() << "\n";
      return 1;
    }
    const auto dcs = zoho->data_centres();
    std::cout << "zoho " << host << ":" << zoho->api_port() << "\n";
    std::cout << "zoho accounts " << host << ":" << zoho->accounts_port() << "\n";
    for (size_t i = 1; i < dcs.size(); ++i)
      std::cout << "zoho dc " << dcs[i] << " api " << host << ":" << zoho->api_port(dcs[i])
                << " accounts " << host << ":" << zoho->accounts_port(dcs[i]) << "\n";
    if (default_client)
      std::cout << "zoho client sandbox-client secret sandbox-secret refresh-token "
                   "sandbox-refresh org "
                << first_org << "\n";
  }
  std::cout << std::flush;

  int received = 0;
  sigwait(&signals, &received);
  if (hubspot) hubspot->stop();
  if (odoo) odoo->stop();
  if (zoho) zoho->stop();
  return 0;
}
