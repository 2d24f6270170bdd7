// `crmhost run` as a real process: signals, reloads and a graceful stop, observed through the
// SQLite store it writes (opened here concurrently, as an operator's tool would).
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

#include "../support/spawn.hpp"
#include "engine_support.hpp"

#include "store/store.hpp"

using namespace crmhost;
using namespace std::chrono_literals;

namespace {

std::string seed(int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += "        - { object: contact, id: \"c" + std::to_string(i) + "\", data: { email: u" +
           std::to_string(i) + "@example.com } }\n";
  return out;
}

std::string pipeline_yaml(const std::string &name, const std::string &sink) {
  return "  " + name +
         ":\n"
         "    source:\n"
         "      poll: { connection: src, object: contact, every: 1h, page_size: 10 }\n"
         "    sink:\n"
         "      push: { connection: " +
         sink +
         ", object: contact, match_on: email }\n"
         "    retry: { attempts: 5, backoff: 10ms..50ms }\n"
         "    batch_size: 5\n";
}

// A loopback port nobody listens on right now.
uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor probe(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return probe.local_endpoint().port();
}

// One HTTP/1.1 exchange on a fresh loopback connection; returns status and body.
std::pair<int, std::string> http_call(uint16_t port, const std::string &method,
                                      const std::string &target, const std::string &body = "",
                                      const std::string &secret = "s3cret-s3cret",
                                      const std::string &bearer = "") {
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  boost::beast::http::request<boost::beast::http::string_body> request{
      boost::beast::http::string_to_verb(method), target, 11};
  request.set(boost::beast::http::field::host, "127.0.0.1");
  request.set("X-Memory-Secret", secret);
  if (!bearer.empty()) request.set(boost::beast::http::field::authorization, "Bearer " + bearer);
  request.body() = body;
  request.prepare_payload();
  boost::beast::http::write(socket, request);
  boost::beast::flat_buffer buffer;
  boost::beast::http::response<boost::beast::http::string_body> response;
  boost::beast::http::read(socket, buffer, response);
  return {response.result_int(), response.body()};
}

struct RunningHost {
  std::filesystem::path dir, config, log, db_path;
  pid_t pid = -1;

  explicit RunningHost(const std::string &name) {
    dir = std::filesystem::temp_directory_path() /
          ("crmhost-run-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    config = dir / "crmhost.yaml";
    log = dir / "crmhost.log";
    db_path = dir / "state.db";
  }
  ~RunningHost() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    std::filesystem::remove_all(dir);
  }

  uint16_t port = free_port();
  std::string dst_extra, dst2_extra;  // more settings lines for dst and dst2 (6 spaces in)

  // `top`: more top-level settings.
  void write_config(int seeded, const std::string &pipelines, int push_delay_ms = 0,
                    const std::string &top = "") {
    std::ofstream out(config);
    out << "store: sqlite://" << db_path.string() << "\n"
        << "listen: 127.0.0.1:" << port << "\n"
        << "plugin_dir: " << CRMHOST_FIXTURE_DIR << "\n"
        << "log: { level: info }\n"
        << top << "shutdown_grace: 10s\n"
        << "connections:\n"
        << "  src:\n    plugin: memory\n    settings:\n      webhook_secret: s3cret-s3cret\n"
        << (seeded ? "      seed:\n" + seed(seeded) : std::string())
        << "  dst:\n    plugin: memory-sdk\n    settings:\n      webhook_secret: s3cret-s3cret\n"
        << "      push_delay_ms: " << push_delay_ms << "\n"
        << dst_extra
        << "  dst2:\n    plugin: memory-sdk\n    settings:\n      webhook_secret: s3cret-s3cret\n"
        << dst2_extra << "pipelines:\n"
        << pipelines;
  }

  void start() {
    std::filesystem::remove(log);  // never read the previous process's log as this one's
    pid = testing::spawn_crmhost_run(CRMHOST_BINARY, config, log);
    REQUIRE(pid >= 0);
  }

