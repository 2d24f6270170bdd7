// Crash safety: a child process enqueues and acknowledges; it is killed with SIGKILL at a random
// moment; after reopening, every acknowledged event must be in the store.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <random>
#include <set>
#include <thread>

#include "store_test_support.hpp"

using namespace crmhost::store;
using namespace crmhost::store::test;
using namespace std::chrono_literals;

namespace {

struct ChildRun {
  std::vector<std::string> acked;
  bool ready = false;
};

// Starts the child, lets it run for `run_for` after it is ready, kills it, and returns every
// complete "ack" line it wrote (including those still in the pipe when it died).
ChildRun run_and_kill(const std::string &uri, const std::string &schema, Millis run_for) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    const char *child = CRMHOST_STORE_CRASH_CHILD;
    if (schema.empty())
      execl(child, child, uri.c_str(), static_cast<char *>(nullptr));
    else
      execl(child, child, uri.c_str(), schema.c_str(), static_cast<char *>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  fcntl(fds[0], F_SETFL, O_NONBLOCK);

  ChildRun result;
  std::string buffer;
  auto drain = [&] {
    char chunk[65536];
    for (;;) {
      const ssize_t n = read(fds[0], chunk, sizeof chunk);
      if (n <= 0) return n == 0;  // true at EOF
      buffer.append(chunk, static_cast<std::size_t>(n));
      for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
        const std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        if (line == "ready")
          result.ready = true;
        else if (line.rfind("ack ", 0) == 0)
          result.acked.push_back(line.substr(4));
      }
    }
  };
  auto deadline = std::chrono::steady_clock::now() + 20s;  // start-up allowance
  bool eof = false;
  while (!eof && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fds[0], POLLIN, 0};
    poll(&p, 1, 10);
    const bool was_ready = result.ready;
    eof = drain();
    if (!was_ready && result.ready) deadline = std::chrono::steady_clock::now() + run_for;
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  fcntl(fds[0], F_SETFL, 0);
  while (!drain()) {
  }
  close(fds[0]);
  // A partial last line is ignored: it may be an acknowledgement cut short by the kill.
  return result;
}

}  // namespace

TEST_CASE("every acknowledged event survives SIGKILL of the producer", "[crash]") {
  TestDb db;
  db.open();  // create and migrate once, so the child starts producing at once
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> delay_ms(50, 400);
  std::set<std::string> all_acked;
  for (int round = 0; round < 6; ++round) {
    const ChildRun run = run_and_kill(db.uri(), db.pg_schema(), Millis(delay_ms(rng)));
    REQUIRE(run.ready);
    INFO("round " << round << ": " << run.acked.size() << " acknowledged");
    CHECK(run.acked.size() > 0);
    all_acked.insert(run.acked.begin(), run.acked.end());

    auto store = db.open();
    std::set<std::string> stored;
    EventQuery q;
    q.pipeline = "crash";
    q.limit = 5000;
    for (auto page = store->list_events(q); !page.empty(); page = store->list_events(q)) {
      for (const auto &e : page) stored.insert(e.dedupe_key);
      q.after_id = page.back().id;
    }
    std::size_t missing = 0;
    for (const auto &key : all_acked) missing += stored.count(key) ? 0 : 1;
    CHECK(missing == 0);
  }
}
