#include "pipeline/processor.hpp"

#include <algorithm>
#include <map>

#include "pipeline/backoff.hpp"
#include "pipeline/event_payload.hpp"
#include "util/metrics.hpp"

namespace crmhost::pipeline {

MapFunction identity_map() {
  return [](const std::string &data) { return plugins::Outcome<std::string>(data); };
}

struct Processor::Item {
  store::Event event;
  EventPayload payload;
  std::optional<store::EntityLink> link;
  std::string mapped;  // the target's fields
  std::string hash;    // of `mapped`
  bool settled = false;
};

Processor::Processor(ProcessorDeps deps) : deps_(std::move(deps)), rng_(std::random_device{}()) {}

void Processor::settle_failure(Item &item, const std::string &error, bool retryable,
                               store::Millis retry_after, BatchStats &stats) {
  item.settled = true;
  const auto &retry = deps_.pipeline.retry;
  const uint32_t attempts = static_cast<uint32_t>(std::max(item.event.attempts, 1));
  if (retryable && attempts < retry.attempts) {
    const auto delay =
        backoff_delay(attempts, retry.backoff_min, retry.backoff_max, retry_after, rng_);
    if (deps_.store.fail(item.event.id, item.event.claim_token, error, store::now_ms() + delay))
      ++stats.retried;
    return;
  }
  const std::string reason =
      retryable ? "gave up after " + std::to_string(attempts) + " attempts: " + error : error;
  if (deps_.store.dead_letter(item.event.id, item.event.claim_token, reason)) ++stats.dead;
}

// Parses payloads, fetches records that came as ids only, maps, and looks up links.
void Processor::prepare(std::vector<Item> &items) {
  const auto &p = deps_.pipeline;
  std::map<std::string, std::vector<Item *>> to_fetch;  // by object
  for (auto &item : items) {
    if (item.settled) continue;
    if (item.payload.event == "upsert" && !item.payload.data_json)
      to_fetch[item.payload.object].push_back(&item);
  }
  BatchStats ignored;
  for (auto &[object, group] : to_fetch) {
    if (!deps_.source) {
      for (Item *item : group)
        settle_failure(*item,
                       "the event names a record without its fields and the source cannot fetch",
                       false, {}, ignored);
      continue;
    }
    std::vector<std::string> ids;
    for (Item *item : group) ids.push_back(item->payload.id);
    auto fetched = deps_.source->fetch(object, ids);
    if (!fetched) {
      for (Item *item : group)
        settle_failure(*item, "fetch: " + fetched.error().describe(), fetched.error().retryable,
                       store::Millis(fetched.error().retry_after_ms), ignored);
      continue;
    }
    for (Item *item : group) {
      auto found = std::find_if(fetched->records.begin(), fetched->records.end(),
                                [&](const plugins::Record &r) { return r.id == item->payload.id; });
      if (found == fetched->records.end()) {
        // Gone at the source since the event: nothing to push.
        (void)deps_.store.complete(item->event.id, item->event.claim_token);
        item->settled = true;
        continue;
      }
      item->payload.data_json = found->data_json;
    }
  }
  for (auto &item : items) {
    if (item.settled) continue;
    item.link = deps_.store.find_link_by_source(p.name, item.event.connection, item.payload.id);
    if (item.payload.event == "delete") continue;
    auto mapped = deps_.map(*item.payload.data_json);
    if (!mapped) {
      settle_failure(item, "map: " + mapped.error().message, false, {}, ignored);
      continue;
    }
    item.mapped = std::move(*mapped);
    item.hash = store::sha256_hex(item.mapped);
  }
}

void Processor::push_group(std::vector<Item *> &group, BatchStats &stats) {
  if (group.empty()) return;
  const auto &sink = deps_.pipeline.sink;
  plugins::PushRequest request;
  request.object = sink.object;
  request.mode = group.front()->payload.event == "delete" ? "delete" : sink.mode;
  request.match_on = sink.match_on;
  for (Item *item : group) {
    plugins::PushInput input;
    input.ref = std::to_string(item->event.id);
    if (item->link) input.id = item->link->target_id;
    input.data_json = item->payload.event == "delete" ? "{}" : item->mapped;
    request.records.push_back(std::move(input));
  }
  auto results = deps_.sink.push(request);
  if (!results) {
    const auto &e = results.error();
    for (Item *item : group)
      settle_failure(*item, "push: " + e.describe(), e.retryable, store::Millis(e.retry_after_ms),
                     stats);
    return;
  }
  std::vector<store::EventId> done;
  for (size_t i = 0; i < group.size(); ++i) {
    Item &item = *group[i];
    const auto &r = (*results)[i];
    if (!r.ok) {
      settle_failure(item, "push: " + r.code + ": " + r.message, r.retryable, {}, stats);
      continue;
    }
    if (item.payload.event != "delete") {
      store::EntityLink link;
      link.pipeline = deps_.pipeline.name;
      link.source_connection = item.event.connection;
      link.source_id = item.payload.id;
      link.target_connection = sink.connection;
      link.target_id = r.id;
      link.last_payload_hash = item.hash;
      link.last_pushed_at = store::now_ms();
      try {
        deps_.store.upsert_link(link);
      } catch (const store::StoreError &e) {
        if (e.retryable()) throw;
        // The target record is already linked to another source record (two sources matched
        // one target on the match key). The push stands; the clash is kept for an operator.
        store::Conflict conflict;
        conflict.pipeline = deps_.pipeline.name;
        conflict.object = item.payload.object;
        conflict.source_connection = item.event.connection;
        conflict.source_id = item.payload.id;
        conflict.target_connection = sink.connection;
        conflict.target_id = r.id;
        conflict.event_id = item.event.id;
        conflict.detail = R"({"reason":"target already linked to another source record"})";
        deps_.store.record_conflict(conflict);
      }
    }
    item.settled = true;
    done.push_back(item.event.id);
    ++stats.pushed;
    const auto latency = std::chrono::duration<double>(store::now_ms() - item.event.received_at);
    metrics::global().histogram_observe(
        "crmhost_event_latency_seconds", "Time from receipt of an event to its push, in seconds.",
        {{"pipeline", deps_.pipeline.name}}, latency.count(), metrics::latency_buckets());
  }
  if (!done.empty()) deps_.store.complete_many(done, group.front()->event.claim_token);
}

namespace {

void count_outcomes(const std::string &pipeline, const BatchStats &stats) {
  auto &registry = metrics::global();
  const std::pair<const char *, size_t> outcomes[] = {{"pushed", stats.pushed},
                                                      {"unchanged", stats.unchanged},
                                                      {"retried", stats.retried},
                                                      {"dead", stats.dead},
                                                      {"released", stats.released}};
  for (const auto &[outcome, n] : outcomes)
    if (n)
      registry.counter_add("crmhost_events_total", "Events settled by the processor, by outcome.",
                           {{"pipeline", pipeline}, {"outcome", outcome}}, static_cast<double>(n));
}

}  // namespace

BatchStats Processor::run_once() {
  BatchStats stats = process_batch();
  count_outcomes(deps_.pipeline.name, stats);
  return stats;
}

BatchStats Processor::process_batch() {
  const auto &p = deps_.pipeline;
  BatchStats stats;
  store::ClaimRequest claim;
  claim.pipeline = p.name;
  claim.owner = deps_.owner;
  claim.max_events = static_cast<int>(std::max<uint32_t>(p.batch_size, 1));
  claim.lease = deps_.claim_lease;
  auto claimed = deps_.store.claim(claim);
  stats.claimed = claimed.size();
  if (claimed.empty()) return stats;

  std::vector<Item> items;
  items.reserve(claimed.size());
  for (auto &event : claimed) {
    Item item;
    item.event = std::move(event);
    items.push_back(std::move(item));
  }
  for (auto &item : items) {
    auto payload = parse_payload(item.event.payload);
    if (!payload) {
      settle_failure(item, "the stored payload is not valid event JSON", false, {}, stats);
      continue;
    }
    item.payload = std::move(*payload);
  }
  prepare(items);

  std::vector<store::EventId> unchanged;
  std::vector<Item *> upserts, deletes;
  for (auto &item : items) {
    if (item.settled) continue;
    if (item.payload.event == "delete") {
      if (!item.link) {  // never pushed, so nothing to delete
        unchanged.push_back(item.event.id);
        item.settled = true;
      } else {
        deletes.push_back(&item);
      }
      continue;
    }
    const bool same_as_last = item.link && item.link->last_payload_hash == item.hash;
    const bool keep_target = item.link && p.sink.conflict == "target_wins";
    if (same_as_last || keep_target) {
      unchanged.push_back(item.event.id);
      item.settled = true;
      continue;
    }
    upserts.push_back(&item);
  }
  if (!unchanged.empty()) {
    stats.unchanged += deps_.store.complete_many(unchanged, items.front().event.claim_token);
  }

  const size_t max_batch = std::max<uint32_t>(deps_.sink_max_batch, 1);
  for (auto *list : {&upserts, &deletes}) {
    for (size_t start = 0; start < list->size(); start += max_batch) {
      std::vector<Item *> group(
          list->begin() + static_cast<std::ptrdiff_t>(start),
          list->begin() + static_cast<std::ptrdiff_t>(std::min(list->size(), start + max_batch)));
      if (deps_.stop_requested && deps_.stop_requested->load()) {
        // Shutting down: hand unstarted work back, due at once, for the next run.
        for (Item *item : group) {
          if (deps_.store.fail(item->event.id, item->event.claim_token, "released at shutdown",
                               store::now_ms()))
            ++stats.released;
          item->settled = true;
        }
        continue;
      }
      push_group(group, stats);
    }
  }
  return stats;
}

}  // namespace crmhost::pipeline
