// The hostile-input suite: ONE real `crmhost run` process (webhook pipelines on the memory,
// hubspot, odoo and garbage plugins, and the admin API) fed bad input of each kind over raw
// sockets. Every case asserts the answer's status; after each one the host must still answer
// GET /healthz 200 and take a good signed memory webhook (200). The process is shared by every
// section of the one test case below (Catch2 runs a test case once per leaf section), so ctest
// starts it once.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/spawn.hpp"
#include "signature.hpp"

using namespace std::chrono_literals;

namespace {

const std::string kMemorySecret = "s3cret-s3cret";
const std::string kAdminToken = "hostile-admin-token-0123456789";
const std::string kHubSpotSecret = "hubspot-app-secret-0123456789";
const std::string kHubSpotBase = "https://hooks.example.test";
const std::string kOdooSecret = "odoo-hook-secret-0123456789";
constexpr size_t kMaxBody = 1 << 20;

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Reply {
  int status = 0;  // 0: no answer (connection refused, closed or timed out)
  std::string head, body;
  double seconds = 0;
};

// Writes `bytes` to a fresh loopback connection and reads one answer (framed by its
// Content-Length, or the close). A write the server cuts short is not an error: the answer
// it sent first is still read.
Reply exchange(uint16_t port, std::string_view bytes, std::chrono::milliseconds timeout = 15s) {
  Reply reply;
  const auto start = std::chrono::steady_clock::now();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return reply;
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return reply;
  }
  for (size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string in;
  char buffer[65536];
  for (;;) {
    if (const auto end = in.find("\r\n\r\n"); end != std::string::npos) {
      size_t length = 0;
      std::string lower = in.substr(0, end);
      for (auto &c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (const auto at = lower.find("\r\ncontent-length:"); at != std::string::npos)
        length = std::stoul(lower.substr(at + 17));
      if (in.size() >= end + 4 + length) {
        reply.head = in.substr(0, end);
        reply.body = in.substr(end + 4, length);
        if (in.compare(0, 5, "HTTP/") == 0 && in.size() > 12)
          reply.status = std::stoi(in.substr(9, 3));
        break;
      }
    }
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    in.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  reply.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return reply;
}

// An HTTP/1.1 request as bytes: Host, Connection: close, the headers, Content-Length (unless
// `length` is false) and the body.
std::string request(const std::string &method, const std::string &target,
                    const Headers &headers = {}, const std::string &body = "", bool length = true) {
  std::string out = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto &[name, value] : headers) out += name + ": " + value + "\r\n";
  if (length) out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return out + "\r\n" + body;
}

Headers memory_headers(const std::string &secret = kMemorySecret) {
  return {{"Content-Type", "application/json"}, {"X-Memory-Secret", secret}};
}

Headers admin_headers(const std::string &token = kAdminToken) {
  return {{"Authorization", "Bearer " + token}};
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// HubSpot's v3 headers for `body` POSTed to `path`, signed at `stamp_ms`.
Headers hubspot_headers(const std::string &path, const std::string &body,
                        std::optional<int64_t> stamp_ms = std::nullopt) {
  const std::string stamp = std::to_string(stamp_ms.value_or(now_ms()));
  return {{"Content-Type", "application/json"},
          {"X-HubSpot-Signature-v3", crmhost::hubspot::signature_v3(
                                         kHubSpotSecret, "POST", kHubSpotBase + path, body, stamp)},
          {"X-HubSpot-Request-Timestamp", stamp}};
}

Headers odoo_headers(const std::string &secret = kOdooSecret) {
  return {{"Content-Type", "application/json"}, {"X-Odoo-Secret", secret}};
}

std::string hubspot_event(const std::string &object_id, const std::string &extra = "") {
  return R"({"eventId":1,"subscriptionId":7,"portalId":62515,"occurredAt":)" +
         std::to_string(now_ms()) + R"(,"subscriptionType":"contact.creation","objectId":)" +
         object_id + extra + "}";
}

bool valid_utf8_json(const std::string &text) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(text.data(),
                                                                                  text.size());
  return !d.HasParseError();
}

size_t count_of(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
  socklen_t size = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &size);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// The garbage plugin's malformed results (emit_kind in tests/fixtures/variant_plugin.c) and what
// the host says of each. A poll gives the kind its connection's poll_result setting names (one
// connection and pipeline per kind, "junkpoll_" + the kind); a fetch, the kind of the id
// "fetch-KIND" asked for; a push, the kind the record's data names in "push_result".
struct BadResult {
  std::string kind, says;
};

const std::vector<BadResult> kBadPolls = {
    {"not-json", "the result is not valid JSON at offset 1: Invalid value."},
    {"empty", "the result is not valid JSON at offset 0: The document is empty."},
    {"truncated", "the result is not valid JSON at offset"},
    {"not-an-object", "the result is not an object"},
    {"records-not-array", "\"records\" is not an array"},
    {"record-without-id", "records[0].id is missing or not a string"},
    {"data-not-object", "records[0].data is not an object"},
    {"bad-event", "records[0].event must be \"upsert\" or \"delete\""},
    {"more-without-cursor", "more pages were announced without a \"next_cursor\""},
    {"two-results", "more than one result was emitted"},
    {"deep", "the result nests deeper than 256 levels"},
};
const std::vector<BadResult> kBadFetches = {
    {"not-json", "the result is not valid JSON at offset 1: Invalid value."},
    {"empty", "the result is not valid JSON at offset 0: The document is empty."},
    {"not-an-object", "the result is not an object"},
    {"records-not-array", "\"records\" is not an array"},
    {"record-without-id", "records[0].id is missing or not a string"},
    {"missing-not-array", "\"missing\" is not an array"},
    {"two-results", "more than one result was emitted"},
    {"deep", "the result nests deeper than 256 levels"},
};
const std::vector<BadResult> kBadPushes = {
    {"not-json", "the result is not valid JSON at offset 1: Invalid value."},
    {"empty", "the result is not valid JSON at offset 0: The document is empty."},
    {"truncated", "the result is not valid JSON at offset"},
    {"results-not-array", "\"results\" is not an array"},
    {"too-few", "0 results for 1 records"},
    {"wrong-ref", "results[0].ref does not match the input's ref"},
    {"bad-status", "results[0].status must be \"ok\" or \"error\""},
    {"ok-without-id", "results[0].id is missing"},
    {"two-results", "more than one result was emitted"},
    {"deep", "the result nests deeper than 256 levels"},
};

// "junkpoll_" + a poll kind, as a YAML key ('-' is kept: names allow it).
std::string junkpoll(const std::string &kind) {
  return "junkpoll_" + kind;
}

// The one `crmhost run` process, started at first use and killed when the test binary ends.
class Host {
 public:
  static Host &get() {
    static Host host;
    return host;
  }
  Host(const Host &) = delete;
  Host &operator=(const Host &) = delete;

  uint16_t port = free_port();
  std::filesystem::path dir, config, log;
  pid_t pid = -1;

  bool alive() const {
    if (pid <= 0) return false;
    int status = 0;
    return ::waitpid(pid, &status, WNOHANG) == 0;
  }

  std::string log_text() const {
    std::ifstream in(log);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  Reply send(const std::string &bytes, std::chrono::milliseconds timeout = 15s) const {
    return exchange(port, bytes, timeout);
  }
  Reply get_admin(const std::string &target) const {
    return send(request("GET", target, admin_headers()));
  }

  // A fresh, well-formed, rightly signed delivery to the memory pipeline.
  int good_memory_webhook() {
    const std::string id = "good-" + std::to_string(++good_);
    return send(request("POST", "/hooks/memory", memory_headers(),
                        R"([{"object":"contact","id":")" + id + R"(","data":{"email":")" + id +
                            R"(@example.com"}}])"))
        .status;
  }

