#pragma once
// A small Prometheus registry: labelled counters, gauges set at scrape time, and histograms, all
// thread-safe, rendered in the text exposition format (version 0.0.4).
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace crmhost::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Registry {
 public:
  // Declares a family once (name, help, type); repeated calls are harmless.
  void counter_add(const std::string &name, const std::string &help, const Labels &labels,
                   double amount = 1);
  void histogram_observe(const std::string &name, const std::string &help, const Labels &labels,
                         double value, const std::vector<double> &buckets);
  // Gauges computed when scraped (queue depth, pause state): the callback appends samples.
  using GaugeSource = std::function<void(std::vector<std::pair<Labels, double>> &)>;
  void gauge_source(const std::string &name, const std::string &help, GaugeSource source);
  void clear_gauge_sources();

  // The sum of a counter family's samples whose labels include every pair in `match` (0 when
  // there are none): lets the admin API report the same counts /metrics does.
  double counter_sum(const std::string &name, const Labels &match);

  // Exact quantiles over the latest observations (a ring of `kRecent` per name and key), for
  // figures such as p50/p95 latency that a histogram's buckets would only bound.
  static constexpr size_t kRecent = 2048;
  void recent_observe(const std::string &name, const std::string &key, double value);
  // The q-quantile (0 <= q <= 1, nearest rank) of the recent observations; nullopt when none.
  std::optional<double> recent_quantile(const std::string &name, const std::string &key, double q);

  std::string render();

 private:
  struct Histogram {
    std::vector<double> buckets;
    std::vector<uint64_t> counts;  // per bucket, cumulative at render
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    std::string help, type;
    std::map<Labels, double> values;
    std::map<Labels, Histogram> histograms;
    std::vector<GaugeSource> sources;
  };
  Family &family(const std::string &name, const std::string &help, const char *type);

  std::mutex mutex_;
  std::map<std::string, Family> families_;
  struct Ring {
    std::vector<double> values;
    size_t next = 0;
  };
  std::map<std::pair<std::string, std::string>, Ring> recent_;
};

// The process-wide registry the host's parts report to.
Registry &global();

// Buckets for latencies in seconds: 5 ms .. 5 min.
const std::vector<double> &latency_buckets();

}  // namespace crmhost::metrics
