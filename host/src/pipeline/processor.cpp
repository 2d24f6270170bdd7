#include "pipeline/processor.hpp"

#include <algorithm>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

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

// A scalar as text, for comparing values across providers (HubSpot answers numbers and booleans
// as strings); arrays and objects as their JSON.
std::string value_text(const rapidjson::Value &v) {
  if (v.IsNull()) return "";
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsBool()) return v.GetBool() ? "true" : "false";
  return json::to_string(v);
}

}  // namespace

std::string normalize_match_key(std::string_view value, const std::vector<std::string> &steps) {
  std::string out(value);
  for (const auto &step : steps) {
    if (step == "trim") {
      const auto is_space = [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
      };
      while (!out.empty() && is_space(out.back())) out.pop_back();
      size_t start = 0;
      while (start < out.size() && is_space(out[start])) ++start;
      out.erase(0, start);
    } else if (step == "lower") {
      for (char &c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

FirstLinkMerge merge_first_link(const config::PushSink &sink, const std::string &mapped_json,
                                const std::string &target_json, std::optional<int64_t> source_ms,
                                std::optional<int64_t> target_ms) {
  FirstLinkMerge merge;
  rapidjson::Document mapped, target;
  if (json::try_parse(mapped_json, mapped, "the mapped record") || !mapped.IsObject()) {
    merge.write_json = mapped_json;
    return merge;
  }
  if (json::try_parse(target_json, target, "the target record") || !target.IsObject())
    target.SetObject();
  // The write is the merged record, every mapped field with the value kept: a field written
  // alone may be one part of a value the plugin composes (Odoo's _first_name and _last_name make
  // its one name), and the part left out would be lost.
  rapidjson::Document write(rapidjson::kObjectType);
  auto &alloc = write.GetAllocator();
  bool source_wins_any = false;
  const auto keep = [&](const rapidjson::Value &name, const rapidjson::Value &value) {
    write.AddMember(rapidjson::Value(name, alloc), rapidjson::Value(value, alloc), alloc);
  };
  for (const auto &m : mapped.GetObject()) {
    const std::string field(m.name.GetString(), m.name.GetStringLength());
    const rapidjson::Value *have = json::member(target, field.c_str());
    const bool target_empty = !have || empty_value(*have);
    if (target_empty && empty_value(m.value)) continue;
    if (have && !target_empty) {
      std::string a = value_text(m.value), b = value_text(*have);
      if (sink.match_on && field == *sink.match_on) {
        a = normalize_match_key(a, sink.match_normalize);
        b = normalize_match_key(b, sink.match_normalize);
      }
      if (a == b) {  // the same value: nothing to decide; the target's form stays
        keep(m.name, *have);
        continue;
      }
    }
    if (target_empty) {  // only the source has a value: it fills the target, no clash
      keep(m.name, m.value);
      source_wins_any = true;
      continue;
    }
    auto policy = sink.conflict;
    if (auto it = sink.conflict_fields.find(field); it != sink.conflict_fields.end())
      policy = it->second;
    bool source_wins = true;
    switch (policy) {
      case config::ConflictPolicy::source_wins:
        break;
      case config::ConflictPolicy::target_wins:
      case config::ConflictPolicy::fill_empty:
        source_wins = false;
        break;
      case config::ConflictPolicy::newest_wins:
        source_wins = !source_ms || !target_ms || *source_ms >= *target_ms;
        break;
    }
    merge.clashes.push_back({field, json::to_string(m.value), json::to_string(*have), source_wins});
    keep(m.name, source_wins ? m.value : *have);
    source_wins_any |= source_wins;
  }
  // Nothing of the source's won: nothing to write, the two are linked as they are.
  merge.write_json = source_wins_any ? json::to_string(write) : "{}";
  return merge;
}

std::string first_link_detail(const config::PushSink &sink, const FirstLinkMerge &merge,
                              std::optional<int64_t> source_ms, std::optional<int64_t> target_ms) {
  std::string out =
      R"({"reason":"first link","policy":)" + json::quote(config::to_string(sink.conflict));
  if (source_ms)
    out += R"(,"source_modified_at":)" + json::quote(timeutil::format_iso8601_ms(*source_ms));
  if (target_ms)
    out += R"(,"target_modified_at":)" + json::quote(timeutil::format_iso8601_ms(*target_ms));
  out += R"(,"fields":{)";
  bool first = true;
  for (const auto &c : merge.clashes) {
    if (!first) out += ',';
    first = false;
    out += json::quote(c.field) + R"(:{"source":)" + c.source_json + R"(,"target":)" +
           c.target_json + R"(,"kept":)" + (c.source_wins ? R"("source")" : R"("target")") + "}";
  }
  return out + "}}";
}

struct Processor::Item {
  store::Event event;
  EventPayload payload;
  std::optional<store::EntityLink> link;
  std::string mapped;                  // the target's fields
  std::string hash;                    // of `mapped`
  std::optional<int64_t> modified_ms;  // the source's modification time, when it reported one
  bool echo = false;
  bool settled = false;
  bool first_link = false;  // linked in this batch to a record that existed: merged, not compared
  // Linked only through the reverse pipeline's link (this pipeline never wrote the pair): its
  // first write to that record is a first link too, merged by this pipeline's policies.
  bool borrowed_link = false;
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
    item.echo = is_echo(item) || (!item.link && archived_echo(item));
  }
}

// Whether an unlinked record is one crmhost itself archived for a delete on the other side
// (on_delete: archive), come back as an upsert (Odoo reports an archived partner with active
// false): its links closed with the archive, so is_echo cannot see it, and matching it would
// create the deleted record anew. An edit made after the archive is a real change. The slack
// absorbs the provider's clock running ahead of the host's (and Odoo's whole-second times).
bool Processor::archived_echo(Item &item) {
  constexpr int64_t kSlackMs = 60'000;
  const auto archived = deps_.store.archived_at(item.event.connection, item.payload.id);
  if (!archived) return false;
  if (!item.modified_ms || *item.modified_ms <= store::to_unix_ms(*archived) + kSlackMs)
    return true;
  deps_.store.forget_archived(item.event.connection, item.payload.id);
  return false;
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
      item.borrowed_link = true;
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

namespace {
void drop_settled(std::vector<Processor::Item *> &items) {
  items.erase(std::remove_if(items.begin(), items.end(), [](auto *i) { return i->settled; }),
              items.end());
}
}  // namespace

// The current records of the linked targets among `items`, by target id: what the conflict
// policies that look at the target before writing compare with. When the read fails, those items
// are settled as failures (retried later) and nothing is returned.
std::optional<std::map<std::string, plugins::Record>> Processor::fetch_targets(
    const std::vector<Item *> &linked, const char *policy, BatchStats &stats) {
  std::vector<std::string> ids;
  for (Item *item : linked) ids.push_back(item->link->target_id);
  return fetch_ids(linked, ids, (std::string("fetch target for ") + policy).c_str(), stats);
}

std::optional<std::map<std::string, plugins::Record>> Processor::fetch_ids(
    const std::vector<Item *> &items, const std::vector<std::string> &wanted, const char *why,
    BatchStats &stats) {
  std::vector<std::string> ids;
  std::set<std::string> seen;
  for (const auto &id : wanted)
    if (seen.insert(id).second) ids.push_back(id);
  std::map<std::string, plugins::Record> targets;
  // A fetch takes as many ids as a push (the plugins' batch reads cap at their max_batch).
  const size_t chunk = std::max<uint32_t>(deps_.sink_max_batch, 1);
  for (size_t at = 0; at < ids.size(); at += chunk) {
    std::vector<std::string> part(
        ids.begin() + static_cast<std::ptrdiff_t>(at),
        ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), at + chunk)));
    auto fetched = deps_.sink.fetch(deps_.pipeline.sink.object, part);
    if (!fetched) {
      for (Item *item : items)
        settle_failure(*item, std::string(why) + ": " + fetched.error().describe(),
                       fetched.error().retryable, store::Millis(fetched.error().retry_after_ms),
                       stats);
      return std::nullopt;
    }
    for (auto &record : fetched->records) targets.emplace(record.id, std::move(record));
  }
  return targets;
}

std::vector<std::string> Processor::linked_pipelines(const std::string &object) const {
  std::vector<std::string> names{deps_.pipeline.name};
  for (const auto &r : deps_.reverse)
    if (r.object == object) names.push_back(r.name);
  return names;
}

void Processor::conflict(Item &item, const std::string &target_id, const char *reason,
                         std::string detail, BatchStats &stats) {
  store::Conflict c;
  c.pipeline = deps_.pipeline.name;
  c.object = item.payload.object;
  c.source_connection = item.event.connection;
  c.source_id = item.payload.id;
  c.target_connection = deps_.pipeline.sink.connection;
  c.target_id = target_id;
  c.event_id = item.event.id;
  c.detail = std::move(detail);
  deps_.store.record_conflict(c);
  ++stats.conflicts;
  metrics::global().counter_add(
      "crmhost_conflicts_total",
      "Conflicts recorded by reason: first links that merged, deletes and edits that met.",
      {{"pipeline", deps_.pipeline.name}, {"reason", reason}});
}

// The record a delete did not remove (it was edited after the delete) goes back to the side that
// deleted it: an event for each reverse pipeline, which creates it there anew.
void Processor::restore_on_reverse(const plugins::Record &target, const store::Event &cause,
                                   const char *why) {
  const auto &sink = deps_.pipeline.sink;
  for (const auto &reverse : deps_.reverse) {
    if (reverse.object != cause.object) continue;
    auto payload = payload_from(sink.object, target);
    payload.event = plugins::EventKind::upsert;
    const std::string tag = std::string(why) + ":" + std::to_string(cause.id);
    // A converging copy repeats what the reverse pipeline saw before (the same record, the same
    // version): a key of its own, or the queue would absorb it as that event's duplicate.
    auto event = make_event(reverse.name, store::EventSource::replay, sink.connection, payload, tag,
                            std::string(why) == "converge" ? std::optional(tag) : std::nullopt);
    deps_.store.enqueue({std::move(event)});
  }
}

// A stale update leaves the source holding what lost. When the target's newer version has
// already travelled to the source before (and the source's edit, stamped to the second as Odoo
// and Zoho do, only looked older), nothing would ever bring it back: the two sides would differ
// for good. So the target's version is sent back through the reverse pipeline, whose own
// newest_wins guard keeps anything newer at the source; only once per event, so that two stale
// judgements cannot bounce a record back and forth.
void Processor::converge_stale(const std::vector<Item *> &stale,
                               std::map<std::string, plugins::Record> *known) {
  if (stale.empty() || deps_.reverse.empty()) return;
  std::vector<Item *> sendable;
  for (Item *item : stale)
    if (item->link && item->event.request_id.rfind("converge:", 0) != 0 &&
        item->event.request_id.rfind("restore:", 0) != 0)
      sendable.push_back(item);
  if (sendable.empty()) return;
  std::map<std::string, plugins::Record> fetched;
  if (!known) {
    if (!deps_.sink.plugin().description().has_capability("fetch")) return;
    std::vector<std::string> ids;
    for (Item *item : sendable) ids.push_back(item->link->target_id);
    const size_t chunk = std::max<uint32_t>(deps_.sink_max_batch, 1);
    for (size_t at = 0; at < ids.size(); at += chunk) {
      const std::vector<std::string> part(
          ids.begin() + static_cast<std::ptrdiff_t>(at),
          ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), at + chunk)));
      auto result = deps_.sink.fetch(deps_.pipeline.sink.object, part);
      if (!result) {
        // The conflict is recorded; the next change of the target brings it over anyway.
        spdlog::warn("pipeline {}: could not read {} target(s) to converge stale updates: {}",
                     deps_.pipeline.name, part.size(), result.error().describe());
        return;
      }
      for (auto &record : result->records) fetched.emplace(record.id, std::move(record));
    }
    known = &fetched;
  }
  for (Item *item : sendable)
    if (auto found = known->find(item->link->target_id); found != known->end())
      restore_on_reverse(found->second, item->event, "converge");
}

