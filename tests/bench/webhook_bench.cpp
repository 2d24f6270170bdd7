// Durable webhook ingest, end to end over loopback: HTTP/1.1 keep-alive connections POST 1 KB
// deliveries to a crmhost router (Beast server -> memory plugin's webhook verification -> SQLite
// commit -> 200). Reports webhooks/s and latency percentiles, first at full speed, then at a
// fixed offered rate.
//   webhook_bench [--seconds N] [--clients N] [--rate R] [--rounds N] [--pipeline N]
//                 [--fixture-dir DIR] [--dir DIR]
// --rounds N repeats both phases N times and adds the median of each figure (the "median" rows
// have no error count: the rounds' rows have theirs).
// --pipeline N adds a phase where each connection writes N requests at once (HTTP/1.1
// pipelining): it shows the server's own capacity with the generator's per-request system calls
// amortised. Providers do not pipeline; the headline figures are the unpipelined phases.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "http_api/router.hpp"
#include "plugins/plugin_registry.hpp"
#include "util/logging.hpp"

using namespace crmhost;
using Clock = std::chrono::steady_clock;
namespace http = boost::beast::http;

namespace {

// --path: where the deliveries go; another path than the pipeline's measures the HTTP layer alone
// (the router answers 404 without a plugin or the store).
std::string &target_path() {
  static std::string path = "/hooks/bench";
  return path;
}

struct Result {
  size_t ok = 0, failed = 0;
  std::vector<double> latencies_ms;
};

// The load generator: `clients` keep-alive connections driven by one thread with Asio, as wrk
// does, so the generator's own thread switches do not eat the 2 cores the server is measured on.
// With `interval` > 0 each connection sends on a fixed schedule and latency counts from the
// scheduled time (open loop: a slow server cannot hide queueing).
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(boost::asio::io_context &io, int index, Clock::time_point until,
             std::chrono::nanoseconds interval, int depth, Result &result)
      : socket_(io),
        timer_(io),
        index_(index),
        until_(until),
        interval_(interval),
        depth_(depth),
        result_(result) {}

  void start(uint16_t port) {
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    socket_.set_option(boost::asio::ip::tcp::no_delay(true));
    next_ = Clock::now();
    send();
  }

 private:
  void send() {
    if (Clock::now() >= until_) return;
    if (interval_.count() && Clock::now() < next_) {
      timer_.expires_at(next_);
      timer_.async_wait(
          [self = shared_from_this()](boost::system::error_code) { self->send_now(); });
      return;
    }
    send_now();
  }

  void send_now() {
    started_ = interval_.count() ? next_ : Clock::now();
    next_ += interval_;
    // The request's bytes are written directly: a generator that builds Beast messages spends
    // the CPU the server is measured with. The id keeps a fixed width.
    char id[32];
    std::snprintf(id, sizeof id, "c%07d-%010llu", index_, static_cast<unsigned long long>(n_++));
    static const std::string body_head = R"([{"object":"contact","id":")";
    static const std::string body_tail =
        R"(","data":{"email":"u@example.com","pad":")" + std::string(900, 'x') + "\"}}]";
    wire_.clear();
    // depth > 1: HTTP/1.1 pipelining, `depth` requests per write (see --pipeline).
    for (int i = 0; i < depth_; ++i) {
      if (i)
        std::snprintf(id, sizeof id, "c%07d-%010llu", index_,
                      static_cast<unsigned long long>(n_++));
      const size_t body_size = body_head.size() + std::strlen(id) + body_tail.size();
      wire_ += "POST " + target_path() +
               " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Memory-Secret: s3cret-s3cret\r\n"
               "Content-Type: application/json\r\nContent-Length: " +
               std::to_string(body_size) + "\r\n\r\n" + body_head + id + body_tail;
    }
    awaiting_ = depth_;
    boost::asio::async_write(socket_, boost::asio::buffer(wire_),
                             [self = shared_from_this()](boost::system::error_code ec, size_t) {
                               if (ec) return self->fail();
                               self->read();
                             });
  }

  void read() {
    res_ = {};
    http::async_read(
        socket_, buffer_, res_,
        [self = shared_from_this()](boost::system::error_code e, size_t) { self->on_response(e); });
  }

