#pragma once
// The one consumer path of a pipeline: claim a batch of due events, fetch what carries only ids,
// map, drop echoes and unchanged records, push in batches of the sink's maximum, and settle each
// event (done, retry later, or dead letter) together with its entity link.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "plugins/connector.hpp"
#include "store/store.hpp"

namespace crmhost::pipeline {

// Turns a source record (JSON object) into the target's fields: a pipeline's compiled map stage,
// or the identity where a test wants the record as it is.
using MapFunction = std::function<plugins::Outcome<std::string>(const std::string &data_json)>;
MapFunction identity_map();
// The compiled mapping of a pipeline's map stage (rules compiled once; a record that cannot be
// mapped yields an error naming the field and the value).
MapFunction compiled_map(const config::MapConfig &map);

// A pipeline that writes into this pipeline's source connection: the other half of a two-way
// sync. Its links and mapping tell an echo of its own write from a real change.
struct ReversePipeline {
  std::string name;
  std::string object;  // its sink object
  MapFunction map;
};

struct ProcessorDeps {
  const config::PipelineConfig &pipeline;
  store::Store &store;
  plugins::Connector *source;  // for fetch; may be null when the pipeline has no fetch-able source
  plugins::Connector &sink;
  uint32_t sink_max_batch = 1;
  MapFunction map = identity_map();
  std::vector<ReversePipeline> reverse;  // pipelines whose sink is this pipeline's source
  std::string owner;                     // claim owner, "host:pid"
  store::Millis claim_lease{60'000};
  const std::atomic<bool> *stop_requested = nullptr;  // release what is not started yet
};

struct BatchStats {
  size_t claimed = 0;
  size_t pushed = 0;
  size_t unchanged = 0;  // same payload as last pushed: echo or repeat, nothing to do
  size_t echoes = 0;     // a reverse pipeline's own write come back: dropped
  size_t stale = 0;      // newest_wins: older than the target's last seen change; a conflict
  size_t retried = 0;
  size_t dead = 0;
  size_t released = 0;   // handed back on shutdown
  size_t linked = 0;     // first link to an existing record that already held the same values
  size_t conflicts = 0;  // recorded: a first link that merged, a delete that met an edit
};

// A match key as compared on both sides: the pipeline's match_normalize steps applied ("trim":
// ASCII whitespace at both ends; "lower": ASCII letters). The plugins' lookups do the same.
std::string normalize_match_key(std::string_view value, const std::vector<std::string> &steps);

// Two records that already exist on both sides meet for the first time (same match key): which
// of their differing fields each side keeps, by the pipeline's conflict policy (per field where
// conflict_fields names one). newest_wins compares the two modification times when both are
// known; otherwise the source wins, as for a linked record.
struct FieldClash {
  std::string field;
  std::string source_json, target_json;  // the two values, as JSON
  bool source_wins = true;
};
struct FirstLinkMerge {
  std::vector<FieldClash> clashes;  // fields whose values differ (both kept in the conflict)
  std::string write_json =
      "{}";  // the merged record to write; "{}" when nothing of the source's won
};
FirstLinkMerge merge_first_link(const config::PushSink &sink, const std::string &mapped_json,
                                const std::string &target_json, std::optional<int64_t> source_ms,
                                std::optional<int64_t> target_ms);
// The conflict detail of a first link: policy, both times, and each clash with both values.
std::string first_link_detail(const config::PushSink &sink, const FirstLinkMerge &merge,
                              std::optional<int64_t> source_ms, std::optional<int64_t> target_ms);

// What processing would do with one source record, judged from the store alone: the decision the
// processor takes for records that are not echoes or stale (it reads the target for those), and
// the one `crmhost backfill --dry-run` reports. The record is mapped first, as the processor
// does, so a mapped field that did not change is "unchanged" whatever else the source holds.
enum class PushDecision { create, update, unchanged, delete_target, nothing_to_delete };
struct PushVerdict {
  PushDecision decision = PushDecision::create;
  std::string error;  // the record cannot be mapped: it would fail (and dead-letter)
};
PushVerdict decide_push(const config::PipelineConfig &pipeline, const MapFunction &map,
                        store::Store &store, const std::string &source_connection,
                        const plugins::Record &record);
// Whether the target already holds what `hash` describes, or must keep its own (target_wins).
bool target_keeps(const config::PipelineConfig &pipeline,
                  const std::optional<store::EntityLink> &link, const std::string &hash);

class Processor {
 public:
  explicit Processor(ProcessorDeps deps);
  // Claims and processes one batch; returns what happened. Store errors propagate.
  BatchStats run_once();

 public:
  struct Item;  // one claimed event on its way through a batch

 private:
  BatchStats process_batch();
  void supersede_repeats(std::vector<Item> &items, BatchStats &stats);
  void prepare(std::vector<Item> &items, BatchStats &stats);
  bool is_echo(Item &item);
  bool archived_echo(Item &item);
  std::optional<std::map<std::string, plugins::Record>> fetch_targets(
      const std::vector<Item *> &linked, const char *policy, BatchStats &stats);
  void fill_empty(std::vector<Item *> &items, BatchStats &stats);
  void keep_newer_targets(std::vector<Item *> &items, BatchStats &stats);
  void record_stale(Item &item, int64_t target_ms);
  void push_group(std::vector<Item *> &group, BatchStats &stats);
  void first_links(std::vector<Item *> &items, BatchStats &stats);
  void settle_deletes(std::vector<Item *> &items, BatchStats &stats);
  void restore_on_reverse(const plugins::Record &target, const store::Event &cause,
                          const char *why);
  void converge_stale(const std::vector<Item *> &stale,
                      std::map<std::string, plugins::Record> *known);
  // This pipeline and its reverse pipelines of `object`: the links a gone record closes.
  std::vector<std::string> linked_pipelines(const std::string &object) const;
  // Records a conflict of `item` with `target_id`; `reason` labels it in the metrics.
  void conflict(Item &item, const std::string &target_id, const char *reason, std::string detail,
                BatchStats &stats);
  std::optional<std::map<std::string, plugins::Record>> fetch_ids(
      const std::vector<Item *> &items, const std::vector<std::string> &ids, const char *why,
      BatchStats &stats);
  void settle_failure(Item &item, const std::string &error, bool retryable,
                      store::Millis retry_after, BatchStats &stats);

  ProcessorDeps deps_;
  std::mt19937_64 rng_;
};

}  // namespace crmhost::pipeline
