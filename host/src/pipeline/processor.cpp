#include "pipeline/processor.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "mapping/mapping.hpp"
#include "pipeline/backoff.hpp"
#include "pipeline/event_payload.hpp"
#include "plugins/plugin_library.hpp"
#include "util/json.hpp"
#include "util/metrics.hpp"
#include "util/time.hpp"

namespace crmhost::pipeline {

namespace {
constexpr const char *kEventsHelp = "Events settled by the processor, by outcome.";
}  // namespace

MapFunction identity_map() {
  return [](const std::string &data) { return plugins::Outcome<std::string>(data); };
}

MapFunction compiled_map(const config::MapConfig &map) {
  mapping::Options options;
  options.copy_unmapped = map.copy_unmapped;
  options.default_country = map.default_country;
  std::vector<mapping::CompileProblem> problems;
  auto compiled = std::make_shared<const mapping::Mapping>(
      mapping::Mapping::compile(map.fields_json, options, problems));
  if (!problems.empty()) {
    // The loader reports these; a Config built in code may still carry them.
    plugins::CallError error;
    error.message = "the map rules do not compile: fields.";
    for (size_t i = 0; i < problems[0].path.size(); ++i)
      error.message += (i ? "." : "") + problems[0].path[i];
    error.message += ": " + problems[0].message;
    return [error](const std::string &) { return plugins::Outcome<std::string>(error); };
  }
  if (compiled->rule_count() == 0) return identity_map();  // no rules: records pass as they are
  return [compiled](const std::string &data) {
    auto result = compiled->apply(data);
    if (!result.ok) {
      plugins::CallError error;
      error.message = std::move(result.error);
      return plugins::Outcome<std::string>(std::move(error));
    }
    return plugins::Outcome<std::string>(std::move(result.json));
  };
}

namespace {

bool empty_value(const rapidjson::Value &v) {
  return v.IsNull() || (v.IsString() && v.GetStringLength() == 0) || (v.IsArray() && v.Empty());
}

// The fields of `mapped` that are empty (or missing) in `target`: fill_empty's payload.
std::string only_empty_fields(const std::string &mapped, const std::string &target) {
  rapidjson::Document out = json::parse(mapped, "the mapped record");
  rapidjson::Document have;
  if (json::try_parse(target, have, "the target record") || !have.IsObject() || !out.IsObject())
    return mapped;
  for (auto it = out.MemberBegin(); it != out.MemberEnd();) {
    auto found = have.FindMember(it->name);
    if (found != have.MemberEnd() && !empty_value(found->value))
      it = out.EraseMember(it);
    else
      ++it;
  }
  return json::to_string(out);
}

}  // namespace

struct Processor::Item {
  store::Event event;
  EventPayload payload;
  std::optional<store::EntityLink> link;
  std::string mapped;                  // the target's fields
  std::string hash;                    // of `mapped`
  std::optional<int64_t> modified_ms;  // the source's modification time, when it reported one
  bool echo = false;
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

// A batch often names one record several times: HubSpot sends a creation and a change per
// property in one delivery. Written one by one, a record new to the target would be created once
// per event (no link exists until a push returns). The latest event of each record stands for all
// of them (a fetched record is its current state anyway); the earlier ones are done.
void Processor::supersede_repeats(std::vector<Item> &items, BatchStats &stats) {
  std::set<std::pair<std::string, std::string>> seen;  // (object, id)
  std::vector<store::EventId> superseded;
  for (auto it = items.rbegin(); it != items.rend(); ++it) {  // claimed in event order
    if (it->settled) continue;
    if (seen.emplace(it->payload.object, it->payload.id).second) continue;
    superseded.push_back(it->event.id);
    it->settled = true;
  }
  if (!superseded.empty())
    stats.unchanged += deps_.store.complete_many(superseded, items.front().event.claim_token);
}

// Parses payloads, fetches records that came as ids only, maps, and looks up links.
void Processor::prepare(std::vector<Item> &items, BatchStats &stats) {
  const auto &p = deps_.pipeline;
  std::map<std::string, std::vector<Item *>> to_fetch;  // by object
  for (auto &item : items) {
    if (item.settled) continue;
    if (item.payload.event == plugins::EventKind::upsert && !item.payload.data_json)
      to_fetch[item.payload.object].push_back(&item);
  }
  for (auto &[object, group] : to_fetch) {
    if (!deps_.source) {
      for (Item *item : group)
        settle_failure(*item,
                       "the event names a record without its fields and the source cannot fetch",
                       false, {}, stats);
      continue;
    }
    // One id once: a delivery often names a record several times (HubSpot sends a creation and
    // a change per property), and providers refuse a batch read with duplicate ids.
    std::vector<std::string> ids;
    std::set<std::string> seen;
    for (Item *item : group)
      if (seen.insert(item->payload.id).second) ids.push_back(item->payload.id);
    auto fetched = deps_.source->fetch(object, ids);
    if (!fetched) {
      for (Item *item : group)
        settle_failure(*item, "fetch: " + fetched.error().describe(), fetched.error().retryable,
                       store::Millis(fetched.error().retry_after_ms), stats);
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
      if (found->modified_at) item->payload.modified_at = found->modified_at;
    }
  }
  for (auto &item : items) {
    if (item.settled) continue;
    item.link = deps_.store.find_link_by_source(p.name, item.event.connection, item.payload.id);
    if (item.payload.event == plugins::EventKind::remove) continue;
    auto mapped = deps_.map(*item.payload.data_json);
    if (!mapped) {
      settle_failure(item, "map: " + mapped.error().message, false, {}, stats);
      continue;
    }
    item.mapped = std::move(*mapped);
    item.hash = store::sha256_hex(item.mapped);
    if (item.payload.modified_at)
      item.modified_ms = timeutil::parse_iso8601_ms(*item.payload.modified_at);
    item.echo = is_echo(item);
  }
}

// Whether `item` is what a reverse pipeline last wrote to this record, come back: mapped back
// through that pipeline's own mapping it hashes to what that pipeline pushed. A real change is
// noted on the reverse link instead, so that the reverse pipeline's newest_wins sees it.
bool Processor::is_echo(Item &item) {
  bool echo = false;
  for (const auto &reverse : deps_.reverse) {
    if (reverse.object != item.payload.object) continue;
    auto link =
        deps_.store.find_link_by_target(reverse.name, item.event.connection, item.payload.id);
    if (!link) continue;
    if (!item.link && link->source_connection == deps_.pipeline.sink.connection) {
      // Not linked here yet, but the other direction links this record to its counterpart:
      // write to that record rather than matching (the match key may differ in form).
      store::EntityLink own;
      own.pipeline = deps_.pipeline.name;
      own.source_connection = item.event.connection;
      own.source_id = item.payload.id;
      own.target_connection = link->source_connection;
      own.target_id = link->source_id;
      item.link = std::move(own);
    }
    auto round_trip = reverse.map(item.mapped);
    // What the reverse pipeline wrote here came from the counterpart record as it was when that
    // pipeline read it. If this pipeline has pushed to the counterpart since, the counterpart no
    // longer holds it, and dropping the copy as an echo would leave the two sides swapped (both
    // sides edited at once, each pipeline pushing before reading the other's edit): then it is a
    // change like any other, and newest_wins decides as usual.
    const bool overwritten_since = item.link && item.link->last_pushed_at && link->last_pushed_at &&
                                   *item.link->last_pushed_at > *link->last_pushed_at;
    if (round_trip && store::sha256_hex(*round_trip) == link->last_payload_hash &&
        !overwritten_since) {
      echo = true;
      continue;
    }
    if (item.modified_ms)
      deps_.store.note_target_modified(reverse.name, item.event.connection, item.payload.id,
                                       store::from_unix_ms(*item.modified_ms));
  }
  return echo;
}

void Processor::record_stale(Item &item, int64_t target_ms) {
  store::Conflict conflict;
  conflict.pipeline = deps_.pipeline.name;
  conflict.object = item.payload.object;
  conflict.source_connection = item.event.connection;
  conflict.source_id = item.payload.id;
  conflict.target_connection = deps_.pipeline.sink.connection;
  conflict.target_id = item.link->target_id;
  conflict.event_id = item.event.id;
  conflict.detail =
      std::string(R"({"reason":"stale update","policy":"newest_wins",)") +
      R"("source_modified_at":)" + json::quote(timeutil::format_iso8601_ms(*item.modified_ms)) +
      R"(,"target_modified_at":)" + json::quote(timeutil::format_iso8601_ms(target_ms)) + "}";
  deps_.store.record_conflict(conflict);
}

// The current records of the linked targets among `items`, by target id: what the conflict
// policies that look at the target before writing compare with. When the read fails, those items
// are settled as failures (retried later) and nothing is returned.
std::optional<std::map<std::string, plugins::Record>> Processor::fetch_targets(
    const std::vector<Item *> &linked, const char *policy, BatchStats &stats) {
  std::vector<std::string> ids;
  std::set<std::string> seen;
  for (Item *item : linked)
    if (seen.insert(item->link->target_id).second) ids.push_back(item->link->target_id);
  auto fetched = deps_.sink.fetch(deps_.pipeline.sink.object, ids);
  if (!fetched) {
    for (Item *item : linked)
      settle_failure(
          *item, std::string("fetch target for ") + policy + ": " + fetched.error().describe(),
          fetched.error().retryable, store::Millis(fetched.error().retry_after_ms), stats);
    return std::nullopt;
  }
  std::map<std::string, plugins::Record> targets;
  for (auto &record : fetched->records) targets.emplace(record.id, std::move(record));
  return targets;
}

namespace {
void drop_settled(std::vector<Processor::Item *> &items) {
  items.erase(std::remove_if(items.begin(), items.end(), [](auto *i) { return i->settled; }),
              items.end());
}
}  // namespace

// fill_empty on linked records: fetch the targets and keep only the fields empty there.
void Processor::fill_empty(std::vector<Item *> &items, BatchStats &stats) {
  std::vector<Item *> linked;
  for (Item *item : items)
    if (item->link) linked.push_back(item);
  if (linked.empty()) return;
  auto targets = fetch_targets(linked, "fill_empty", stats);
  std::vector<store::EventId> nothing_to_fill;
  if (targets) {
    for (Item *item : linked) {
      auto found = targets->find(item->link->target_id);
      if (found == targets->end()) continue;  // gone at the target: write it all
      item->mapped = only_empty_fields(item->mapped, found->second.data_json);
      if (item->mapped == "{}") {
        nothing_to_fill.push_back(item->event.id);
        item->settled = true;
      }
    }
  }
  if (!nothing_to_fill.empty())
    stats.unchanged +=
        deps_.store.complete_many(nothing_to_fill, linked.front()->event.claim_token);
  drop_settled(items);
}

// newest_wins on linked records: read each target just before writing it. An edit made there by
// anyone but this pipeline since its last write, and newer than the source's, wins: the source's
// is a stale update (a conflict), and the reverse pipeline carries the target's edit back. Without
// this read, an edit that the reverse direction had not read yet would be overwritten and lost
// (the link's target_modified_at only knows the changes already read).
void Processor::keep_newer_targets(std::vector<Item *> &items, BatchStats &stats) {
  // A sink that cannot fetch leaves the comparison with the times already seen.
  if (!deps_.sink.plugin().description().has_capability("fetch")) return;
  std::vector<Item *> linked;
  for (Item *item : items)
    if (item->link && item->modified_ms) linked.push_back(item);
  if (linked.empty()) return;
  auto targets = fetch_targets(linked, "newest_wins", stats);
  std::vector<store::EventId> stale;
  if (targets) {
    for (Item *item : linked) {
      auto found = targets->find(item->link->target_id);
      if (found == targets->end() || !found->second.modified_at) continue;
      const auto target_ms = timeutil::parse_iso8601_ms(*found->second.modified_at);
      if (!target_ms) continue;
      // Modified no later than this pipeline's last write returned: that write (or an edit it
      // overwrote). Its source time is in target_modified_at, already compared. This relies on
      // the provider's clock agreeing with the host's.
      const auto &pushed = item->link->last_pushed_at;
      if (pushed && *target_ms <= store::to_unix_ms(*pushed)) continue;
      if (*item->modified_ms >= *target_ms) continue;
      deps_.store.note_target_modified(deps_.pipeline.name, deps_.pipeline.sink.connection,
                                       item->link->target_id, store::from_unix_ms(*target_ms));
      record_stale(*item, *target_ms);
      ++stats.stale;
      stale.push_back(item->event.id);
      item->settled = true;
    }
  }
  if (!stale.empty()) deps_.store.complete_many(stale, linked.front()->event.claim_token);
  drop_settled(items);
}

void Processor::push_group(std::vector<Item *> &group, BatchStats &stats) {
  if (group.empty()) return;
  const auto &sink = deps_.pipeline.sink;
  plugins::PushRequest request;
  request.object = sink.object;
  request.mode = group.front()->payload.event == plugins::EventKind::remove
                     ? "delete"
                     : std::string(to_string(sink.mode));
  request.match_on = sink.match_on;
  for (Item *item : group) {
    plugins::PushInput input;
    input.ref = std::to_string(item->event.id);
    if (item->link) input.id = item->link->target_id;
    input.data_json = item->payload.event == plugins::EventKind::remove ? "{}" : item->mapped;
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
    if (item.payload.event != plugins::EventKind::remove) {
      store::EntityLink link;
      link.pipeline = deps_.pipeline.name;
      link.source_connection = item.event.connection;
      link.source_id = item.payload.id;
      link.target_connection = sink.connection;
      link.target_id = r.id;
      link.last_payload_hash = item.hash;
      link.last_pushed_at = store::now_ms();
      // The target now holds the source's version: nothing older may overwrite it.
      if (item.modified_ms) link.target_modified_at = store::from_unix_ms(*item.modified_ms);
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
        metrics::global().counter_add("crmhost_events_total", kEventsHelp,
                                      {{"pipeline", deps_.pipeline.name}, {"outcome", "conflict"}});
      }
    }
    item.settled = true;
    done.push_back(item.event.id);
    ++stats.pushed;
    const auto latency = std::chrono::duration<double>(store::now_ms() - item.event.received_at);
    metrics::global().histogram_observe(
        "crmhost_event_latency_seconds", "Time from receipt of an event to its push, in seconds.",
        {{"pipeline", deps_.pipeline.name}}, latency.count(), metrics::latency_buckets());
    metrics::global().recent_observe("event_latency", deps_.pipeline.name, latency.count());
  }
  if (!done.empty()) deps_.store.complete_many(done, group.front()->event.claim_token);
}

namespace {

void count_outcomes(const std::string &pipeline, const BatchStats &stats) {
  auto &registry = metrics::global();
  const std::pair<const char *, size_t> outcomes[] = {
      {"pushed", stats.pushed},    {"unchanged", stats.unchanged}, {"echo", stats.echoes},
      {"stale", stats.stale},      {"retried", stats.retried},     {"dead", stats.dead},
      {"released", stats.released}};
  for (const auto &[outcome, n] : outcomes)
    if (n)
      registry.counter_add("crmhost_events_total", kEventsHelp,
                           {{"pipeline", pipeline}, {"outcome", outcome}}, static_cast<double>(n));
}

}  // namespace

bool target_keeps(const config::PipelineConfig &pipeline,
                  const std::optional<store::EntityLink> &link, const std::string &hash) {
  return link && (link->last_payload_hash == hash ||
                  pipeline.sink.conflict == config::ConflictPolicy::target_wins);
}

PushVerdict decide_push(const config::PipelineConfig &pipeline, const MapFunction &map,
                        store::Store &store, const std::string &source_connection,
                        const plugins::Record &record) {
  PushVerdict verdict;
  const auto link = store.find_link_by_source(pipeline.name, source_connection, record.id);
  if (record.event == plugins::EventKind::remove) {
    verdict.decision = link ? PushDecision::delete_target : PushDecision::nothing_to_delete;
    return verdict;
  }
  auto mapped = map(record.data_json);
  if (!mapped) {
    verdict.error = mapped.error().message;
    return verdict;
  }
  verdict.decision = !link ? PushDecision::create
                     : target_keeps(pipeline, link, store::sha256_hex(*mapped))
                         ? PushDecision::unchanged
                         : PushDecision::update;
  return verdict;
}

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
  supersede_repeats(items, stats);
  prepare(items, stats);