  // Exit status after `signal`, or -1 if it did not exit within `limit`.
  int stop_with(int signal, std::chrono::milliseconds limit = 20s) {
    ::kill(pid, signal);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

  bool alive() const { return pid > 0 && ::kill(pid, 0) == 0; }

  std::string log_text() const {
    std::ifstream in(log);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
};

int64_t count(const std::string &db_uri, const std::string &pipeline, store::EventStatus status) {
  store::StoreOptions options;
  options.apply_migrations = false;
  try {
    auto db = store::open_store(db_uri, options);
    int64_t n = 0;
    for (const auto &c : db->count_by_status(pipeline))
      if (c.status == status) n += c.count;
    return n;
  } catch (const std::exception &) {
    return -1;  // not created yet
  }
}

// A process takes longer to start and settle than an engine in the test's own process.
template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds limit = 20s) {
  return testing::eventually(done, limit, 50ms);
}

}  // namespace

TEST_CASE("crmhost run refuses an invalid config with file:line:column messages", "[run]") {
  RunningHost host("invalid");
  host.write_config(1, pipeline_yaml("p", "nowhere"));
  host.start();
  CHECK(host.stop_with(0 /* just wait */) == 1);
  CHECK_THAT(host.log_text(), Catch::Contains("crmhost.yaml:") &&
                                  Catch::Contains("unknown connection \"nowhere\"") &&
                                  Catch::Contains("not starting"));
}

TEST_CASE("crmhost run exits 1 with the plugin's message when a connector refuses its settings",
          "[run]") {
  RunningHost host("refused");
  host.dst_extra = "      refuse_settings: the portal rejects this token\n";
  host.write_config(3, pipeline_yaml("p", "dst"));
  host.start();
  CHECK(host.stop_with(0 /* just wait */) == 1);  // not 139: no crash on the way out
  CHECK_THAT(host.log_text(),
             Catch::Contains("connection dst: ") &&
                 Catch::Contains("settings.refuse_settings: the portal rejects this token"));
}

TEST_CASE("a plugin crash names the call in the log; the next start says so and closes the run",
          "[run]") {
  RunningHost host("crash");
  const std::string uri = "sqlite://" + host.db_path.string();
  // A poll source whose plugin crashes the process in poll.
  const std::string crashing =
      "  crashy:\n"
      "    source:\n"
      "      poll: { connection: dst2, object: contact, every: 1h }\n"
      "    sink:\n"
      "      push: { connection: dst, object: contact, match_on: email }\n";
  host.dst2_extra = "      crash_in: poll\n";
  host.write_config(0, crashing);
  host.start();
  CHECK(host.stop_with(0 /* just wait */) == 128 + SIGSEGV);
  CHECK_THAT(host.log_text(), Catch::Contains("crmhost: fatal signal SIGSEGV in plugin "
                                              "\"memory-sdk\" during its poll call for "
                                              "connection \"dst2\""));
  {
    store::StoreOptions options;
    options.apply_migrations = false;
    auto db = store::open_store(uri, options);
    const auto runs = db->list_sync_runs(std::string("crashy"), 10);
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].status == store::SyncRunStatus::running);  // left open by the crash
  }

  host.dst2_extra = "";
  host.write_config(0, crashing);
  host.start();
  REQUIRE(eventually([&] {
    return host.log_text().find("configuration") != std::string::npos ||
           host.log_text().find("pipeline crashy started") != std::string::npos;
  }));
  REQUIRE(eventually([&] {
    store::StoreOptions options;
    options.apply_migrations = false;
    auto db = store::open_store(uri, options);
    const auto runs = db->list_sync_runs(std::string("crashy"), 10);
    return runs.size() == 2 && runs[0].status == store::SyncRunStatus::succeeded;
  }));
  const auto log = host.log_text();
  CHECK_THAT(log, Catch::Contains("the previous crmhost process crashed: crmhost: fatal signal "
                                  "SIGSEGV in plugin \"memory-sdk\" during its poll call") &&
                      Catch::Contains("1 sync run(s) left running by a process that ended closed "
                                      "as interrupted"));
  {
    store::StoreOptions options;
    options.apply_migrations = false;
    auto db = store::open_store(uri, options);
    const auto runs = db->list_sync_runs(std::string("crashy"), 10);
    REQUIRE(runs.size() == 2);
    CHECK(runs[1].status == store::SyncRunStatus::interrupted);
    CHECK_THAT(runs[1].error, Catch::Contains("ended without finishing it"));
  }
  CHECK(host.stop_with(SIGTERM) == 0);
  // A clean stop leaves nothing for the next start to report.
  host.start();
  REQUIRE(eventually(
      [&] { return host.log_text().find("pipeline crashy started") != std::string::npos; }));
  CHECK_THAT(host.log_text(), !Catch::Contains("previous crmhost process crashed"));
  CHECK(host.stop_with(SIGTERM) == 0);
}

TEST_CASE("SIGTERM mid-batch stops gracefully with exit 0 and loses nothing", "[run]") {
  RunningHost host("sigterm");
  const std::string uri = "sqlite://" + host.db_path.string();
  host.write_config(30, pipeline_yaml("p", "dst"), 60);
  host.start();
  REQUIRE(eventually([&] { return count(uri, "p", store::EventStatus::done) >= 5; }));
  CHECK(host.stop_with(SIGTERM) == 0);
  CHECK_THAT(host.log_text(),
             Catch::Contains("SIGTERM: stopping") && Catch::Contains("crmhost stopped"));
  const int64_t done = count(uri, "p", store::EventStatus::done);
  CHECK(done < 30);
  CHECK(count(uri, "p", store::EventStatus::in_flight) == 0);  // claims handed back
  CHECK(done + count(uri, "p", store::EventStatus::pending) +
            count(uri, "p", store::EventStatus::failed) ==
        30);

  host.write_config(30, pipeline_yaml("p", "dst"));
  host.start();
  REQUIRE(eventually([&] { return count(uri, "p", store::EventStatus::done) == 30; }));
  CHECK(host.stop_with(SIGINT) == 0);
}

