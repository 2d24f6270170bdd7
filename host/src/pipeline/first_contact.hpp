#pragma once
// The first contact of two populated systems: before a two-way pipeline writes anything, both
// sides are read and matched on the pipeline's match key (normalised as the sink's lookup
// compares it), and the plan says how many records would link (with the same values, or with
// differing values: conflicts), be created on each side, or cannot be told apart.
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "pipeline/processor.hpp"
#include "plugins/connector.hpp"
#include "store/store.hpp"

namespace crmhost::pipeline {

struct FirstContactPlan {
  int64_t source_records = 0;    // live records read from the source
  int64_t target_records = 0;    // live records read from the target
  int64_t already_linked = 0;    // source records linked by an earlier run
  int64_t link_same = 0;         // would link to a target record holding the same values
  int64_t link_conflicts = 0;    // would link, with differing values decided by the policy
  int64_t create_on_target = 0;  // source records without a counterpart
  int64_t create_on_source = 0;  // target records without a counterpart (two-way only)
  int64_t shared_keys = 0;       // source records whose key another source record also has
  int64_t unmappable = 0;
  bool two_way = false;
  std::vector<std::string> conflict_examples;  // "key: field, field" for the first few
  std::string error;                           // reading failed: the plan is incomplete
};

// Reads both sides (every page; memory in proportion to the target's records) and plans.
// `reverse` names the pipeline that writes back into the source, if any.
FirstContactPlan plan_first_contact(const config::PipelineConfig &pipeline, const MapFunction &map,
                                    store::Store &store, plugins::Connector &source,
                                    plugins::Connector &target,
                                    const std::optional<std::string> &reverse);

// One line: "would link 12 (3 with differing values: conflicts), create 4 in hubspot and ..."
std::string describe(const FirstContactPlan &plan, const config::PipelineConfig &pipeline,
                     const std::string &source_connection);

}  // namespace crmhost::pipeline