// Unlinked records about to be upserted on a match key: when the target already holds a record
// with that key, the two meet for the first time. The conflict policy decides each differing
// field (recorded as a conflict with both values), and only the source's winning values are
// written. Needs a sink that can look up without writing (push mode "match") and fetch.
void Processor::first_links(std::vector<Item *> &items, BatchStats &stats) {
  const auto &sink = deps_.pipeline.sink;
  if (!sink.match_on || sink.mode != config::PushMode::upsert) return;
  const auto &d = deps_.sink.plugin().description();
  if (!d.has_capability("fetch") ||
      std::find(d.push_modes.begin(), d.push_modes.end(), "match") == d.push_modes.end())
    return;
  std::vector<Item *> unlinked;
  // Records the reverse pipeline linked already need no lookup: their counterpart is known.
  std::vector<std::pair<Item *, std::string>> matched;
  for (Item *item : items) {
    if (!item->link)
      unlinked.push_back(item);
    else if (item->borrowed_link)
      matched.emplace_back(item, item->link->target_id);
  }
  if (unlinked.empty() && matched.empty()) return;
  const size_t max_batch = std::max<uint32_t>(deps_.sink_max_batch, 1);
  for (size_t at = 0; at < unlinked.size(); at += max_batch) {
    plugins::PushRequest request;
    request.object = sink.object;
    request.mode = "match";
    request.match_on = sink.match_on;
    request.match_normalize = sink.match_normalize;
    const size_t end = std::min(unlinked.size(), at + max_batch);
    for (size_t i = at; i < end; ++i)
      request.records.push_back(
          {std::to_string(unlinked[i]->event.id), std::nullopt, unlinked[i]->mapped});
    auto results = deps_.sink.push(request);
    if (!results) {
      const auto &e = results.error();
      for (size_t i = at; i < end; ++i)
        settle_failure(*unlinked[i], "look up " + *sink.match_on + ": " + e.describe(), e.retryable,
                       store::Millis(e.retry_after_ms), stats);
      continue;
    }
    for (size_t i = at; i < end && i - at < results->size(); ++i)
      if ((*results)[i - at].ok) matched.emplace_back(unlinked[i], (*results)[i - at].id);
  }
  if (matched.empty()) {
    drop_settled(items);
    return;
  }
  std::vector<Item *> matched_items;
  std::vector<std::string> ids;
  for (auto &[item, id] : matched) {
    matched_items.push_back(item);
    ids.push_back(id);
  }
  auto targets = fetch_ids(matched_items, ids, "fetch the matched record", stats);
  if (!targets) {
    drop_settled(items);
    return;
  }
  std::vector<store::EventId> linked_only;
  for (auto &[item, id] : matched) {
    auto found = targets->find(id);
    if (found == targets->end()) continue;  // gone since the lookup: created as new
    std::optional<int64_t> target_ms;
    if (found->second.modified_at)
      target_ms = timeutil::parse_iso8601_ms(*found->second.modified_at);
    auto merge =
        merge_first_link(sink, item->mapped, found->second.data_json, item->modified_ms, target_ms);
    if (!merge.clashes.empty())
      conflict(*item, id, "first_link",
               first_link_detail(sink, merge, item->modified_ms, target_ms), stats);
    store::EntityLink link;
    link.pipeline = deps_.pipeline.name;
    link.source_connection = item->event.connection;
    link.source_id = item->payload.id;
    link.target_connection = sink.connection;
    link.target_id = id;
    link.last_payload_hash = item->hash;
    item->link = link;
    item->first_link = true;
    if (merge.write_json != "{}") {
      item->mapped = std::move(merge.write_json);
      continue;
    }
    // Nothing of the source's to write: link the two as they are.
    link.last_pushed_at = store::now_ms();
    if (target_ms) link.target_modified_at = store::from_unix_ms(*target_ms);
    try {
      deps_.store.upsert_link(link);
    } catch (const store::StoreError &e) {
      if (e.retryable()) throw;
      conflict(*item, id, "already_linked",
               R"({"reason":"target already linked to another source record"})", stats);
    }
    ++stats.linked;
    linked_only.push_back(item->event.id);
    item->settled = true;
  }
  if (!linked_only.empty())
    deps_.store.complete_many(linked_only, items.front()->event.claim_token);
  drop_settled(items);
}

