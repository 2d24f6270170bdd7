// Durable webhook ingest, end to end over loopback: HTTP/1.1 keep-alive clients POST 1 KB
// deliveries to a crmhost router (Beast server -> memory plugin's webhook verification -> SQLite
// commit -> 200). Reports webhooks/s and latency percentiles, first at full speed, then at a
// fixed offered rate.
//   webhook_bench [--seconds N] [--clients N] [--rate R] [--fixture-dir DIR] [--dir DIR]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <unistd.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "admin/admin_api.hpp"
#include "plugins/plugin_registry.hpp"
#include "util/logging.hpp"

using namespace crmhost;
using Clock = std::chrono::steady_clock;
namespace http = boost::beast::http;

namespace {

struct Result {
  size_t ok = 0, failed = 0;
  std::vector<double> latencies_ms;
};

// One keep-alive client; `interval` > 0 paces it to a fixed rate (open-loop timing).
Result client(uint16_t port, int index, Clock::time_point until,
              std::chrono::nanoseconds interval) {
  Result r;
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket socket(io);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  boost::beast::flat_buffer buffer;
  const std::string padding(900, 'x');
  auto next = Clock::now();
  for (uint64_t n = 0; Clock::now() < until; ++n) {
    if (interval.count()) {
      std::this_thread::sleep_until(next);
      next += interval;
    }
    http::request<http::string_body> req{http::verb::post, "/hooks/bench", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set("X-Memory-Secret", "s3cret-s3cret");
    req.body() = R"([{"object":"contact","id":"c)" + std::to_string(index) + "-" +
                 std::to_string(n) + R"(","data":{"email":"u@example.com","pad":")" + padding +
                 "\"}}]";
    req.prepare_payload();
    const auto start = interval.count() ? next - interval : Clock::now();
    http::write(socket, req);
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    r.latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    (res.result_int() == 200 ? r.ok : r.failed)++;
  }
  return r;
}

void run_phase(const char *name, uint16_t port, int clients, double seconds, double rate) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(seconds));
  const auto interval = rate > 0
                            ? std::chrono::nanoseconds(static_cast<int64_t>(1e9 * clients / rate))
                            : std::chrono::nanoseconds(0);
  std::vector<Result> results(clients);
  std::vector<std::thread> threads;
  const auto started = Clock::now();
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&, i] { results[i] = client(port, i, until, interval); });
  for (auto &t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  Result all;
  for (auto &r : results) {
    all.ok += r.ok;
    all.failed += r.failed;
    all.latencies_ms.insert(all.latencies_ms.end(), r.latencies_ms.begin(), r.latencies_ms.end());
  }
  std::sort(all.latencies_ms.begin(), all.latencies_ms.end());
  auto pct = [&](double p) {
    return all.latencies_ms.empty()
               ? 0.0
               : all.latencies_ms[static_cast<size_t>(p * (all.latencies_ms.size() - 1))];
  };
  std::printf("| %-22s | %7d | %10.0f | %9.0f | %7.2f | %7.2f | %7.2f | %6zu |\n", name, clients,
              rate, static_cast<double>(all.ok) / elapsed, pct(0.50), pct(0.99), pct(0.999),
              all.failed);
}

}  // namespace

int main(int argc, char **argv) {
  double seconds = 5, rate = 5000;
  int clients = 32;
  std::string fixture_dir = CRMHOST_FIXTURE_DIR;
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("webhook-bench-" + std::to_string(::getpid()));
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--seconds")
      seconds = std::stod(argv[i + 1]);
    else if (a == "--clients")
      clients = std::stoi(argv[i + 1]);
    else if (a == "--rate")
      rate = std::stod(argv[i + 1]);
    else if (a == "--fixture-dir")
      fixture_dir = argv[i + 1];
    else if (a == "--dir")
      dir = argv[i + 1];
  }
  logging::setup("error");
  std::filesystem::remove_all(dir);
  auto registry = std::make_shared<plugins::PluginRegistry>();
  registry->load_file(std::filesystem::path(fixture_dir) / "memory.so");
  registry->load_file(std::filesystem::path(fixture_dir) / "memory-sdk.so");
  std::shared_ptr<store::Store> db = store::open_store("sqlite://" + (dir / "state.db").string());

  config::Config c;
  c.plugin_workers = 2;
  c.connections = {
      {"src", {"src", "memory", R"({"webhook_secret":"s3cret-s3cret"})", std::nullopt, {}}},
      {"dst", {"dst", "memory-sdk", R"({"webhook_secret":"s3cret-s3cret"})", std::nullopt, {}}}};
  config::PipelineConfig p;
  p.name = "bench";
  p.webhook = config::WebhookSource{"src", "/hooks/bench", {}};
  p.sink = config::PushSink{"dst", "contact", "upsert", std::string("email"), "source_wins", {}};
  c.pipelines = {{p.name, p}};
  pipeline::Engine engine(c, registry, db);
  engine.start();
  engine.pause_all();  // measure ingest alone: nothing is pushed while the bench runs

  boost::asio::io_context io;
  // Handlers run the plugin's verification; the commit is awaited without holding one.
  boost::asio::thread_pool handlers(2);
  admin::RouterContext router{engine, *db, ""};
  net::ServerOptions options;
  options.listen = {"127.0.0.1:0"};
  options.max_connections = 4096;
  net::HttpServer server(io, handlers, options,
                         [&](const net::HttpRequest &r, net::Respond respond) {
                           admin::route_async(r, router, std::move(respond));
                         });
  server.start();
  std::thread io_thread([&] { io.run(); });
  const uint16_t port = server.ports().at(0);

  std::printf(
      "| phase                  | clients | offered/s  | webhooks/s | p50 ms  | p99 ms  | p99.9 ms "
      "| errors |\n");
  std::printf(
      "|------------------------|--------:|-----------:|-----------:|--------:|--------:|--------:|"
      "-------:|\n");
  run_phase("full speed", port, clients, seconds, 0);
  run_phase("fixed rate", port, clients, seconds, rate);

  server.stop();
  io.stop();
  io_thread.join();
  handlers.join();
  engine.stop();
  db.reset();
  std::filesystem::remove_all(dir);
  return 0;
}