  // The id of the newest stored event of `pipeline` for `record_id`, or -1.
  int64_t event_id(const std::string &pipeline, const std::string &record_id) const {
    int64_t found = -1, after = 0;
    for (;;) {
      const auto page =
          get_admin("/events?pipeline=" + pipeline + "&limit=1000&after=" + std::to_string(after));
      rapidjson::Document d;
      d.Parse(page.body.data(), page.body.size());
      if (page.status != 200 || d.HasParseError() || !d.IsArray() || d.Empty()) return found;
      for (const auto &e : d.GetArray()) {
        after = e["id"].GetInt64();
        if (e["record_id"].GetString() == record_id) found = after;
      }
    }
  }

  void write_config(const std::string &text) const { std::ofstream(config) << text; }
  std::string good_config() const {
    return "store: sqlite://" + (dir / "state.db").string() +
           "\n"
           "listen: 127.0.0.1:" +
           std::to_string(port) + "\nplugin_dir: " + (dir / "plugins").string() +
           "\n"
           "log: { level: info }\n"
           "max_body: 1MiB\n"
           "allow_inline_secrets: true\n"
           "admin_token: " +
           kAdminToken +
           "\n"
           "connections:\n"
           "  mem: { plugin: memory, settings: { webhook_secret: " +
           kMemorySecret +
           " } }\n"
           "  sink: { plugin: memory, settings: { webhook_secret: " +
           kMemorySecret +
           " } }\n"
           "  hub:\n"
           "    plugin: hubspot\n"
           "    settings:\n"
           "      access_token: hubspot-token-for-tests\n"
           "      app_secret: " +
           kHubSpotSecret +
           "\n"
           "      public_base_url: " +
           kHubSpotBase +
           "\n"
           "      signature_versions: [v3]\n"
           "      base_url: http://127.0.0.1:9\n"
           "  odoo:\n"
           "    plugin: odoo\n"
           "    settings:\n"
           "      url: http://127.0.0.1:9\n"
           "      database: db\n"
           "      login: sync@example.com\n"
           "      api_key: odoo-key-for-tests\n"
           "      webhook_secret_header: { name: X-Odoo-Secret, value: " +
           kOdooSecret +
           " }\n"
           "  junk: { plugin: garbage, settings: {} }\n" +
           [] {
             std::string polls;
             for (const auto &bad : kBadPolls)
               polls += "  " + junkpoll(bad.kind) +
                        ": { plugin: garbage, settings: { poll_result: " + bad.kind + " } }\n";
             return polls;
           }() +
           "pipelines:\n"
           "  memhooks:\n"
           "    source: { webhook: { connection: mem, path: /hooks/memory } }\n"
           "    sink: { push: { connection: sink, object: contact } }\n"
           "  hubhooks:\n"
           "    source: { webhook: { connection: hub, path: /hooks/hubspot } }\n"
           "    sink: { push: { connection: sink, object: contact } }\n"
           "  odoohooks:\n"
           "    source: { webhook: { connection: odoo, path: /hooks/odoo } }\n"
           "    sink: { push: { connection: sink, object: deal } }\n"
           "  junkhooks:\n"
           "    source: { webhook: { connection: junk, path: /hooks/garbage } }\n"
           "    sink: { push: { connection: sink, object: contact } }\n"
           // Events without data, which the processor fetches from the garbage plugin.
           "  junkfetch:\n"
           "    source: { webhook: { connection: junk, path: /hooks/junkfetch } }\n"
           "    sink: { push: { connection: sink, object: contact } }\n"
           // Good records, pushed to the garbage plugin.
           "  junkpush:\n"
           "    source: { webhook: { connection: mem, path: /hooks/junkpush } }\n"
           "    sink: { push: { connection: junk, object: contact } }\n" +
           [] {
             std::string polls;
             for (const auto &bad : kBadPolls)
               polls += "  " + junkpoll(bad.kind) +
                        ":\n    source: { poll: { connection: " + junkpoll(bad.kind) +
                        ", object: contact, every: 24h } }\n"
                        "    sink: { push: { connection: sink, object: contact } }\n";
             return polls;
           }();
  }

  // The pipelines the host starts paused (each section resumes what it needs, and pauses it
  // again): nothing is pushed or fetched unless a section asks.
  static std::vector<std::string> pipelines() {
    std::vector<std::string> names = {"memhooks",  "hubhooks",  "odoohooks",
                                      "junkhooks", "junkfetch", "junkpush"};
    for (const auto &bad : kBadPolls) names.push_back(junkpoll(bad.kind));
    return names;
  }

  // Pauses or resumes `pipeline`; true on a 200.
  bool set_paused(const std::string &pipeline, bool paused) const {
    return send(request("POST", "/pipelines/" + pipeline + (paused ? "/pause" : "/resume"),
                        admin_headers()))
               .status == 200;
  }