// Deletes of linked records, before they are pushed: the target is read, and one edited since
// this pipeline last wrote it is a delete that meets an edit (a recorded conflict). on_delete
// decides: keep_edited keeps it when the edit is newer than the delete (and restores it on the
// deleting side), propagate and archive remove it anyway. Already gone: the link is closed.
void Processor::settle_deletes(std::vector<Item *> &items, BatchStats &stats) {
  if (items.empty() || !deps_.sink.plugin().description().has_capability("fetch")) return;
  const auto &sink = deps_.pipeline.sink;
  auto targets = fetch_targets(items, "a delete", stats);
  if (!targets) {
    drop_settled(items);
    return;
  }
  std::vector<store::EventId> done;
  for (Item *item : items) {
    const std::string &target_id = item->link->target_id;
    auto found = targets->find(target_id);
    if (found == targets->end()) {  // gone there too
      deps_.store.close_links(linked_pipelines(item->payload.object), sink.connection, target_id);
      ++stats.unchanged;
      done.push_back(item->event.id);
      item->settled = true;
      continue;
    }
    const auto target_modified = found->second.modified_at
                                     ? timeutil::parse_iso8601_ms(*found->second.modified_at)
                                     : std::nullopt;
    if (!target_modified) continue;
    const int64_t target_ms = *target_modified;
    // Edited since the pair was last in sync: after this pipeline last wrote the target (or,
    // when it never wrote it but linked it on an echo of the other direction's write, after the
    // link was noted), and after the newest version the other direction read from it (an edit
    // that has travelled to the deleting side already is no conflict).
    const auto &link = *item->link;
    int64_t synced_ms = store::to_unix_ms(link.last_pushed_at.value_or(link.updated_at));
    if (link.target_modified_at)
      synced_ms = std::max(synced_ms, store::to_unix_ms(*link.target_modified_at));
    if (target_ms <= synced_ms) continue;
    // When the source does not say when it deleted (Odoo keeps no tombstones), the delete may
    // have come before or after the edit: keep_edited then keeps, as nothing is lost that way.
    std::optional<int64_t> deleted_ms;
    if (item->payload.modified_at)
      deleted_ms = timeutil::parse_iso8601_ms(*item->payload.modified_at);
    const bool keep = sink.on_delete == config::DeletePolicy::keep_edited &&
                      (!deleted_ms || target_ms > *deleted_ms);
    const char *resolution = keep                                              ? "kept and restored"
                             : sink.on_delete == config::DeletePolicy::archive ? "archived"
                                                                               : "deleted";
    conflict(*item, target_id, "delete_met_edit",
             R"({"reason":"delete met edit","policy":)" +
                 json::quote(config::to_string(sink.on_delete)) + R"(,"resolution":")" +
                 resolution + R"(","deleted_at":)" +
                 (deleted_ms ? json::quote(timeutil::format_iso8601_ms(*deleted_ms)) : "null") +
                 R"(,"target_modified_at":)" + json::quote(timeutil::format_iso8601_ms(target_ms)) +
                 R"(,"source":{"id":)" + json::quote(item->payload.id) + R"(,"deleted":true})" +
                 R"(,"target":)" + found->second.data_json + "}",
             stats);
    if (!keep) continue;
    deps_.store.close_links(linked_pipelines(item->payload.object), sink.connection, target_id);
    restore_on_reverse(found->second, item->event, "restore");
    done.push_back(item->event.id);
    item->settled = true;
  }
  if (!done.empty()) deps_.store.complete_many(done, items.front()->event.claim_token);
  drop_settled(items);
}