  void on_response(boost::system::error_code ec) {
    if (ec) return fail();
    result_.latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - started_).count());
    // With --path elsewhere the expected answer is 404.
    const unsigned expected = target_path() == "/hooks/bench" ? 200 : 404;
    (res_.result_int() == expected ? result_.ok : result_.failed)++;
    if (--awaiting_ > 0) return read();
    send();
  }

  void fail() { ++result_.failed; }

  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  boost::beast::flat_buffer buffer_;
  std::string wire_;
  http::response<http::string_body> res_;
  int index_;
  uint64_t n_ = 0;
  Clock::time_point until_, next_, started_;
  std::chrono::nanoseconds interval_;
  int depth_;
  int awaiting_ = 0;
  Result &result_;
};

struct PhaseFigures {
  double per_second = 0, p50 = 0, p99 = 0, p999 = 0;
  double server_cpu_us = 0;  // CPU time of every thread but the generator's, per webhook
  double generator_cpu_us = 0;
};

void print_row(const char *name, int clients, double rate, const PhaseFigures &f, size_t failed) {
  std::printf("| %-22s | %7d | %10.0f | %9.0f | %7.2f | %7.2f | %7.2f | %6zu | %7.1f | %7.1f |\n",
              name, clients, rate, f.per_second, f.p50, f.p99, f.p999, failed, f.server_cpu_us,
              f.generator_cpu_us);
}

// CPU seconds used so far by the whole process and by the calling thread (the generator). CPU
// time per webhook is steadier than webhooks/s on a VM whose speed changes from second to second.
double process_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

PhaseFigures run_phase(const char *name, uint16_t port, int clients, double seconds, double rate,
                       int depth = 1) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(seconds));
  const auto interval = rate > 0
                            ? std::chrono::nanoseconds(static_cast<int64_t>(1e9 * clients / rate))
                            : std::chrono::nanoseconds(0);
  static int phase = 0;
  ++phase;
  Result all;
  boost::asio::io_context io{1};
  const auto started = Clock::now();
  const double process_cpu_before = process_cpu_seconds(),
               generator_cpu_before = thread_cpu_seconds();
  for (int i = 0; i < clients; ++i)
    std::make_shared<Connection>(io, phase * 100000 + i, until, interval, depth, all)->start(port);
  io.run();
  const double generator_cpu = thread_cpu_seconds() - generator_cpu_before;
  const double server_cpu = (process_cpu_seconds() - process_cpu_before) - generator_cpu;
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  std::sort(all.latencies_ms.begin(), all.latencies_ms.end());
  auto pct = [&](double p) {
    return all.latencies_ms.empty()
               ? 0.0
               : all.latencies_ms[static_cast<size_t>(p * (all.latencies_ms.size() - 1))];
  };
  const PhaseFigures figures{static_cast<double>(all.ok) / elapsed,
                             pct(0.50),
                             pct(0.99),
                             pct(0.999),
                             all.ok ? 1e6 * server_cpu / static_cast<double>(all.ok) : 0.0,
                             all.ok ? 1e6 * generator_cpu / static_cast<double>(all.ok) : 0.0};
  print_row(name, clients, rate, figures, all.failed);
  return figures;
}

// The median of each figure over rounds: this VM's speed changes from one second to the next.
PhaseFigures median_of(std::vector<PhaseFigures> rounds) {
  auto median = [&](double PhaseFigures::*field) {
    std::vector<double> v;
    for (const auto &r : rounds) v.push_back(r.*field);
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {median(&PhaseFigures::per_second),    median(&PhaseFigures::p50),
          median(&PhaseFigures::p99),           median(&PhaseFigures::p999),
          median(&PhaseFigures::server_cpu_us), median(&PhaseFigures::generator_cpu_us)};
}

}  // namespace

