// `crmhost run` as a real process: signals, reloads and a graceful stop, observed through the
// SQLite store it writes (opened here concurrently, as an operator's tool would).
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

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

// `crmhost run --config CONFIG` like testing::spawn_crmhost_run, but in `cwd` (CONFIG may be
// relative to it) and with `env` ("NAME=value") added to this process's environment, from which
// STATE_DIRECTORY is dropped (it moves the crash marker).
pid_t spawn_run(const char *binary, const std::string &config, const std::filesystem::path &log,
                const std::filesystem::path &cwd, const std::vector<std::string> &env) {
  std::vector<std::string> entries;
  for (char **e = environ; *e; ++e)
    if (std::string(*e).rfind("STATE_DIRECTORY=", 0) != 0) entries.emplace_back(*e);
  entries.insert(entries.end(), env.begin(), env.end());
  std::vector<char *> envp;
  for (auto &entry : entries) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::string run = "run", flag = "--config", config_arg = config, program = binary;
  char *argv[] = {program.data(), run.data(), flag.data(), config_arg.data(), nullptr};
  // Everything is built before fork: the child only makes async-signal-safe calls.
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execve(binary, argv, envp.data());
    ::_exit(127);
  }
  return pid;
}

// `crmhost ARGS...` to completion with stdout and stderr in `log` and `env` ("NAME=value") added
// to this process's environment, from which STATE_DIRECTORY and CRMHOST_TEST_CRASH_INIT are
// dropped; returns the exit status, or 128 + the signal that ended it.
int run_crmhost(const std::vector<std::string> &args, const std::filesystem::path &log,
                const std::vector<std::string> &env) {
  std::vector<std::string> entries;
  for (char **e = environ; *e; ++e) {
    const std::string entry(*e);
    if (entry.rfind("STATE_DIRECTORY=", 0) != 0 && entry.rfind("CRMHOST_TEST_CRASH_INIT=", 0) != 0)
      entries.push_back(entry);
  }
  entries.insert(entries.end(), env.begin(), env.end());
  std::vector<char *> envp;
  for (auto &entry : entries) envp.push_back(entry.data());
  envp.push_back(nullptr);
  std::vector<std::string> words = {CRMHOST_BINARY};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char *> argv;
  for (auto &word : words) argv.push_back(word.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execve(CRMHOST_BINARY, argv.data(), envp.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string file_text(const std::filesystem::path &file) {
  std::ifstream in(file);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct RunningHost {
  std::filesystem::path dir, config, log, db_path;
  pid_t pid = -1;
  std::string store;             // the store: line's value; empty: sqlite://<db_path>
  std::filesystem::path cwd;     // where crmhost runs; empty: here
  std::string config_arg;        // what --config says; empty: the config's absolute path
  std::vector<std::string> env;  // more environment, "NAME=value"

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
    out << "store: " << (store.empty() ? "sqlite://" + db_path.string() : store) << "\n"
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
    pid = cwd.empty() && config_arg.empty() && env.empty()
              ? testing::spawn_crmhost_run(CRMHOST_BINARY, config, log)
              : spawn_run(CRMHOST_BINARY, config_arg.empty() ? config.string() : config_arg, log,
                          cwd, env);
    REQUIRE(pid >= 0);
  }

  // Exit status after `signal`, or -1 if it did not exit within `limit`.
  int stop_with(int signal, std::chrono::milliseconds limit = 20s) {
    // kill(-1, ...) would signal every process this user may signal: never with no host.
    if (pid <= 0) return -1;
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

TEST_CASE("a plugin crashing in create at every start is named in $STATE_DIRECTORY at each start",
          "[run]") {
  RunningHost host("crash-create");
  const auto state = host.dir / "state";
  std::filesystem::create_directories(state);
  host.env = {"STATE_DIRECTORY=" + state.string()};
  const std::string line =
      "crmhost: fatal signal SIGSEGV in plugin \"memory-sdk\" during its create call for "
      "connection \"dst2\"";
  const auto marker = [&] {
    std::ifstream in(state / "last-crash");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  host.dst2_extra = "      crash_in: create\n";  // at start, before any pipeline runs
  host.write_config(0, pipeline_yaml("p", "dst2"));
  host.start();
  CHECK(host.stop_with(0 /* just wait */) == 128 + SIGSEGV);
  CHECK_THAT(host.log_text(), Catch::Contains(line));
  CHECK_THAT(marker(), Catch::Contains(line));
  CHECK_FALSE(std::filesystem::exists(host.db_path.string() + ".last-crash"));  // the unit's place

  // The next start, crashing again, says first why the previous one ended: a crash loop is named.
  host.start();
  CHECK(host.stop_with(0 /* just wait */) == 128 + SIGSEGV);
  auto log = host.log_text();
  CHECK_THAT(log, Catch::Contains("the previous crmhost process crashed: " + line));
  CHECK_THAT(log.substr(log.find("the previous crmhost process crashed")),
             Catch::Contains("\n" + line));
  CHECK_THAT(marker(), Catch::Contains(line));

  host.dst2_extra = "";
  host.write_config(0, pipeline_yaml("p", "dst2"));
  host.start();
  REQUIRE(
      eventually([&] { return host.log_text().find("pipeline p started") != std::string::npos; }));
  CHECK_THAT(host.log_text(), Catch::Contains("the previous crmhost process crashed: " + line));
  CHECK(marker().empty());  // taken, and armed again for this process
  CHECK(host.stop_with(SIGTERM) == 0);
  CHECK(marker().empty());
}

TEST_CASE("a plugin crashing in init at start is named in the log and again at the next start",
          "[run]") {
  RunningHost host("crash-init");
  // The crash-init fixture (in the fixture directory every host here loads) raises SIGSEGV in
  // its init when this is set; the plugin is loaded before any connection is created.
  host.env = {"CRMHOST_TEST_CRASH_INIT=1"};
  const std::string line =
      "crmhost: fatal signal SIGSEGV in plugin \"crash-init\" during its init call";
  host.write_config(0, pipeline_yaml("p", "dst"));
  host.start();
  CHECK(host.stop_with(0 /* just wait */) == 128 + SIGSEGV);
  CHECK_THAT(host.log_text(), Catch::Contains(line));
  CHECK_THAT(file_text(host.db_path.string() + ".last-crash"), Catch::Contains(line));

  host.env = {};
  host.start();
  REQUIRE(
      eventually([&] { return host.log_text().find("pipeline p started") != std::string::npos; }));
  CHECK_THAT(host.log_text(), Catch::Contains("the previous crmhost process crashed: " + line));
  CHECK(host.stop_with(SIGTERM) == 0);
}

TEST_CASE("crmhost validate names a plugin crashing in init and keeps run's crash line for run",
          "[run]") {
  // validate is the unit's ExecStartPre: it loads every plugin (init, describe) before each
  // start, under the same StateDirectory.
  RunningHost host("validate-crash");
  const auto state = host.dir / "state";
  std::filesystem::create_directories(state);
  const std::string state_env = "STATE_DIRECTORY=" + state.string();
  const auto out = host.dir / "validate.txt";
  const std::string line =
      "crmhost: fatal signal SIGSEGV in plugin \"crash-init\" during its init call";
  host.write_config(0, pipeline_yaml("p", "dst"));
  const std::vector<std::string> validate = {"validate", host.config.string()};

  REQUIRE(run_crmhost(validate, out, {state_env}) == 0);
  CHECK_FALSE(std::filesystem::exists(state / "last-crash"));

  // A crash in init during validate: named on stderr and recorded for the next start.
  CHECK(run_crmhost(validate, out, {state_env, "CRMHOST_TEST_CRASH_INIT=1"}) == 128 + SIGSEGV);
  CHECK_THAT(file_text(out), Catch::Contains(line));
  CHECK_THAT(file_text(state / "last-crash"), Catch::Contains(line));
  // A validate that does not crash leaves the line where it is: run, after it, says it.
  CHECK(run_crmhost(validate, out, {state_env}) == 0);
  CHECK_THAT(file_text(state / "last-crash"), Catch::Contains(line));
  host.env = {state_env};
  host.start();
  REQUIRE(
      eventually([&] { return host.log_text().find("pipeline p started") != std::string::npos; }));
  CHECK_THAT(host.log_text(), Catch::Contains("the previous crmhost process crashed: " + line));
  CHECK(file_text(state / "last-crash").empty());
  CHECK(host.stop_with(SIGTERM) == 0);

  // The same when run itself crashed: the validate of the next start keeps run's line.
  host.env = {state_env, "CRMHOST_TEST_CRASH_INIT=1"};
  host.start();
  CHECK(host.stop_with(0 /* just wait */) == 128 + SIGSEGV);
  CHECK(run_crmhost(validate, out, {state_env}) == 0);
  CHECK_THAT(file_text(state / "last-crash"), Catch::Contains(line));

  // Outside systemd, validate records it where run would: beside the SQLite store.
  CHECK(run_crmhost(validate, out, {"CRMHOST_TEST_CRASH_INIT=1"}) == 128 + SIGSEGV);
  CHECK_THAT(file_text(out), Catch::Contains(line));
  CHECK_THAT(file_text(host.db_path.string() + ".last-crash"), Catch::Contains(line));
}

TEST_CASE("crmhost run opens a relative SQLite path beside its config and logs it absolute",
          "[run]") {
  RunningHost host("relative-store");
  const auto work = host.dir / "work";
  std::filesystem::create_directories(work);
  host.store = "sqlite://state.db";  // relative to the config file's directory
  host.cwd = work;                   // not the working directory
  host.config_arg = "../crmhost.yaml";
  host.write_config(2, pipeline_yaml("p", "dst"));
  host.start();
  REQUIRE(eventually([&] { return host.log_text().find("crmhost running") != std::string::npos; }));
  const auto expected = std::filesystem::canonical(host.dir) / "state.db";
  CHECK_THAT(host.log_text(), Catch::Contains("store: sqlite://" + expected.string() + "\n"));
  CHECK(std::filesystem::exists(expected));
  CHECK_FALSE(std::filesystem::exists(work / "state.db"));
  CHECK(host.stop_with(SIGTERM) == 0);
}

TEST_CASE("the systemd unit parses: systemd-analyze verify says nothing about it", "[run]") {
  std::string analyze;
  for (const char *dir : {"/usr/bin", "/bin", "/usr/local/bin"})
    if (::access((std::string(dir) + "/systemd-analyze").c_str(), X_OK) == 0) {
      analyze = std::string(dir) + "/systemd-analyze";
      break;
    }
  if (analyze.empty()) {
    WARN("systemd-analyze is not installed: config/systemd/crmhost.service not checked");
    return;
  }
  // verify also checks that the commands exist: the unit's /usr/bin/crmhost is this build's.
  const auto dir = testing::fresh_test_dir("unit");
  std::ifstream in(std::filesystem::path(CRMHOST_SOURCE_DIR) / "config/systemd/crmhost.service");
  REQUIRE(in);
  std::string unit(std::istreambuf_iterator<char>(in), {});
  for (size_t at; (at = unit.find("/usr/bin/crmhost ")) != std::string::npos;)
    unit.replace(at, std::strlen("/usr/bin/crmhost"), CRMHOST_BINARY);
  const auto file = dir / "crmhost.service";
  std::ofstream(file) << unit;
  std::string output;
  FILE *pipe = ::popen((analyze + " verify " + file.string() + " 2>&1").c_str(), "r");
  REQUIRE(pipe);
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  const int status = ::pclose(pipe);
  std::filesystem::remove_all(dir);
  INFO(output);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // Every problem with the unit (an unknown key, a bad value, a missing command) names it.
  CHECK_THAT(output, !Catch::Contains("crmhost.service"));
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

TEST_CASE("a reload whose connector takes 3 s to create leaves /healthz and webhooks answered",
          "[run]") {
  // The reload (YAML, dlopen, the plugin's create) runs on the control thread; the network
  // thread only hands it the SIGHUP.
  RunningHost host("slow-reload");
  const std::string uri = "sqlite://" + host.db_path.string();
  const std::string hooks =
      "  hooks:\n"
      "    source:\n"
      "      webhook: { connection: src, path: /hooks/memory }\n"
      "    sink:\n"
      "      push: { connection: dst, object: contact, match_on: email }\n";
  host.write_config(0, hooks);
  host.start();
  REQUIRE(eventually([&] {
    try {
      return http_call(host.port, "GET", "/healthz").first == 200;
    } catch (const std::exception &) {
      return false;
    }
  }));
  // After dst2's settings, at two spaces in: one more connection, whose create (any variant of
  // variant_plugin.c honours create_delay_ms) takes 3 s, and a pipeline that needs it.
  host.dst2_extra = "  slow:\n    plugin: old-layout\n    settings: { create_delay_ms: 3000 }\n";
  host.write_config(0, hooks +
                           "  slowpoll:\n"
                           "    source:\n"
                           "      poll: { connection: slow, object: contact, every: 1h }\n"
                           "    sink:\n"
                           "      push: { connection: dst, object: contact, match_on: email }\n");
  const auto hup = std::chrono::steady_clock::now();
  REQUIRE(::kill(host.pid, SIGHUP) == 0);
  REQUIRE(eventually([&] {
    return host.log_text().find("SIGHUP: reloading the configuration") != std::string::npos;
  }));
  const auto seconds_of = [](auto &&call) {
    const auto start = std::chrono::steady_clock::now();
    const int status = call();
    return std::pair{
        status, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
  };
  double worst_health = 0, worst_webhook = 0;
  int delivered = 0;
  while (std::chrono::steady_clock::now() - hup < 2s) {  // of the create's 3
    const auto [health, health_s] =
        seconds_of([&] { return http_call(host.port, "GET", "/healthz").first; });
    CHECK(health == 200);
    const std::string id = "during-" + std::to_string(delivered);
    const auto [hook, hook_s] = seconds_of([&] {
      return http_call(host.port, "POST", "/hooks/memory",
                       R"([{"object":"contact","id":")" + id + R"(","data":{"email":")" + id +
                           R"(@example.com"}}])")
          .first;
    });
    CHECK(hook == 200);
    delivered += hook == 200;
    worst_health = std::max(worst_health, health_s);
    worst_webhook = std::max(worst_webhook, hook_s);
    std::this_thread::sleep_for(50ms);
  }
  // The answers above came while the reload ran: it had not finished.
  CHECK_THAT(host.log_text(), !Catch::Contains("configuration reloaded"));
  INFO("slowest /healthz " << worst_health << " s, slowest webhook " << worst_webhook << " s");
  CHECK(delivered >= 5);
  CHECK(worst_health < 0.5);
  CHECK(worst_webhook < 0.5);

  REQUIRE(eventually(
      [&] { return host.log_text().find("configuration reloaded") != std::string::npos; }));
  CHECK(std::chrono::steady_clock::now() - hup >= 2900ms);  // the create did take its 3 s
  CHECK_THAT(host.log_text(), Catch::Contains("pipeline slowpoll started") &&
                                  !Catch::Contains("reload: ") &&
                                  !Catch::Contains("reload refused"));
  // The new pipeline runs (the fixture's poll gives one record), and every delivery made during
  // the reload was stored and pushed.
  REQUIRE(eventually([&] { return count(uri, "slowpoll", store::EventStatus::done) == 1; }));
  REQUIRE(eventually([&] { return count(uri, "hooks", store::EventStatus::done) == delivered; }));
  CHECK(host.stop_with(SIGTERM) == 0);
}