// fill_empty on linked records: fetch the targets and keep only the fields empty there.
void Processor::fill_empty(std::vector<Item *> &items, BatchStats &stats) {
  std::vector<Item *> linked;
  for (Item *item : items)
    if (item->link && !item->first_link) linked.push_back(item);
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
    if (item->link && item->modified_ms && !item->first_link) linked.push_back(item);
  if (linked.empty()) return;
  auto targets = fetch_targets(linked, "newest_wins", stats);
  std::vector<store::EventId> stale;
  std::vector<Item *> stale_items;
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
      stale_items.push_back(item);
      item->settled = true;
    }
    converge_stale(stale_items, &*targets);
  }
  if (!stale.empty()) deps_.store.complete_many(stale, linked.front()->event.claim_token);
  drop_settled(items);
}

void Processor::push_group(std::vector<Item *> &group, BatchStats &stats) {
  if (group.empty()) return;
  const auto &sink = deps_.pipeline.sink;
  plugins::PushRequest request;
  request.object = sink.object;
  const bool removing = group.front()->payload.event == plugins::EventKind::remove;
  request.mode = !removing ? std::string(to_string(sink.mode))
                 : sink.on_delete == config::DeletePolicy::archive ? "archive"
                                                                   : "delete";
  request.match_on = sink.match_on;
  request.match_normalize = sink.match_normalize;
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
  std::vector<Item *> restore;
  for (size_t i = 0; i < group.size(); ++i) {
    Item &item = *group[i];
    const auto &r = (*results)[i];
    if (!r.ok && r.code == "not_found" && item.link && !removing) {
      // The linked record is gone: deleted there since this pipeline wrote it. An edit that
      // meets a delete; never a dead letter (it could not succeed).
      const bool keep = sink.on_delete == config::DeletePolicy::keep_edited;
      std::string detail = R"({"reason":"edit met delete","policy":)" +
                           json::quote(config::to_string(sink.on_delete)) + R"(,"resolution":")" +
                           (keep ? "restored" : "deleted") + R"(")";
      if (item.modified_ms)
        detail += R"(,"source_modified_at":)" +
                  json::quote(timeutil::format_iso8601_ms(*item.modified_ms));
      detail += R"(,"source":)" + item.mapped + R"(,"target":{"id":)" +
                json::quote(item.link->target_id) + R"(,"deleted":true}})";
      conflict(item, item.link->target_id, "edit_met_delete", std::move(detail), stats);
      // keep_edited: the edit wins and is created anew, unlinked from both directions. The
      // other policies let the delete win: this link closes, and the reverse pipeline's stays for
      // the delete to travel back to this record.
      deps_.store.close_links(keep ? linked_pipelines(item.payload.object)
                                   : std::vector<std::string>{deps_.pipeline.name},
                              sink.connection, item.link->target_id);
      item.link.reset();
      if (keep) {
        restore.push_back(&item);
      } else {
        item.settled = true;
        done.push_back(item.event.id);
        ++stats.unchanged;
      }
      continue;
    }
    if (!r.ok) {
      settle_failure(item, "push: " + r.code + ": " + r.message, r.retryable, {}, stats);
      continue;
    }
    // Deleted (or archived): neither direction writes to it again. An archived record stays
    // at the provider: noted, so that its echo is not taken for a new record (archived_echo).
    if (removing && item.link) {
      deps_.store.close_links(linked_pipelines(item.payload.object), sink.connection,
                              item.link->target_id);
      if (sink.on_delete == config::DeletePolicy::archive)
        deps_.store.note_archived(sink.connection, item.link->target_id);
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
  // Unlinked now, so pushed as new records (never back to this branch).
  if (!restore.empty()) push_group(restore, stats);
}

