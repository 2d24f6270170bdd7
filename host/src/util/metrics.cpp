#include "util/metrics.hpp"

#include <algorithm>
#include <cmath>

#include <cmath>
#include <sstream>

namespace crmhost::metrics {

namespace {

std::string escape(const std::string &value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string render_labels(const Labels &labels, const std::string &extra_key = "",
                          const std::string &extra_value = "") {
  if (labels.empty() && extra_key.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto &[key, value] : labels) {
    out += (first ? "" : ",") + key + "=\"" + escape(value) + "\"";
    first = false;
  }
  if (!extra_key.empty()) out += (first ? "" : ",") + extra_key + "=\"" + extra_value + "\"";
  return out + "}";
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}

}  // namespace

Registry::Family &Registry::family(const std::string &name, const std::string &help,
                                   const char *type) {
  auto &f = families_[name];
  if (f.type.empty()) {
    f.help = help;
    f.type = type;
  }
  return f;
}

double Registry::counter_sum(const std::string &name, const Labels &match) {
  std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end()) return 0;
  double sum = 0;
  for (const auto &[labels, value] : it->second.values) {
    const bool matches = std::all_of(match.begin(), match.end(), [&labels](const auto &pair) {
      return std::find(labels.begin(), labels.end(), pair) != labels.end();
    });
    if (matches) sum += value;
  }
  return sum;
}

void Registry::recent_observe(const std::string &name, const std::string &key, double value) {
  std::lock_guard lock(mutex_);
  auto &ring = recent_[{name, key}];
  if (ring.values.size() < kRecent) {
    ring.values.push_back(value);
  } else {
    ring.values[ring.next] = value;
    ring.next = (ring.next + 1) % kRecent;
  }
}

std::optional<double> Registry::recent_quantile(const std::string &name, const std::string &key,
                                                double q) {
  std::vector<double> values;
  {
    std::lock_guard lock(mutex_);
    auto it = recent_.find({name, key});
    if (it == recent_.end() || it->second.values.empty()) return std::nullopt;
    values = it->second.values;
  }
  q = std::clamp(q, 0.0, 1.0);
  // Nearest rank: the smallest value with at least q of the observations at or below it.
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
  const size_t index = rank == 0 ? 0 : rank - 1;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index),
                   values.end());
  return values[index];
}

void Registry::counter_add(const std::string &name, const std::string &help, const Labels &labels,
                           double amount) {
  std::lock_guard lock(mutex_);
  family(name, help, "counter").values[labels] += amount;
}

void Registry::histogram_observe(const std::string &name, const std::string &help,
                                 const Labels &labels, double value,
                                 const std::vector<double> &buckets) {
  std::lock_guard lock(mutex_);
  auto &h = family(name, help, "histogram").histograms[labels];
  if (h.buckets.empty()) {
    h.buckets = buckets;
    h.counts.assign(buckets.size(), 0);
  }
  for (size_t i = 0; i < h.buckets.size(); ++i)
    if (value <= h.buckets[i]) {
      ++h.counts[i];
      break;
    }
  h.sum += value;
  ++h.count;
}

void Registry::gauge_source(const std::string &name, const std::string &help, GaugeSource source) {
  std::lock_guard lock(mutex_);
  family(name, help, "gauge").sources.push_back(std::move(source));
}

void Registry::clear_gauge_sources() {
  std::lock_guard lock(mutex_);
  for (auto &[name, f] : families_) f.sources.clear();
}

std::string Registry::render() {
  std::lock_guard lock(mutex_);
  std::ostringstream out;
  for (auto &[name, f] : families_) {
    std::vector<std::pair<Labels, double>> gauges;
    for (auto &source : f.sources) source(gauges);
    if (f.values.empty() && f.histograms.empty() && gauges.empty()) continue;
    out << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << f.type << "\n";
    for (const auto &[labels, value] : f.values)
      out << name << render_labels(labels) << " " << number(value) << "\n";
    for (const auto &[labels, value] : gauges)
      out << name << render_labels(labels) << " " << number(value) << "\n";
    for (const auto &[labels, h] : f.histograms) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i < h.buckets.size(); ++i) {
        cumulative += h.counts[i];
        out << name << "_bucket" << render_labels(labels, "le", number(h.buckets[i])) << " "
            << cumulative << "\n";
      }
      out << name << "_bucket" << render_labels(labels, "le", "+Inf") << " " << h.count << "\n";
      out << name << "_sum" << render_labels(labels) << " " << number(h.sum) << "\n";
      out << name << "_count" << render_labels(labels) << " " << h.count << "\n";
    }
  }
  return out.str();
}

Registry &global() {
  static Registry registry;
  return registry;
}

const std::vector<double> &latency_buckets() {
  static const std::vector<double> buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                              1,     2.5,  5,     10,   30,  60,   300};
  return buckets;
}

}  // namespace crmhost::metrics