  // The stored event of `pipeline` for `record_id` as the admin API shows it, once its status is
  // no longer pending or in flight (or after `limit`); a null document if there is none.
  rapidjson::Document settled_event(const std::string &pipeline, const std::string &record_id,
                                    std::chrono::milliseconds limit = 10s) const {
    rapidjson::Document event;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      event.SetNull();
      if (const int64_t id = event_id(pipeline, record_id); id > 0) {
        const auto reply = get_admin("/events/" + std::to_string(id));
        event.Parse(reply.body.data(), reply.body.size());
        if (event.HasParseError() || !event.IsObject()) event.SetNull();
      }
      const std::string status =
          event.IsObject() && event.HasMember("status") && event["status"].IsString()
              ? event["status"].GetString()
              : "";
      if ((!status.empty() && status != "pending" && status != "in_flight") ||
          std::chrono::steady_clock::now() > deadline)
        return event;
      std::this_thread::sleep_for(20ms);
    }
  }

  // The sync run `run_id` as the admin API shows it, once it is no longer running (or after
  // `limit`).
  rapidjson::Document finished_run(int64_t run_id, std::chrono::milliseconds limit = 10s) const {
    rapidjson::Document run;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      const auto reply = get_admin("/runs/" + std::to_string(run_id));
      run.Parse(reply.body.data(), reply.body.size());
      if (run.HasParseError() || !run.IsObject()) run.SetNull();
      const bool done = run.IsObject() && run.HasMember("status") && run["status"].IsString() &&
                        std::string(run["status"].GetString()) != "running";
      if (done || std::chrono::steady_clock::now() > deadline) return run;
      std::this_thread::sleep_for(20ms);
    }
  }

 private:
  int good_ = 0;

  Host() {
    std::signal(SIGPIPE, SIG_IGN);
    dir =
        std::filesystem::temp_directory_path() / ("crmhost-hostile-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "plugins");
    for (const auto &[from, name] :
         {std::pair<std::string, std::string>{CRMHOST_FIXTURE_DIR, "memory.so"},
          {CRMHOST_FIXTURE_DIR, "garbage.so"},
          {CRMHOST_BUILT_PLUGIN_DIR, "hubspot.so"},
          {CRMHOST_BUILT_PLUGIN_DIR, "odoo.so"}})
      std::filesystem::create_symlink(std::filesystem::path(from) / name, dir / "plugins" / name);
    config = dir / "crmhost.yaml";
    log = dir / "crmhost.log";
    write_config(good_config());
    pid = crmhost::testing::spawn_crmhost_run(CRMHOST_BINARY, config, log);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (send(request("GET", "/healthz"), 1s).status != 200) {
      if (std::chrono::steady_clock::now() > deadline || !alive())
        throw std::runtime_error("crmhost did not start:\n" + log_text());
      std::this_thread::sleep_for(50ms);
    }
    // Events stay pending: nothing is pushed or fetched from the unreachable providers.
    for (const auto &p : pipelines())
      if (!set_paused(p, true))
        throw std::runtime_error("could not pause " + p + ":\n" + log_text());
  }
  ~Host() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    std::filesystem::remove_all(dir);
  }
};

// After every case: the process lives, answers /healthz and stores a good webhook.
void survives(Host &host) {
  REQUIRE(host.alive());
  CHECK(host.send(request("GET", "/healthz")).status == 200);
  CHECK(host.good_memory_webhook() == 200);
}

struct Case {
  std::string name;
  std::string bytes;
  int status;
  std::string body_contains = "";
};

void run(Host &host, const std::vector<Case> &cases) {
  for (const auto &c : cases) {
    INFO("case: " << c.name);
    const auto reply = host.send(c.bytes);
    INFO("answer: " << reply.head.substr(0, reply.head.find("\r\n")) << " "
                    << reply.body.substr(0, 300));
    CHECK(reply.status == c.status);
    if (!c.body_contains.empty()) CHECK_THAT(reply.body, Catch::Contains(c.body_contains));
    survives(host);
  }
}

std::string good_memory_body(const std::string &id) {
  return R"([{"object":"contact","id":")" + id + R"(","data":{"email":")" + id +
         R"(@example.com"}}])";
}

std::string deep(size_t n, const std::string &open = "[") {
  std::string out;
  out.reserve(n * open.size());
  for (size_t i = 0; i < n; ++i) out += open;
  return out;
}