namespace {

void count_outcomes(const std::string &pipeline, const BatchStats &stats) {
  auto &registry = metrics::global();
  const std::pair<const char *, size_t> outcomes[] = {
      {"pushed", stats.pushed},     {"unchanged", stats.unchanged}, {"echo", stats.echoes},
      {"stale", stats.stale},       {"retried", stats.retried},     {"dead", stats.dead},
      {"released", stats.released}, {"linked", stats.linked}};
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
  std::vector<Item *> upserts, deletes, stale_items;
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
    // A converging copy (converge_stale) is sent because the target no longer holds what this
    // pipeline last wrote, whatever the link says: only newest_wins may stop it.
    const bool converging = item.event.request_id.rfind("converge:", 0) == 0;
    if (!converging && (target_keeps(p, item.link, item.hash) || item.echo)) {
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
      stale_items.push_back(&item);
      item.settled = true;
      continue;
    }
    upserts.push_back(&item);
  }
  if (!unchanged.empty()) {
    const size_t completed = deps_.store.complete_many(unchanged, items.front().event.claim_token);
    stats.unchanged += completed - std::min(completed, stats.echoes + stats.stale);
  }
  converge_stale(stale_items, nullptr);

  first_links(upserts, stats);
  settle_deletes(deletes, stats);
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
