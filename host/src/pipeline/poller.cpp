#include "pipeline/poller.hpp"

#include "pipeline/event_payload.hpp"
#include "util/metrics.hpp"
#include "util/time.hpp"

namespace crmhost::pipeline {

void count_received(const std::string &pipeline, const char *source, size_t fresh,
                    size_t duplicates) {
  const std::pair<const char *, size_t> outcomes[] = {{"new", fresh}, {"duplicate", duplicates}};
  for (const auto &[outcome, n] : outcomes)
    if (n)
      metrics::global().counter_add(
          "crmhost_events_received_total",
          "Events delivered by sources (webhook, poll or backfill): new, or duplicates absorbed.",
          {{"pipeline", pipeline}, {"source", source}, {"outcome", outcome}},
          static_cast<double>(n));
}

std::string lane_cursor_object(const std::string &object, PollLane lane) {
  return lane == PollLane::backfill ? "backfill:" + object : object;
}

PollOutcome run_poll(const config::PipelineConfig &pipeline, store::Store &store,
                     plugins::Connector &source, const PollOptions &options) {
  const auto &poll = *pipeline.poll;
  const std::string cursor_key = lane_cursor_object(poll.object, options.lane);
  const auto source_kind =
      options.lane == PollLane::backfill ? store::EventSource::backfill : store::EventSource::poll;
  PollOutcome outcome;
  std::optional<std::string> cursor;
  int64_t version = 0;
  // Everything that touches the store is inside the try, the run's own record included: a store
  // that refuses writes (a full disk) fails this run, and the poll lane tries again at its next
  // turn. An exception out of here would end the host (the lanes run on a thread pool).
  try {
    if (options.run_id)
      outcome.run_id = *options.run_id;
    else if (!options.dry_run)
      outcome.run_id = store.start_sync_run(pipeline.name, options.lane == PollLane::backfill
                                                               ? store::SyncRunKind::backfill
                                                               : store::SyncRunKind::poll);
    const std::string request_id = "run-" + std::to_string(outcome.run_id);

    if (auto stored = store.get_cursor(pipeline.name, cursor_key)) {
      version = stored->version;
      if (!stored->value.empty()) cursor = stored->value;
    }
    if (options.from_beginning) cursor.reset();

    for (;;) {
      if (options.stop_requested && options.stop_requested->load()) break;
      auto page = source.poll({poll.object, cursor, poll.page_size});
      if (!page) {
        outcome.ok = false;
        outcome.error = "poll: " + page.error().describe();
        break;
      }
      ++outcome.pages;
      outcome.counts.fetched += static_cast<int64_t>(page->records.size());
      if (options.since_ms) {
        // Records without a readable modification time are kept: better pushed than lost.
        std::erase_if(page->records, [&](const plugins::Record &r) {
          const auto modified =
              r.modified_at ? timeutil::parse_iso8601_ms(*r.modified_at) : std::nullopt;
          return modified && *modified < *options.since_ms;
        });
      }
      if (options.on_page) options.on_page(page->records);
      if (!options.dry_run) {
        store::CursorAdvance advance;
        advance.pipeline = pipeline.name;
        advance.object = cursor_key;
        advance.new_value = page->next_cursor.value_or(cursor.value_or(""));
        advance.expected_version = version;
        for (const auto &record : page->records)
          advance.events.push_back(make_event(pipeline.name, source_kind, poll.connection,
                                              payload_from(poll.object, record), request_id));
        auto result = store.advance_cursor(advance);
        if (!result.applied) {
          // Someone rewound the cursor meanwhile: stop; the next run starts from the rewind.
          outcome.error = "the cursor was moved during the run; stopped early";
          break;
        }
        version = result.version;
        size_t fresh = 0, duplicates = 0;
        for (const auto &e : result.events) (e.duplicate ? duplicates : fresh)++;
        outcome.counts.enqueued += fresh;
        outcome.counts.duplicates += duplicates;
        count_received(pipeline.name, options.lane == PollLane::backfill ? "backfill" : "poll",
                       fresh, duplicates);
      }
      cursor = page->next_cursor;
      if (options.on_progress) options.on_progress(outcome.counts, page->remaining);
      if (!page->more) break;
    }
  } catch (const std::exception &e) {
    outcome.ok = false;
    outcome.error = e.what();
  }
  if (outcome.run_id) {
    try {
      store.finish_sync_run(
          outcome.run_id,
          outcome.ok ? store::SyncRunStatus::succeeded : store::SyncRunStatus::failed,
          outcome.counts, outcome.error);
    } catch (const std::exception &) {
      // The run's record is bookkeeping; the events and cursor are already committed or not.
    }
  }
  return outcome;
}

}  // namespace crmhost::pipeline