TEST_CASE("SIGHUP with a broken config keeps the running one and a valid one adds a pipeline",
          "[run]") {
  RunningHost host("sighup");
  const std::string uri = "sqlite://" + host.db_path.string();
  host.write_config(6, pipeline_yaml("first", "dst"));
  host.start();
  REQUIRE(eventually([&] { return count(uri, "first", store::EventStatus::done) == 6; }));

  {
    std::ofstream broken(host.config);
    broken << "pipelines: [this is: not valid\n";
  }
  ::kill(host.pid, SIGHUP);
  REQUIRE(eventually([&] { return host.log_text().find("reload refused") != std::string::npos; }));
  CHECK(host.alive());
  CHECK_THAT(host.log_text(), Catch::Contains("crmhost.yaml:2:1: YAML syntax error"));

  host.write_config(6, pipeline_yaml("first", "dst") + pipeline_yaml("second", "dst2"));
  ::kill(host.pid, SIGHUP);
  REQUIRE(eventually([&] { return count(uri, "second", store::EventStatus::done) == 6; }));
  CHECK_THAT(host.log_text(), Catch::Contains("pipeline second started") &&
                                  Catch::Contains("configuration reloaded"));
  // The unchanged pipeline was not restarted.
  CHECK_THAT(host.log_text(), !Catch::Contains("pipeline first stopped for reload"));
  CHECK(host.stop_with(SIGTERM) == 0);
}

TEST_CASE("SIGHUP applies new admin and metrics tokens at once", "[run]") {
  RunningHost host("sighup-tokens");
  const std::string first = "first-admin-token-0123", second = "second-admin-token-4567";
  host.write_config(0, pipeline_yaml("first", "dst"), 0, "admin_token: " + first + "\n");
  host.start();
  const auto status = [&](const std::string &target, const std::string &bearer) {
    try {
      return http_call(host.port, "GET", target, "", "", bearer).first;
    } catch (const std::exception &) {
      return 0;  // not listening yet
    }
  };
  REQUIRE(eventually([&] { return status("/pipelines", first) == 200; }));
  CHECK(status("/pipelines", second) == 401);
  CHECK(status("/metrics", "") == 200);

  host.write_config(
      0, pipeline_yaml("first", "dst"), 0,
      "admin_token: " + second + "\nmetrics_token: metrics-token-abcdef0123\nmax_body: 2MB\n");
  ::kill(host.pid, SIGHUP);
  REQUIRE(eventually([&] { return status("/pipelines", second) == 200; }));
  CHECK(status("/pipelines", first) == 401);
  CHECK(status("/metrics", "") == 401);
  CHECK(status("/metrics", "metrics-token-abcdef0123") == 200);
  REQUIRE(eventually(
      [&] { return host.log_text().find("configuration reloaded") != std::string::npos; }));
  const auto log = host.log_text();
  CHECK_THAT(log, Catch::Contains("max_body changed; it takes effect at the next start"));
  CHECK_THAT(log, !Catch::Contains("listen changed"));
  // Secrets stay out of the log.
  CHECK_THAT(log, !Catch::Contains(first) && !Catch::Contains(second) &&
                      !Catch::Contains("metrics-token-abcdef0123"));
  CHECK(host.stop_with(SIGTERM) == 0);
}

TEST_CASE("webhooks over HTTP are answered 2xx only once stored and survive a SIGKILL", "[run]") {
  RunningHost host("webhook");
  const std::string uri = "sqlite://" + host.db_path.string();
  const std::string pipelines =
      "  hooks:\n"
      "    source:\n"
      "      webhook: { connection: src, path: /hooks/memory }\n"
      "    sink:\n"
      "      push: { connection: dst, object: contact, match_on: email }\n";
  host.write_config(0, pipelines, 100000);  // the sink hangs: nothing gets pushed meanwhile
  host.start();
  REQUIRE(eventually([&] {
    try {
      return http_call(host.port, "GET", "/healthz").first == 200;
    } catch (const std::exception &) {
      return false;
    }
  }));
  CHECK(http_call(host.port, "GET", "/readyz").first == 200);
  const std::string body = R"([{"object":"contact","id":"k1","data":{"email":"k1@example.com"}},)"
                           R"({"object":"contact","id":"k2","data":{"email":"k2@example.com"}}])";
  CHECK(http_call(host.port, "POST", "/hooks/memory", body, "wrong-secret").first == 401);
  CHECK(http_call(host.port, "POST", "/hooks/memory", "[{oops", "s3cret-s3cret").first == 400);
  CHECK(http_call(host.port, "POST", "/hooks/nowhere", body).first == 404);
  CHECK(http_call(host.port, "POST", "/hooks/memory", body).first == 200);
  ::kill(host.pid, SIGKILL);  // right after the 2xx
  ::waitpid(host.pid, nullptr, 0);
  host.pid = -1;
  store::StoreOptions options;
  auto db = store::open_store(uri, options);
  auto events = db->list_events({std::string("hooks"), std::nullopt, 0, 10});
  REQUIRE(events.size() == 2);
  CHECK(events[0].source == store::EventSource::webhook);
  CHECK(events[0].request_id.size() == 32);
}