  std::vector<store::EventId> unchanged;
  std::vector<Item *> upserts, deletes;
  for (auto &item : items) {
    if (item.settled) continue;
    if (item.payload.event == plugins::EventKind::remove) {
      if (!item.link) {  // never pushed, so nothing to delete
        unchanged.push_back(item.event.id);
        item.settled = true;
      } else {
        deletes.push_back(&item);
      }
      continue;
    }
    const bool same_as_last = item.link && item.link->last_payload_hash == item.hash;
    if (target_keeps(p, item.link, item.hash) || item.echo) {
      if (item.echo) {
        ++stats.echoes;
        // The target already holds this content (it came from there): remember it as written,
        // so that a later change back to the previous content is not taken for a repeat.
        if (item.link && !same_as_last) {
          // last_pushed_at stays: it marks this pipeline's last real write (see is_echo).
          store::EntityLink own = *item.link;
          own.last_payload_hash = item.hash;
          try {
            deps_.store.upsert_link(own);
          } catch (const store::StoreError &e) {
            if (e.retryable()) throw;  // else linked to another record already: leave it
          }
        }
      }
      unchanged.push_back(item.event.id);
      item.settled = true;
      continue;
    }
    if (item.link && p.sink.conflict == config::ConflictPolicy::newest_wins && item.modified_ms &&
        item.link->target_modified_at &&
        *item.modified_ms < store::to_unix_ms(*item.link->target_modified_at)) {
      record_stale(item, store::to_unix_ms(*item.link->target_modified_at));
      ++stats.stale;
      unchanged.push_back(item.event.id);
      item.settled = true;
      continue;
    }
    upserts.push_back(&item);
  }
  if (!unchanged.empty()) {
    const size_t completed = deps_.store.complete_many(unchanged, items.front().event.claim_token);
    stats.unchanged += completed - std::min(completed, stats.echoes + stats.stale);
  }

  if (p.sink.conflict == config::ConflictPolicy::fill_empty) fill_empty(upserts, stats);
  if (p.sink.conflict == config::ConflictPolicy::newest_wins) keep_newer_targets(upserts, stats);

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