// Broken mapping rules, as the lines under a pipeline's `map:` (6 spaces in), and what the
// loader says of each.
struct BrokenMap {
  std::string name, map, says;
};
std::vector<BrokenMap> broken_maps() {
  return {
      {"an unknown transform", "      fields: { email: { from: a, transform: [lowr] } }\n",
       R"(map.fields.email.transform.0: unknown transform "lowr" (did you mean "lower"?))"},
      {"a from path that never closes", "      fields: { email: { from: \"a[\" } }\n",
       R"(map.fields.email.from: bad path "a[": missing ])"},
      {"a from path of brackets", "      fields: { email: { from: \"[[[[]]]]\" } }\n",
       R"(map.fields.email.from: bad path "[[[[]]]]": empty segment)"},
      {"fields as a list", "      fields: [email, phone]\n",
       "must be a mapping of target fields, not a list"},
      {"a transform with a text argument",
       "      fields: { n: { from: a, transform: [ { multiply: lots } ] } }\n",
       "map.fields.n.transform.0: multiply needs a number"},
      {"division by zero", "      fields: { n: { from: a, transform: [ { divide: 0 } ] } }\n",
       "map.fields.n.transform.0: divide needs a non-zero number"},
      {"a negative rounding", "      fields: { n: { from: a, transform: [ { round: -1 } ] } }\n",
       "map.fields.n.transform.0: round needs a number of decimals from 0 to 10"},
      {"a picklist that is a number", "      fields: { s: { from: a, picklist: 5 } }\n",
       "map.fields.s.picklist: a picklist must be a mapping of values"},
      {"a rule nested 10,000 deep",
       "      fields: { s: " + deep(10'000) + std::string(10'000, ']') + " }\n",
       "YAML syntax error"},
      {"an unknown preset", "      preset: ../../../../etc/passwd\n",
       R"(no preset "../../../../etc/passwd")"},
      {"a field name of 100,000 characters",
       "      fields: { " + std::string(100'000, 'f') + ": { from: a, transform: [nope] } }\n",
       "YAML syntax error"},
      {"a 100,000-digit rounding",
       "      fields: { n: { from: a, transform: [ { round: " + std::string(100'000, '9') +
           " } ] } }\n",
       "map.fields.n.transform.0: round needs a number of decimals from 0 to 10"},
  };
}

}  // namespace

TEST_CASE("one crmhost run process survives hostile input on every parser and endpoint",
          "[hostile]") {
  Host &host = Host::get();
  REQUIRE(host.alive());

  SECTION("the good deliveries the cases are measured against are accepted") {
    survives(host);
    const std::string hub = "[" + hubspot_event("101") + "]";
    CHECK(host.send(request("POST", "/hooks/hubspot", hubspot_headers("/hooks/hubspot", hub), hub))
              .status == 200);
    const std::string odoo = R"({"_model":"crm.lead","_id":7,"write_date":"2026-01-01 00:00:00"})";
    CHECK(host.send(request("POST", "/hooks/odoo", odoo_headers(), odoo)).status == 200);
    CHECK(host.event_id("odoohooks", "7") > 0);
    CHECK(host.event_id("hubhooks", "101") > 0);
    survives(host);
  }

  SECTION("memory webhook: malformed, truncated, empty, unsigned and mislabelled bodies") {
    const std::string good = good_memory_body("m1");
    run(host,
        {
            {"malformed JSON",
             request("POST", "/hooks/memory", memory_headers(), R"([{"object" "contact"}])"), 400},
            {"truncated body",
             request("POST", "/hooks/memory", memory_headers(), good.substr(0, good.size() - 5)),
             400},
            {"empty body", request("POST", "/hooks/memory", memory_headers(), ""), 400},
            {"whitespace body", request("POST", "/hooks/memory", memory_headers(), " \r\n\t"), 400},
            {"a JSON object, not an array",
             request("POST", "/hooks/memory", memory_headers(), R"({"object":"contact"})"), 400},
            {"an unknown object",
             request("POST", "/hooks/memory", memory_headers(),
                     R"([{"object":"spaceship","id":"x","data":{}}])"),
             400},
            {"wrong secret",
             request("POST", "/hooks/memory", memory_headers("s3cret-s3creT"), good), 401},
            {"missing secret",
             request("POST", "/hooks/memory", {{"Content-Type", "application/json"}}, good), 401},
            {"secret with a prefix of the right one",
             request("POST", "/hooks/memory", memory_headers("s3cret"), good), 401},
            {"empty secret", request("POST", "/hooks/memory", memory_headers(""), good), 401},
            // The body decides, not its label: providers differ in what they send.
            {"valid JSON labelled text/plain",
             request("POST", "/hooks/memory",
                     {{"Content-Type", "text/plain"}, {"X-Memory-Secret", kMemorySecret}},
                     good_memory_body("m-text")),
             200},
            {"a form body labelled as a form",
             request("POST", "/hooks/memory",
                     {{"Content-Type", "application/x-www-form-urlencoded"},
                      {"X-Memory-Secret", kMemorySecret}},
                     "object=contact&id=1"),
             400},
            {"UTF-16 text",
             request("POST", "/hooks/memory",
                     {{"Content-Type", "application/json; charset=utf-16"},
                      {"X-Memory-Secret", kMemorySecret}},
                     std::string("\xff\xfe[\0]\0", 6)),
             400},
        });
  }

  SECTION("deep nesting is refused by the host before any plugin parses it") {
    const std::string brackets = deep(500'000);
    run(host,
        {
            {"500,000 [ to memory", request("POST", "/hooks/memory", memory_headers(), brackets),
             400, "nests deeper than 64 levels"},
            {"500,000 [ unsigned to hubspot", request("POST", "/hooks/hubspot", {}, brackets), 400,
             "nests deeper than 64 levels"},
            {"500,000 [ signed to hubspot",
             request("POST", "/hooks/hubspot", hubspot_headers("/hooks/hubspot", brackets),
                     brackets),
             400, "nests deeper than 64 levels"},
            {"100,000 {\"a\": to odoo",
             request("POST", "/hooks/odoo", odoo_headers(), deep(100'000, "{\"a\":")), 400,
             "nests deeper than 64 levels"},
            {"65 levels after leading whitespace to memory",
             request("POST", "/hooks/memory", memory_headers(), "\n  " + deep(65) + "1"), 400,
             "nests deeper than 64 levels"},
            {"500,000 [ to the garbage plugin", request("POST", "/hooks/garbage", {}, brackets),
             400, "nests deeper than 64 levels"},
            // Brackets inside a string are text, not nesting.
            {"50,000 [ inside a string",
             request("POST", "/hooks/memory", memory_headers(),
                     R"([{"object":"contact","id":"brackets","data":{"s":")" + deep(50'000) +
                         R"("}}])"),
             200},
        });
  }

  SECTION("bodies over max_body are answered 413") {
    run(host,
        {
            {"Content-Length one over max_body",
             "POST /hooks/memory HTTP/1.1\r\nHost: x\r\nX-Memory-Secret: " + kMemorySecret +
                 "\r\nContent-Length: " + std::to_string(kMaxBody + 1) + "\r\n\r\n",
             413},
            {"a whole body one byte over max_body",
             request("POST", "/hooks/memory", memory_headers(), std::string(kMaxBody + 1, ' ')),
             413},
            {"a chunk larger than max_body",
             "POST /hooks/memory HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                 [] {
                   char size[32];
                   std::snprintf(size, sizeof size, "%zx\r\n", kMaxBody + 16);
                   return std::string(size);
                 }(),
             413},
            {"chunks adding up to more than max_body",
             "POST /hooks/memory HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
                 [] {
                   std::string chunks;
                   for (int i = 0; i < 17; ++i)
                     chunks += "10000\r\n" + std::string(65536, ' ') + "\r\n";
                   return chunks;
                 }(),
             413},
            {"admin route with a body over max_body",
             request("POST", "/pause-all", admin_headers(), std::string(kMaxBody + 1, '{')), 413},
        });
  }

  SECTION("invalid UTF-8, NUL bytes and huge numbers") {
    run(host, {
                  {"invalid UTF-8 in a string",
                   request("POST", "/hooks/memory", memory_headers(),
                           "[{\"object\":\"contact\",\"id\":\"utf8\",\"data\":{\"name\":"
                           "\"a\xff\xfe\xc3\"}}]"),
                   200},
                  {"invalid UTF-8 outside strings",
                   request("POST", "/hooks/memory", memory_headers(), "[\xff\xfe]"), 400},
                  {"a raw NUL inside a string",
                   request("POST", "/hooks/memory", memory_headers(),
                           R"([{"object":"contact","id":"n)" + std::string(1, '\0') +
                               R"(l","data":{}}])"),
                   400},
                  {"a NUL after the document",
                   request("POST", "/hooks/memory", memory_headers(),
                           good_memory_body("nul-after") + std::string(1, '\0')),
                   400},
                  {"an escaped NUL",
                   request("POST", "/hooks/memory", memory_headers(),
                           R"([{"object":"contact","id":"esc-nul","data":{"s":"a\u0000b"}}])"),
                   200},
                  {"a 100,000-digit number",
                   request("POST", "/hooks/memory", memory_headers(),
                           R"([{"object":"contact","id":"big","data":{"n":)" +
                               std::string(100'000, '9') + "}}]"),
                   400},
                  {"a number beyond double's range",
                   request("POST", "/hooks/memory", memory_headers(),
                           R"([{"object":"contact","id":"inf","data":{"n":1e999}}])"),
                   400},
                  {"zero with an exponent over 308",
                   request("POST", "/hooks/memory", memory_headers(),
                           R"([{"object":"contact","id":"zero-exp","data":{"n":-0E55555}}])"),
                   400},
                  {"a number JSON does not allow (leading zero)",
                   request("POST", "/hooks/memory", memory_headers(),
                           R"([{"object":"contact","id":"zero","data":{"n":0012}}])"),
                   400},
                  {"a number JSON does not allow (no digits after the point)",
                   request("POST", "/hooks/memory", memory_headers(),
                           R"([{"object":"contact","id":"point","data":{"n":1.}}])"),
                   400},
                  {"a number JSON does not allow (plus sign)",
                   request("POST", "/hooks/memory", memory_headers(),
                           R"([{"object":"contact","id":"plus","data":{"n":+1}}])"),
                   400},
                  {"numbers at the edges of double",
                   request("POST", "/hooks/memory", memory_headers(),
                           R"([{"object":"contact","id":"edges","data":{"a":1e308,"a2":-9.99e307,)"
                           R"("b":-4.9e-324,"c":-0,"d":18446744073709551616,"e":1E+2}}])"),
                   200},
              });
    // What was stored with invalid bytes comes back from the admin API as valid UTF-8 JSON.
    const int64_t id = host.event_id("memhooks", "utf8");
    REQUIRE(id > 0);
    const auto event = host.get_admin("/events/" + std::to_string(id));
    CHECK(event.status == 200);
    CHECK(valid_utf8_json(event.body));
    CHECK_THAT(event.body, Catch::Contains("\xef\xbf\xbd"));  // U+FFFD
  }

  SECTION("long headers, targets and strings") {
    run(host, {
                  {"a 70 KiB header value",
                   request("POST", "/hooks/memory",
                           {{"X-Memory-Secret", kMemorySecret},
                            {"X-Filler", std::string(70 * 1024, 'a')}},
                           good_memory_body("long-header")),
                   431},
                  {"5,000 small headers",
                   request(
                       "POST", "/hooks/memory",
                       [] {
                         Headers many;
                         for (int i = 0; i < 5000; ++i)
                           many.emplace_back("X-H" + std::to_string(i), "0123456789");
                         return many;
                       }(),
                       good_memory_body("many-headers")),
                   431},
                  {"a 70 KiB target", request("GET", "/" + std::string(70 * 1024, 'a')), 431},
                  {"a 70 KiB secret",
                   request("POST", "/hooks/memory", memory_headers(std::string(70 * 1024, 's')),
                           good_memory_body("long-secret")),
                   431},
                  {"a 60 KiB secret (under the header limit)",
                   request("POST", "/hooks/memory", memory_headers(std::string(60 * 1024, 's')),
                           good_memory_body("long-secret")),
                   401},
                  {"a 900 KB string value",
                   request("POST", "/hooks/memory", memory_headers(),
                           R"([{"object":"contact","id":"long-string","data":{"s":")" +
                               std::string(900'000, 'x') + R"("}}])"),
                   200},
                  {"a 10,000-record array",
                   request("POST", "/hooks/memory", memory_headers(),
                           [] {
                             std::string body = "[";
                             for (int i = 0; i < 10'000; ++i)
                               body += (i ? "," : "") +
                                       std::string(R"({"object":"contact","id":"bulk)") +
                                       std::to_string(i) + R"(","data":{}})";
                             return body + "]";
                           }()),
                   200},
              });
  }

  SECTION("framing: conflicting lengths, bad chunks and bad request lines") {
    const std::string body = good_memory_body("framing");
    const std::string head =
        "POST /hooks/memory HTTP/1.1\r\nHost: x\r\nX-Memory-Secret: " + kMemorySecret + "\r\n";
    run(host,
        {
            {"Content-Length with Transfer-Encoding",
             head + "Content-Length: " + std::to_string(body.size()) +
                 "\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
             400},
            {"Transfer-Encoding before Content-Length",
             head + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
            {"two different Content-Lengths",
             head + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n" + body, 400},
            {"a Transfer-Encoding not ending in chunked",
             head + "Transfer-Encoding: gzip\r\n\r\n" + body, 400},
            {"a chunk size that is not hex",
             head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + body + "\r\n0\r\n\r\n", 400},
            {"a negative Content-Length", head + "Content-Length: -1\r\n\r\n", 400},
            {"a Content-Length of 30 digits",
             head + "Content-Length: 999999999999999999999999999999\r\n\r\n", 400},
            {"a request line with no target", "GET\r\n\r\n", 400},
            {"a method with a bad character", "G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
            {"a NUL in a header value",
             "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a" + std::string(1, '\0') + "b\r\n\r\n",
             400},
            {"a header without a colon",
             "GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400},
            {"a TLS ClientHello on the plain port",
             std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11), 400},
            // A valid request after all that: chunked, split in two chunks.
            {"a good chunked delivery",
             head + "Transfer-Encoding: chunked\r\n\r\n" +
                 [&] {
                   const std::string id = good_memory_body("chunked");
                   char a[16], b[16];
                   std::snprintf(a, sizeof a, "%zx\r\n", size_t{10});
                   std::snprintf(b, sizeof b, "%zx\r\n", id.size() - 10);
                   return a + id.substr(0, 10) + "\r\n" + b + id.substr(10) + "\r\n0\r\n\r\n";
                 }(),
             200},
        });
  }

  SECTION("unknown methods and paths") {
    const std::string body = good_memory_body("methods");
    run(host,
        {
            {"PUT to a webhook path", request("PUT", "/hooks/memory", memory_headers(), body), 404},
            {"GET on a webhook path", request("GET", "/hooks/memory", memory_headers()), 404},
            {"an unknown method", request("BREW", "/hooks/memory", memory_headers(), body), 404},
            {"POST to no pipeline's path",
             request("POST", "/hooks/nowhere", memory_headers(), body), 404},
            {"POST with a trailing slash",
             request("POST", "/hooks/memory/", memory_headers(), body), 404},
            {"POST to the root", request("POST", "/", memory_headers(), body), 404},
            {"POST /healthz", request("POST", "/healthz", memory_headers(), body), 404},
            {"GET on an unknown path", request("GET", "/no/such/thing"), 404},
            {"an absolute-form target", request("GET", "http://evil.example/healthz"), 404},
            {"an asterisk target", request("OPTIONS", "*"), 404},
            {"a query string on a webhook path",
             request("POST", "/hooks/memory?x=1&y", memory_headers(),
                     good_memory_body("with-query")),
             200},
        });
  }

  SECTION("HubSpot: signatures and event arrays") {
    const std::string path = "/hooks/hubspot";
    const std::string good = "[" + hubspot_event("201") + "]";
    auto wrong = hubspot_headers(path, good);
    wrong[1].second[0] = wrong[1].second[0] == 'A' ? 'B' : 'A';
    auto no_stamp = hubspot_headers(path, good);
    no_stamp.pop_back();
    const auto signed_post = [&](const std::string &body) {
      return request("POST", path, hubspot_headers(path, body), body);
    };
    run(host,
        {
            {"no signature", request("POST", path, {{"Content-Type", "application/json"}}, good),
             401},
            {"a wrong v3 signature", request("POST", path, wrong, good), 401},
            {"a signature of another body",
             request("POST", path, hubspot_headers(path, good), "[" + hubspot_event("202") + "]"),
             401},
            {"a signature of another path",
             request("POST", path, hubspot_headers("/x", good), good), 401},
            {"v3 without its timestamp", request("POST", path, no_stamp, good), 401},
            {"a timestamp that is not a number",
             request("POST", path,
                     {{"X-HubSpot-Signature-v3", "abc"}, {"X-HubSpot-Request-Timestamp", "soon"}},
                     good),
             400},
            {"a timestamp ten minutes old",
             request("POST", path, hubspot_headers(path, good, now_ms() - 600'000), good), 401},
            {"a timestamp ten minutes ahead",
             request("POST", path, hubspot_headers(path, good, now_ms() + 600'000), good), 401},
            {"the smallest int64 timestamp",
             request("POST", path, hubspot_headers(path, good, INT64_MIN), good), 401},
            {"the largest int64 timestamp",
             request("POST", path, hubspot_headers(path, good, INT64_MAX), good), 401},
            {"a v1 signature where only v3 is accepted",
             request("POST", path,
                     {{"X-HubSpot-Signature", crmhost::hubspot::signature_v1(kHubSpotSecret, good)},
                      {"X-HubSpot-Signature-Version", "v1"}},
                     good),
             401},
            {"signed malformed JSON", signed_post(R"([{"subscriptionType":)"), 400},
            {"signed truncated body", signed_post(good.substr(0, good.size() - 3)), 400},
            {"signed empty body", signed_post(""), 400},
            {"signed object, not array", signed_post(hubspot_event("203")), 400},
            {"signed event without objectId",
             signed_post(R"([{"subscriptionType":"contact.creation","occurredAt":1}])"), 400},
            {"signed event with a bad occurredAt",
             signed_post(R"([{"subscriptionType":"contact.creation","objectId":1,)"
                         R"("occurredAt":"yesterday"}])"),
             400},
            {"signed objectId beyond double",
             signed_post(R"([{"subscriptionType":"contact.creation","objectId":1e999}])"), 400},
            {"signed objectId beyond uint64",
             signed_post(
                 R"([{"subscriptionType":"contact.creation","objectId":123456789012345678901234567890}])"),
             400},
            {"signed 100,000-digit occurredAt",
             signed_post(R"([{"subscriptionType":"contact.creation","objectId":5,"occurredAt":)" +
                         std::string(100'000, '9') + "}]"),
             400},
            {"signed 65 levels of nesting", signed_post(deep(65)), 400},
            {"signed invalid UTF-8 in a property name",
             signed_post("[" + hubspot_event("204", ",\"propertyName\":\"\xff\xfe\"") + "]"), 200},
            {"signed subscription types it does not sync",
             signed_post(R"([{"subscriptionType":"ticket.creation","objectId":9}])"), 200},
        });
  }

  SECTION("Odoo: the secret header and automation-rule bodies") {
    const std::string good = R"({"_model":"crm.lead","_id":8})";
    run(host,
        {
            {"wrong secret", request("POST", "/hooks/odoo", odoo_headers("nope-nope"), good), 401},
            {"missing secret",
             request("POST", "/hooks/odoo", {{"Content-Type", "application/json"}}, good), 401},
            {"the right secret, then a wrong one",
             request("POST", "/hooks/odoo",
                     {{"X-Odoo-Secret", kOdooSecret}, {"X-Odoo-Secret", "wrong"}}, good),
             401},
            {"malformed JSON", request("POST", "/hooks/odoo", odoo_headers(), "{\"_model\":"), 400},
            {"empty body", request("POST", "/hooks/odoo", odoo_headers(), ""), 400},
            {"an array", request("POST", "/hooks/odoo", odoo_headers(), "[" + good + "]"), 400},
            {"no _model", request("POST", "/hooks/odoo", odoo_headers(), R"({"_id":8})"), 400},
            {"a negative _id",
             request("POST", "/hooks/odoo", odoo_headers(), R"({"_model":"crm.lead","_id":-3})"),
             400},
            {"a text _id",
             request("POST", "/hooks/odoo", odoo_headers(), R"({"_model":"crm.lead","_id":"x"})"),
             400},
            {"an _id beyond double",
             request("POST", "/hooks/odoo", odoo_headers(), R"({"_model":"crm.lead","_id":1e999})"),
             400},
            // No is_company: the connector would look the partner up by an id that is no int64.
            {"a partner _id beyond int64",
             request("POST", "/hooks/odoo", odoo_headers(),
                     R"({"_model":"res.partner","_id":18446744073709551615})"),
             400},
            {"a partner _id text beyond int64",
             request("POST", "/hooks/odoo", odoo_headers(),
                     R"({"_model":"res.partner","_id":"99999999999999999999"})"),
             400},
            {"a model no pipeline takes",
             request("POST", "/hooks/odoo", odoo_headers(), R"({"_model":"res.users","_id":2})"),
             200},
        });
  }

  SECTION("a plugin that answers malformed webhook results gives 500, not a crash") {
    // The garbage fixture fails with a status the ABI does not define, or (for "emit:") returns
    // the rest of the body as its result, unchecked.
    const auto emit = [](const std::string &result) {
      return request("POST", "/hooks/garbage", {}, "emit:" + result);
    };
    run(host, {
                  {"an undefined error status", request("POST", "/hooks/garbage", {}, "[]"), 500},
                  {"a result that is not JSON", emit("this is not json"), 500},
                  {"an empty result", emit(""), 500},
                  {"events that are not an array", emit(R"({"events":5})"), 500},
                  {"an event without an id", emit(R"({"events":[{"object":"contact"}]})"), 500},
                  {"an event whose data is not an object",
                   emit(R"({"events":[{"object":"contact","id":"1","data":[1]}]})"), 500},
                  {"a result nested 300,000 deep", emit(deep(300'000)), 500},
                  {"a reply with an impossible status",
                   emit(R"({"events":[],"response":{"status":99999}})"), 500},
                  {"a result with invalid UTF-8 and a NUL",
                   emit("{\"events\":[{\"object\":\"contact\",\"id\":\"\xff" +
                        std::string(1, '\0') + "\"}]}"),
                   500},
                  {"a well-formed empty result", emit(R"({"events":[]})"), 200},
              });
  }

  SECTION("malformed poll, fetch and push results fail the run or the event, naming the result") {
    // A poll: each garbage connection gives its kind; a backfill runs one poll at once.
    for (const auto &bad : kBadPolls) {
      INFO("poll result: " << bad.kind);
      const auto started = host.send(
          request("POST", "/pipelines/" + junkpoll(bad.kind) + "/backfill", admin_headers()));
      REQUIRE(started.status == 202);
      rapidjson::Document answer;
      answer.Parse(started.body.data(), started.body.size());
      REQUIRE((answer.IsObject() && answer.HasMember("run_id") && answer["run_id"].IsInt64()));
      const auto run = host.finished_run(answer["run_id"].GetInt64());
      REQUIRE(run.IsObject());
      CHECK(std::string(run["status"].GetString()) == "failed");
      CHECK_THAT(std::string(run["error"].GetString()),
                 Catch::StartsWith("poll: internal: plugin garbage returned a malformed poll "
                                   "result: ") &&
                     Catch::Contains(bad.says));
      CHECK(run["enqueued"].GetInt64() == 0);
      survives(host);
    }
    // The pipelines' own status shows the failed run too.
    const auto status = host.get_admin("/pipelines/" + junkpoll("deep"));
    CHECK(status.status == 200);
    CHECK_THAT(status.body, Catch::Contains(R"("status":"failed")"));

    // A fetch: a webhook event without its fields is fetched from the garbage source; a push:
    // the good record is pushed to the garbage sink. Either way the event is dead-lettered with
    // what was wrong, and the next one is processed as before.
    REQUIRE(host.set_paused("junkfetch", false));
    REQUIRE(host.set_paused("junkpush", false));
    for (const auto &bad : kBadFetches) {
      INFO("fetch result: " << bad.kind);
      const std::string id = "fetch-" + bad.kind;
      CHECK(host.send(request("POST", "/hooks/junkfetch", {},
                              R"(emit:{"events":[{"object":"contact","id":")" + id + R"("}]})"))
                .status == 200);
      const auto event = host.settled_event("junkfetch", id);
      REQUIRE(event.IsObject());
      CHECK(std::string(event["status"].GetString()) == "dead");
      CHECK_THAT(std::string(event["last_error"].GetString()),
                 Catch::StartsWith("fetch: internal: plugin garbage returned a malformed fetch "
                                   "result: ") &&
                     Catch::Contains(bad.says));
      survives(host);
    }
    for (const auto &bad : kBadPushes) {
      INFO("push result: " << bad.kind);
      const std::string id = "push-" + bad.kind;
      CHECK(host.send(request("POST", "/hooks/junkpush", memory_headers(),
                              R"([{"object":"contact","id":")" + id + R"(","data":{"email":")" +
                                  id + R"(@example.com","push_result":")" + bad.kind + R"("}}])"))
                .status == 200);
      const auto event = host.settled_event("junkpush", id);
      REQUIRE(event.IsObject());
      CHECK(std::string(event["status"].GetString()) == "dead");
      CHECK_THAT(std::string(event["last_error"].GetString()),
                 Catch::StartsWith("push: internal: plugin garbage returned a malformed push "
                                   "result: ") &&
                     Catch::Contains(bad.says));
      survives(host);
    }
    CHECK(host.set_paused("junkfetch", true));
    CHECK(host.set_paused("junkpush", true));
    // Nothing of the above crashed a thread or the process: every run and event was answered.
    CHECK_THAT(host.log_text(), !Catch::Contains("fatal signal"));
  }

  SECTION("admin API: tokens") {
    run(host,
        {
            {"no token", request("GET", "/pipelines"), 401},
            {"a wrong token", request("GET", "/pipelines", admin_headers("x" + kAdminToken)), 401},
            {"the token in upper case", request("GET", "/pipelines", admin_headers([] {
                                                  std::string upper = kAdminToken;
                                                  for (auto &c : upper)
                                                    c = static_cast<char>(std::toupper(c));
                                                  return upper;
                                                }())),
             401},
            {"the token's prefix",
             request("GET", "/pipelines", admin_headers(kAdminToken.substr(0, 10))), 401},
            {"Bearer alone", request("GET", "/pipelines", {{"Authorization", "Bearer"}}), 401},
            {"Basic credentials",
             request("GET", "/pipelines", {{"Authorization", "Basic YWRtaW46YWRtaW4="}}), 401},
            {"the token in a query string",
             request("GET", "/pipelines?access_token=" + kAdminToken), 401},
            {"a 60 KiB token",
             request("GET", "/pipelines", admin_headers(std::string(60 * 1024, 't'))), 401},
            {"no token on a POST route", request("POST", "/pause-all"), 401},
            {"the right token", request("GET", "/pipelines", admin_headers()), 200},
        });
  }

  SECTION("admin API: bad ids, traversal and query numbers") {
    const auto get = [](const std::string &target) {
      return request("GET", target, admin_headers());
    };
    run(host,
        {
            {"a text event id", get("/events/abc"), 400},
            {"an event id with trailing text", get("/events/1abc"), 400},
            {"a hex event id", get("/events/0x1"), 400},
            {"an event id with a sign", get("/events/+1"), 400},
            {"an event id of 20 digits", get("/events/99999999999999999999"), 400},
            {"a negative event id", get("/events/-1"), 404},
            {"event id 0", get("/events/0"), 404},
            {"a run id in exponent form", get("/runs/1e3"), 400},
            {"a text run id", get("/runs/abc"), 400},
            {"a negative run id", get("/runs/-1"), 404},
            {"/events/../..", get("/events/../.."), 404},
            {"/events/..%2F..%2Fetc%2Fpasswd", get("/events/..%2F..%2Fetc%2Fpasswd"), 400},
            {"/../../etc/passwd", get("/../../etc/passwd"), 404},
            {"/pipelines/../events", get("/pipelines/../events"), 404},
            {"/pipelines/%2e%2e", get("/pipelines/%2e%2e"), 404},
            {"/health/../../etc", get("/health/../../etc"), 404},
            {"limit=-5 (clamped to 1)", get("/events?limit=-5"), 200},
            {"limit=0 (clamped to 1)", get("/events?limit=0"), 200},
            {"limit of 20 digits", get("/events?limit=99999999999999999999"), 400},
            {"limit with trailing text", get("/events?limit=5x"), 400},
            {"limit=abc", get("/events?limit=abc"), 400},
            {"after=-1", get("/events?after=-1"), 200},
            {"after of 20 digits", get("/events?after=99999999999999999999"), 400},
            {"after=1e9", get("/events?after=1e9"), 400},
            {"status=bogus", get("/events?status=bogus"), 400},
            {"a pipeline name of invalid UTF-8", get("/events?pipeline=%ff\xff"), 200},
            {"an unknown pipeline", get("/pipelines/nope"), 404},
            {"an unknown connection's health", get("/health/nope"), 404},
            {"DELETE a pipeline", request("DELETE", "/pipelines/memhooks", admin_headers()), 405},
            {"GET a POST route", get("/pause-all"), 405},
            {"PATCH an event", request("PATCH", "/events/1", admin_headers(), "{}"), 405},
        });
    // A known path with another method names the allowed ones.
    CHECK_THAT(host.send(request("GET", "/pause-all", admin_headers())).head,
               Catch::Contains("Allow: POST"));
    // Clamped, not refused: a negative limit lists at most one event.
    const auto one = host.get_admin("/events?limit=-5");
    rapidjson::Document d;
    d.Parse(one.body.data(), one.body.size());
    REQUIRE(d.IsArray());
    CHECK(d.Size() == 1);
  }

  SECTION("admin API: POST routes with bodies they do not read and bad parameters") {
    const auto post = [](const std::string &target, const std::string &body = "") {
      return request("POST", target, admin_headers(), body);
    };
    run(host,
        {
            {"pause with a malformed JSON body", post("/pipelines/memhooks/pause", "{{{"), 200},
            {"pause-all with 100 KB of junk", post("/pause-all", std::string(100'000, '[')), 200},
            {"resume-all with invalid UTF-8", post("/resume-all", "\xff\xfe\xfd"), 200},
            {"pause an unknown pipeline", post("/pipelines/nope/pause", "{"), 404},
            {"replay with status=bogus", post("/pipelines/memhooks/replay?status=bogus", "]"), 400},
            {"replay with since=yesterday", post("/pipelines/memhooks/replay?since=yesterday"),
             400},
            {"replay with until=-1", post("/pipelines/memhooks/replay?until=-1"), 400},
            {"backfill with since=never", post("/pipelines/memhooks/backfill?since=never"), 400},
            {"backfill of a webhook-only pipeline", post("/pipelines/memhooks/backfill"), 409},
            {"replay of a text event id", post("/events/abc/replay", "{}"), 400},
            {"replay of an unknown event", post("/events/999999999/replay"), 404},
            {"an unknown sub-route", post("/pipelines/memhooks/explode", "{}"), 404},
        });
    // The kill switch's junk bodies did not unpause anything.
    const auto list = host.get_admin("/pipelines");
    CHECK_THAT(list.body,
               Catch::Contains(R"("paused":true)") && !Catch::Contains(R"("paused":false)"));
  }

  SECTION("an event with 60,000-character fields is shown quickly and redacted") {
    struct Big {
      std::string id, field;
    };
    std::string emails, cards, keys;
    while (emails.size() < 60'000) emails += "first.last+tag@";
    while (cards.size() < 60'000) cards += "4111 1111 1111 1111 ";
    while (keys.size() < 60'000) keys += "password=";
    const std::vector<Big> bigs = {
        {"big-plain", std::string(60'000 - 12, 'a') + "@example.com"},
        {"big-emails", emails.substr(0, 60'000)},
        {"big-cards", cards.substr(0, 60'000)},
        {"big-keys", keys.substr(0, 60'000)},
    };
    for (const auto &big : bigs) {
      INFO("event " << big.id);
      const std::string body = R"([{"object":"contact","id":")" + big.id +
                               R"(","data":{"email":"secret.person@example.com",)"
                               R"("password":"hunter2-hunter2","notes":")" +
                               big.field + R"("}}])";
      REQUIRE(host.send(request("POST", "/hooks/memory", memory_headers(), body)).status == 200);
      const int64_t id = host.event_id("memhooks", big.id);
      REQUIRE(id > 0);
      const auto event = host.get_admin("/events/" + std::to_string(id));
      CHECK(event.status == 200);
      CHECK(event.seconds < 2.0);
      CHECK(valid_utf8_json(event.body));
      CHECK_THAT(event.body, Catch::Contains(R"("payload":")"));
      CHECK_THAT(event.body, !Catch::Contains("secret.person@example.com") &&
                                 !Catch::Contains("hunter2") && Catch::Contains("[email]"));
      survives(host);
    }
  }

  SECTION("SIGHUP with a hostile config is refused; the old one keeps serving") {
    const std::string base = host.good_config();
    struct Broken {
      std::string name, text, logged;
      // Broken maps: what this refusal itself logs says `logged` on a "reload refused:
      // FILE:LINE:COLUMN:" line, in under 5,000 characters (no echo of the input).
      bool own_line = false;
    };
    const auto with_admin_token = [&](const std::string &value) {
      std::string c = base;
      c.replace(c.find("admin_token: " + kAdminToken), 13 + kAdminToken.size(),
                "admin_token: " + value);
      return c;
    };
    std::vector<Broken> broken = {
        {"a self-referring alias", base + "retention: &a [x, *a]\n",
         "an alias that refers to itself?"},
        {"an alias bomb",
         [&] {
           std::string bomb =
               base + "x-bomb:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
           for (int i = 1; i <= 9; ++i) {
             bomb += "  l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
             for (int j = 0; j < 10; ++j) bomb += (j ? ", *l" : "*l") + std::to_string(i - 1);
             bomb += "]\n";
           }
           return bomb;
         }(),
         "expands to more than 200000 values"},
        {"a 100,000-digit number", base + "retention: " + std::string(100'000, '7') + "\n",
         "retention"},
        {"${file:/dev/zero}", with_admin_token("\"${file:/dev/zero}\""),
         "it is not a regular file"},
        {"a YAML syntax error", base + "pipelines: [this is: not valid\n", "YAML syntax error"},
        // yaml-cpp 0.7's LoadAll loops for ever on these, allocating (jbeder/yaml-cpp#1040).
        {"a stray ','", ",\n", "(a stray ','?)"},
        {"a stray ',' after a document", "{store: x}\n,\x80r\xe7\n", "(a stray ','?)"},
    };
    // A pipeline added with each broken map (the running config has no such pipeline).
    for (const auto &m : broken_maps())
      broken.push_back(
          {"a map with " + m.name,
           base +
               "  mapped:\n"
               "    source: { poll: { connection: mem, object: contact, every: 24h } }\n"
               "    sink: { push: { connection: sink, object: contact } }\n"
               "    map:\n" +
               m.map,
           m.says, true});
    size_t refused = count_of(host.log_text(), "reload refused");
    for (const auto &b : broken) {
      INFO("config: " << b.name);
      const size_t logged_before = host.log_text().size();
      host.write_config(b.text);
      const auto start = std::chrono::steady_clock::now();
      REQUIRE(::kill(host.pid, SIGHUP) == 0);
      bool seen = false;
      while (!seen && std::chrono::steady_clock::now() - start < 10s) {
        seen = count_of(host.log_text(), "reload refused") > refused;
        if (!seen) std::this_thread::sleep_for(20ms);
      }
      CHECK(seen);
      CHECK(std::chrono::steady_clock::now() - start < 5s);
      refused = count_of(host.log_text(), "reload refused");
      CHECK_THAT(host.log_text(), Catch::Contains(b.logged));
      if (b.own_line) {
        // The refusal's lines are all written by the time the last one is.
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (host.log_text().find("the running configuration stays in force", logged_before) ==
                   std::string::npos &&
               std::chrono::steady_clock::now() < deadline)
          std::this_thread::sleep_for(20ms);
        const std::string own = host.log_text().substr(logged_before);
        const auto line_at = own.find("reload refused: " + host.config.string() + ":");
        REQUIRE(line_at != std::string::npos);
        CHECK_THAT(own.substr(line_at, own.find('\n', line_at) - line_at),
                   Catch::Contains(b.logged));
        CHECK(own.size() < 5000);
      }
      survives(host);
      // The old configuration still holds: its admin token and its other pipelines.
      CHECK(host.get_admin("/pipelines/hubhooks").status == 200);
      CHECK(host.get_admin("/pipelines/mapped").status == 404);
      CHECK(host.send(request("POST", "/hooks/odoo", odoo_headers("wrong"), "{}")).status == 401);
    }
    host.write_config(base);
    CHECK_THAT(host.log_text(), !Catch::Contains("configuration reloaded"));
  }
}

TEST_CASE("broken mapping rules make crmhost validate exit 1 with a message, never crash",
          "[hostile]") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("crmhost-hostile-validate-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string head =
      "connections:\n"
      "  mem: { plugin: memory, settings: { webhook_secret: s3cret-s3cret } }\n"
      "allow_inline_secrets: true\n"
      "pipelines:\n"
      "  p:\n"
      "    source:\n"
      "      poll: { connection: mem, object: contact }\n"
      "    sink:\n"
      "      push: { connection: mem, object: contact }\n"
      "    map:\n";
  for (const auto &[name, map, says] : broken_maps()) {
    INFO("mapping: " << name);
    const auto file = dir / "c.yaml";
    std::ofstream(file) << head << map;
    const std::string command = std::string(CRMHOST_BINARY) + " validate --plugin-dir " +
                                CRMHOST_FIXTURE_DIR + " " + file.string() + " > " +
                                (dir / "out.txt").string() + " 2>&1";
    const auto start = std::chrono::steady_clock::now();
    const int status = std::system(command.c_str());
    std::ifstream in(dir / "out.txt");
    const std::string output(std::istreambuf_iterator<char>(in), {});
    INFO(output.substr(0, 2000));
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    CHECK_THAT(output, Catch::Contains("c.yaml:") && Catch::Contains(says));
    CHECK(output.size() < 5000);  // no echo of 100,000 characters
    CHECK(std::chrono::steady_clock::now() - start < 5s);
  }
  std::filesystem::remove_all(dir);
}