int main(int argc, char **argv) {
  double seconds = 5, rate = 5000;
  int clients = 32;
  int pipeline = 1;
  int rounds = 1;
  int handler_threads = 2;
  store::StoreOptions store_options;
  std::string fixture_dir = CRMHOST_FIXTURE_DIR;
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("webhook-bench-" + std::to_string(::getpid()));
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--seconds")
      seconds = std::stod(argv[i + 1]);
    else if (a == "--clients")
      clients = std::stoi(argv[i + 1]);
    else if (a == "--pipeline")
      pipeline = std::stoi(argv[i + 1]);
    else if (a == "--rounds")
      rounds = std::max(1, std::stoi(argv[i + 1]));
    else if (a == "--rate")
      rate = std::stod(argv[i + 1]);
    else if (a == "--fixture-dir")
      fixture_dir = argv[i + 1];
    else if (a == "--dir")
      dir = argv[i + 1];
    else if (a == "--handlers")
      handler_threads = std::stoi(argv[i + 1]);
    else if (a == "--path")
      target_path() = argv[i + 1];
    else if (a == "--sync")
      store_options.sqlite_synchronous = std::string(argv[i + 1]) == "normal"
                                             ? store::SqliteSync::normal
                                             : store::SqliteSync::full;
  }
  logging::setup("error");
  std::filesystem::remove_all(dir);
  auto registry = std::make_shared<plugins::PluginRegistry>();
  registry->load_file(std::filesystem::path(fixture_dir) / "memory.so");
  registry->load_file(std::filesystem::path(fixture_dir) / "memory-sdk.so");
  std::shared_ptr<store::Store> db =
      store::open_store("sqlite://" + (dir / "state.db").string(), store_options);

  config::Config c;
  c.plugin_workers = 2;
  c.connections = {
      {"src", {"src", "memory", R"({"webhook_secret":"s3cret-s3cret"})", std::nullopt, {}}},
      {"dst", {"dst", "memory-sdk", R"({"webhook_secret":"s3cret-s3cret"})", std::nullopt, {}}}};
  config::PipelineConfig p;
  p.name = "bench";
  p.webhook = config::WebhookSource{"src", "/hooks/bench", {}, {}};
  p.sink = config::PushSink{"dst",
                            "contact",
                            config::PushMode::upsert,
                            std::string("email"),
                            config::ConflictPolicy::source_wins,
                            {},
                            {"trim", "lower"},
                            config::DeletePolicy::keep_edited,
                            {}};
  c.pipelines = {{p.name, p}};
  pipeline::Engine engine(c, registry, db);
  engine.start();
  engine.pause_all();  // measure ingest alone: nothing is pushed while the bench runs

  boost::asio::io_context io{1};
  // Handlers run the plugin's verification; the commit is awaited without holding one.
  boost::asio::thread_pool handlers(handler_threads);
  http_api::RouterContext router{engine, *db, ""};
  net::ServerOptions options;
  options.listen = {"127.0.0.1:0"};
  options.max_connections = 4096;
  options.max_connections_per_client = 0;  // every generated connection comes from 127.0.0.1
  net::HttpServer server(io, handlers, options,
                         [&](const net::HttpRequest &r, net::Respond respond) {
                           http_api::route_async(r, router, std::move(respond));
                         });
  server.start();
  std::thread io_thread([&] { io.run(); });
  const uint16_t port = server.ports().at(0);

  std::printf(
      "| phase                  | clients | offered/s  | webhooks/s | p50 ms  | p99 ms  | p99.9 ms "
      "| errors | server CPU µs | generator CPU µs |\n");
  std::printf(
      "|------------------------|--------:|-----------:|-----------:|--------:|--------:|--------:|"
      "-------:|--------:|--------:|\n");
  std::vector<PhaseFigures> full, fixed;
  for (int round = 0; round < rounds; ++round) {
    full.push_back(run_phase("full speed", port, clients, seconds, 0));
    fixed.push_back(run_phase("fixed rate", port, clients, seconds, rate));
  }
  if (rounds > 1) {
    print_row("full speed, median", clients, 0, median_of(full), 0);
    print_row("fixed rate, median", clients, rate, median_of(fixed), 0);
  }
  if (pipeline > 1) {
    char name[48];
    std::snprintf(name, sizeof name, "pipelined %d", pipeline);
    run_phase(name, port, clients, seconds, 0, pipeline);
  }

  server.stop();
  io.stop();
  io_thread.join();
  handlers.join();
  engine.stop();
  db.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
