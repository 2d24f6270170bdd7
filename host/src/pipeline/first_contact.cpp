#include "pipeline/first_contact.hpp"

#include <map>
#include <set>

#include "util/json.hpp"
#include "util/time.hpp"

namespace crmhost::pipeline {

namespace {

// Every live record of `object`, page by page; false (with `error`) when a page fails.
bool read_all(plugins::Connector &connector, const std::string &object,
              const std::function<void(const plugins::Record &)> &each, std::string &error) {
  std::optional<std::string> cursor;
  for (int pages = 0; pages < 1'000'000; ++pages) {
    auto page = connector.poll({object, cursor, 100});
    if (!page) {
      error =
          "reading " + object + " from " + connector.connection() + ": " + page.error().describe();
      return false;
    }
    for (const auto &r : page->records)
      if (r.event != plugins::EventKind::remove) each(r);
    if (!page->more || !page->next_cursor || page->next_cursor == cursor) return true;
    cursor = page->next_cursor;
  }
  return true;
}

std::optional<int64_t> modified_ms(const plugins::Record &r) {
  return r.modified_at ? timeutil::parse_iso8601_ms(*r.modified_at) : std::nullopt;
}

}  // namespace

FirstContactPlan plan_first_contact(const config::PipelineConfig &pipeline, const MapFunction &map,
                                    store::Store &store, plugins::Connector &source,
                                    plugins::Connector &target,
                                    const std::optional<std::string> &reverse) {
  FirstContactPlan plan;
  plan.two_way = reverse.has_value();
  const auto &sink = pipeline.sink;
  if (!pipeline.poll || !sink.match_on) {
    plan.error = "pipeline " + pipeline.name + " needs a poll source and a match_on to plan";
    return plan;
  }
  const auto key_of = [&](const std::string &data_json) -> std::string {
    rapidjson::Document doc;
    if (json::try_parse(data_json, doc, "record") || !doc.IsObject()) return "";
    const auto *v = json::member(doc, sink.match_on->c_str());
    if (!v || !(v->IsString() || v->IsNumber())) return "";
    return normalize_match_key(
        v->IsString() ? std::string(v->GetString(), v->GetStringLength()) : json::to_string(*v),
        sink.match_normalize);
  };

  // The target first: its records by normalised key (the oldest id wins, as the plugins' lookups).
  struct TargetRecord {
    plugins::Record record;
    bool matched = false;
  };
  std::map<std::string, TargetRecord> by_key;
  std::vector<plugins::Record> keyless_targets;
  if (!read_all(
          target, sink.object,
          [&](const plugins::Record &r) {
            ++plan.target_records;
            const auto key = key_of(r.data_json);
            if (key.empty())
              keyless_targets.push_back(r);
            else
              by_key.try_emplace(key, TargetRecord{r, false});
          },
          plan.error))
    return plan;

  std::set<std::string> source_keys;
  if (!read_all(
          source, pipeline.poll->object,
          [&](const plugins::Record &r) {
            ++plan.source_records;
            auto mapped = map(r.data_json);
            if (!mapped) {
              ++plan.unmappable;
              return;
            }
            const auto key = key_of(*mapped);
            if (!key.empty() && !source_keys.insert(key).second) ++plan.shared_keys;
            if (auto link = store.find_link_by_source(pipeline.name, source.connection(), r.id)) {
              ++plan.already_linked;
              if (auto it = by_key.find(key); it != by_key.end()) it->second.matched = true;
              return;
            }
            auto it = key.empty() ? by_key.end() : by_key.find(key);
            if (it == by_key.end() || it->second.matched) {
              ++plan.create_on_target;
              return;
            }
            it->second.matched = true;
            const auto merge = merge_first_link(sink, *mapped, it->second.record.data_json,
                                                modified_ms(r), modified_ms(it->second.record));
            if (merge.clashes.empty()) {
              ++plan.link_same;
              return;
            }
            ++plan.link_conflicts;
            if (plan.conflict_examples.size() < 5) {
              std::string example = key + ":";
              for (const auto &c : merge.clashes) example += " " + c.field;
              plan.conflict_examples.push_back(example);
            }
          },
          plan.error))
    return plan;

  if (plan.two_way) {
    const auto unlinked = [&](const plugins::Record &r) {
      return !store.find_link_by_target(pipeline.name, sink.connection, r.id) &&
             !store.find_link_by_source(*reverse, sink.connection, r.id);
    };
    for (const auto &[key, t] : by_key)
      if (!t.matched && unlinked(t.record)) ++plan.create_on_source;
    for (const auto &r : keyless_targets)
      if (unlinked(r)) ++plan.create_on_source;
  }
  return plan;
}

std::string describe(const FirstContactPlan &plan, const config::PipelineConfig &pipeline,
                     const std::string &source_connection) {
  std::string out = "read " + std::to_string(plan.source_records) + " in " + source_connection +
                    " and " + std::to_string(plan.target_records) + " in " +
                    pipeline.sink.connection + "; would link " +
                    std::to_string(plan.link_same + plan.link_conflicts) + " on " +
                    *pipeline.sink.match_on + " (" + std::to_string(plan.link_conflicts) +
                    " with differing values: conflicts, decided by " +
                    std::string(config::to_string(pipeline.sink.conflict)) + "), create " +
                    std::to_string(plan.create_on_target) + " in " + pipeline.sink.connection;
  if (plan.two_way)
    out += " and " + std::to_string(plan.create_on_source) + " in " + source_connection;
  if (plan.already_linked) out += "; " + std::to_string(plan.already_linked) + " already linked";
  if (plan.shared_keys)
    out += "; " + std::to_string(plan.shared_keys) + " source records share a key with another";
  if (plan.unmappable) out += "; " + std::to_string(plan.unmappable) + " cannot be mapped";
  if (!plan.conflict_examples.empty()) {
    out += "; conflicts such as";
    for (size_t i = 0; i < plan.conflict_examples.size(); ++i)
      out += (i ? ", " : " ") + std::string("[") + plan.conflict_examples[i] + "]";
  }
  if (!plan.error.empty()) out += "; incomplete: " + plan.error;
  return out;
}

}  // namespace crmhost::pipeline
