#pragma once
// One poll run of a pipeline: page through the source from the stored cursor, committing each
// page's events and the new cursor in one transaction. A failed run leaves the cursor at the
// last committed page, so nothing is skipped and the next run resumes there.
#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "plugins/connector.hpp"
#include "store/store.hpp"

namespace crmhost::pipeline {

enum class PollLane { live, backfill };

// The cursor key of a lane: a backfill pages with a cursor of its own, so it never moves the
// live one and both can run side by side.
std::string lane_cursor_object(const std::string &object, PollLane lane);

struct PollOptions {
  PollLane lane = PollLane::live;
  bool dry_run = false;         // backfill only: page and count, enqueue nothing
  bool from_beginning = false;  // backfill: restart its cursor
  const std::atomic<bool> *stop_requested = nullptr;
  std::optional<int64_t> run_id;    // a sync run already started (by an API call) to report into
  std::optional<int64_t> since_ms;  // skip records modified before this (Unix ms), when known
  // After each page, with the records the source says are left (when it says).
  std::function<void(const store::SyncRunCounts &, std::optional<uint64_t> remaining)> on_progress;
  std::function<void(const std::vector<plugins::Record> &)> on_page;  // the kept records
};

struct PollOutcome {
  int64_t run_id = 0;  // 0 for dry runs (nothing is recorded)
  store::SyncRunCounts counts;
  bool ok = true;
  std::string error;
  int pages = 0;
};

PollOutcome run_poll(const config::PipelineConfig &pipeline, store::Store &store,
                     plugins::Connector &source, const PollOptions &options);

// Counts events a source delivered (`source`: "webhook" or "poll"): new ones and duplicates
// absorbed, in crmhost_events_received_total.
void count_received(const std::string &pipeline, const char *source, size_t fresh,
                    size_t duplicates);

}  // namespace crmhost::pipeline
