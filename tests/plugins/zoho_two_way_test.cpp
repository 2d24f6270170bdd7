// Zoho Contacts <-> HubSpot contacts both ways through the engine, end to end: both sandboxes on
// loopback, zoho.so and hubspot.so over the host's real HTTP client, a SQLite store, and a
// configuration loaded from YAML (zoho_world.hpp). Contacts are seeded on both sides (some on one
// side only, some on both with the email in another case), synced, then edited on both sides
// while both sandboxes inject 429s, 5xx and dropped connections; Zoho's changes reach the host by
// polling and by actions/watch notifications. Asserted: both sides converge (one record per
// email on each side, equal field values, each edit where newest_wins puts it), nothing loops
// (no write on either side over a quiet period), nothing is dead-lettered, the faults were hit,
// and every Zoho write carried `trigger: []`.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "util/metrics.hpp"
#include "zoho_world.hpp"

using namespace zohoworld;

namespace {

std::string zoho_email(int i) {
  return "zoho" + std::to_string(i) + "@example.com";
}
std::string hubspot_email(int i) {
  return "hubspot" + std::to_string(i) + "@example.com";
}
std::string shared_email(int i) {
  return "shared" + std::to_string(i) + "@example.com";
}

}  // namespace

TEST_CASE("Zoho and HubSpot edited on both sides with faults converge without loops") {
  World w;
  const auto echo_count = [] {
    return crmhost::metrics::global().counter_sum("crmhost_events_total", {{"outcome", "echo"}});
  };
  const double echoes_before = echo_count();  // the registry is the process's
  constexpr int kOneSide = 15, kShared = 10, kSharedDiffering = 3;
  std::map<std::string, Expected> expected;  // by email in lower case
  {
    std::vector<crmsandbox::ZohoFields> zoho_seeds;
    std::vector<crmsandbox::HubSpotSeed> hubspot_seeds;
    for (int i = 0; i < kOneSide; ++i) {
      const std::string n = std::to_string(i);
      zoho_seeds.push_back({{"Email", zoho_email(i)},
                            {"First_Name", "Zed" + n},
                            {"Last_Name", "Zoho" + n},
                            {"Mailing_City", "Pune " + n},
                            {"Title", "Zoho title " + n}});
      expected[zoho_email(i)] = {"Zed" + n, "Zoho" + n, "Pune " + n, "Zoho title " + n};
      hubspot_seeds.push_back({{{"email", hubspot_email(i)},
                                {"firstname", "Hal" + n},
                                {"lastname", "Hub" + n},
                                {"city", "Boston " + n},
                                {"jobtitle", "HubSpot title " + n}}});
      expected[hubspot_email(i)] = {"Hal" + n, "Hub" + n, "Boston " + n, "HubSpot title " + n};
    }
    // On both sides before the sync, the email spelled differently; the last few with another
    // city in HubSpot, edited an hour ago: newest_wins keeps Zoho's (seeded now) at the first
    // link.
    const int64_t hour_ago =
        std::chrono::duration_cast<std::chrono::milliseconds>(
            (std::chrono::system_clock::now() - std::chrono::hours(1)).time_since_epoch())
            .count();
    for (int i = 0; i < kShared; ++i) {
      const std::string n = std::to_string(i);
      const bool differs = i >= kShared - kSharedDiffering;
      zoho_seeds.push_back({{"Email", "Shared" + n + "@Example.COM"},
                            {"First_Name", "Sam" + n},
                            {"Last_Name", "Both" + n},
                            {"Mailing_City", "Ghent " + n},
                            {"Title", "Shared title " + n}});
      hubspot_seeds.push_back({{{"email", shared_email(i)},
                                {"firstname", "Sam" + n},
                                {"lastname", "Both" + n},
                                {"city", differs ? "Old city " + n : "Ghent " + n},
                                {"jobtitle", "Shared title " + n}},
                               hour_ago,
                               hour_ago});
      expected[shared_email(i)] = {"Sam" + n, "Both" + n, "Ghent " + n, "Shared title " + n};
    }
    w.zoho.seed(kOrg, "Contacts", zoho_seeds);
    w.hubspot.seed(kPortal, "contacts", hubspot_seeds);
  }
  const size_t seeded = expected.size();
  // Faults from the first request on (the token refresh, the channel subscription and the
  // backfill run through them too), drawn from fixed seeds.
  const crmsandbox::FaultConfig faults{0.04, 0.05, 0, 0.03, 0};  // 429, 5xx, -, dropped, -
  w.zoho.set_faults(faults);
  w.hubspot.set_faults(faults);
  w.start();

  INFO("backfill");
  const auto backfill_deadline = Clock::now() + 30s;
  while (Clock::now() < backfill_deadline &&
         (w.zoho_side().size() < seeded || w.hubspot_side().size() < seeded))
    std::this_thread::sleep_for(100ms);
  REQUIRE(w.wait_quiescent(30s));
  std::map<std::string, std::string> zoho_ids, hubspot_ids;
  for (const auto &[email, seen] : w.zoho_side()) zoho_ids[email] = seen.id;
  for (const auto &[email, seen] : w.hubspot_side()) hubspot_ids[email] = seen.id;
  REQUIRE(zoho_ids.size() == seeded);
  REQUIRE(hubspot_ids.size() == seeded);

  // Edits on both sides at once, both pipelines running: records 0-4 of each origin edited in
  // Zoho, 5-9 in HubSpot; a new contact on each side.
  std::vector<std::string> zoho_errors, hubspot_errors;  // Catch2 is not thread-safe
  std::thread zoho_user([&] {
    try {
      for (int i = 0; i < 5; ++i) {
        const std::string n = std::to_string(i);
        for (const auto &email : {zoho_email(i), hubspot_email(i)})
          if (!w.zoho.update_record(kOrg, "Contacts", zoho_ids.at(email),
                                    {{"Mailing_City", "Zoho edit " + n}, {"Last_Name", "Zl" + n}}))
            zoho_errors.push_back("no contact " + email);
        std::this_thread::sleep_for(40ms);
      }
      w.zoho.create_record(kOrg, "Contacts",
                           {{"Email", std::string("New.Zoho@Example.com")},
                            {"First_Name", std::string("Nia")},
                            {"Last_Name", std::string("Zoho")},
                            {"Mailing_City", std::string("Chennai")},
                            {"Title", std::string("Founder")}});
    } catch (const std::exception &e) {
      zoho_errors.push_back(e.what());
    }
  });
  std::thread hubspot_user([&] {
    try {
      for (int i = 5; i < 10; ++i) {
        const std::string n = std::to_string(i);
        for (const auto &email : {zoho_email(i), hubspot_email(i)})
          if (!w.hubspot.update_record(kPortal, "contacts", hubspot_ids.at(email),
                                       {{"jobtitle", "HubSpot edit " + n}, {"lastname", "Hl" + n}}))
            hubspot_errors.push_back("no contact " + email);
        std::this_thread::sleep_for(40ms);
      }
      w.hubspot.create_record(kPortal, "contacts",
                              {{"email", "new.hubspot@example.com"},
                               {"firstname", "Hugo"},
                               {"lastname", "Spot"},
                               {"city", "Denver"},
                               {"jobtitle", "Buyer"}});
    } catch (const std::exception &e) {
      hubspot_errors.push_back(e.what());
    }
  });
  zoho_user.join();
  hubspot_user.join();
  CHECK(zoho_errors.empty());
  CHECK(hubspot_errors.empty());
  for (int i = 0; i < 10; ++i) {
    const std::string n = std::to_string(i);
    for (const auto &email : {zoho_email(i), hubspot_email(i)}) {
      auto &e = expected.at(email);
      if (i < 5) {
        e.city = "Zoho edit " + n;
        e.last = "Zl" + n;
      } else {
        e.title = "HubSpot edit " + n;
        e.last = "Hl" + n;
      }
    }
  }
  expected["new.zoho@example.com"] = {"Nia", "Zoho", "Chennai", "Founder"};
  expected["new.hubspot@example.com"] = {"Hugo", "Spot", "Denver", "Buyer"};

  // Shared records 0-2 edited on both sides, Zoho first and HubSpot in a later second (Zoho
  // stamps whole seconds), while neither pipeline runs, to fix the order: whichever pipeline
  // runs first, newest_wins keeps HubSpot's edit on both sides.
  w.engine->pause(kToHubSpot);
  w.engine->pause(kToZoho);
  for (int i = 0; i < 3; ++i)
    CHECK(w.zoho.update_record(kOrg, "Contacts", zoho_ids.at(shared_email(i)),
                               {{"Mailing_City", "Zoho both " + std::to_string(i)}}));
  std::this_thread::sleep_for(1100ms);
  for (int i = 0; i < 3; ++i) {
    const std::string n = std::to_string(i);
    CHECK(w.hubspot.update_record(kPortal, "contacts", hubspot_ids.at(shared_email(i)),
                                  {{"city", "HubSpot both " + n}}));
    expected.at(shared_email(i)).city = "HubSpot both " + n;
  }
  w.engine->resume(kToHubSpot);
  w.engine->resume(kToZoho);

  INFO("after the edits");
  REQUIRE(w.wait_quiescent(45s));

  const auto zoho = w.zoho_side();
  const auto hubspot = w.hubspot_side();
  // No duplicates: one record per email on each side, the same emails on both.
  CHECK(zoho.size() == expected.size());
  CHECK(hubspot.size() == expected.size());
  for (const auto &[email, want] : expected) {
    INFO(email);
    auto z = zoho.find(email);
    auto h = hubspot.find(email);
    REQUIRE(z != zoho.end());
    REQUIRE(h != hubspot.end());
    CHECK(z->second.count == 1);
    CHECK(h->second.count == 1);
    INFO("Zoho " << describe(z->second.values) << " HubSpot " << describe(h->second.values)
                 << " expected " << describe(want));
    CHECK(z->second.values == h->second.values);  // converged
    CHECK(z->second.values == want);
  }

  // Nothing dead-lettered.
  const auto dead = w.db->list_events({std::nullopt, EventStatus::dead, 0, 100});
  for (const auto &e : dead)
    UNSCOPED_INFO("dead: " << e.pipeline << " " << e.record_id << " " << e.last_error);
  CHECK(dead.empty());

  // The faults were really injected on both sides.
  const auto zs = w.zoho.stats();
  const auto hs = w.hubspot.stats();
  UNSCOPED_INFO("Zoho: " << zs.requests << " requests, " << zs.injected_429 << " 429, "
                         << zs.injected_5xx << " 5xx, " << zs.dropped
                         << " dropped; HubSpot: " << hs.requests << " requests, " << hs.injected_429
                         << " 429, " << hs.injected_5xx << " 5xx, " << hs.dropped << " dropped");
  CHECK(zs.injected_429 > 0);
  CHECK(zs.injected_5xx > 0);
  CHECK(hs.injected_429 > 0);
  CHECK(hs.injected_5xx > 0);

  // Every Zoho write asked for no workflow (`trigger: []`) and upserts matched on Email.
  const auto writes = w.zoho.write_calls();
  CHECK(!writes.empty());
  for (const auto &call : writes) {
    INFO(call.operation << " " << call.body);
    REQUIRE(call.trigger.has_value());
    CHECK(call.trigger->empty());
    if (call.operation == "upsert")
      CHECK(call.duplicate_check_fields == std::vector<std::string>{"Email"});
  }

  // Zoho's notifications reached the engine (the channel was subscribed by the plugin).
  size_t notified = 0;
  for (const auto &d : w.zoho.deliveries()) notified += d.kind == "notification" && d.status == 200;
  CHECK(notified > 0);

  // Echoes were recognised and stopped: over two more polls of each pipeline no event is added
  // and neither side is written again.
  CHECK(echo_count() > echoes_before);
  const auto events_before = w.events();
  const auto zoho_writes_before = writes.size();
  const auto runs_hubspot = w.poll_runs(kToHubSpot), runs_zoho = w.poll_runs(kToZoho);
  const auto deadline = Clock::now() + 10s;
  while (Clock::now() < deadline &&
         (w.poll_runs(kToHubSpot) < runs_hubspot + 2 || w.poll_runs(kToZoho) < runs_zoho + 2))
    std::this_thread::sleep_for(100ms);
  CHECK(w.poll_runs(kToHubSpot) >= runs_hubspot + 2);
  CHECK(w.poll_runs(kToZoho) >= runs_zoho + 2);
  CHECK(w.events() == events_before);
  CHECK(w.unsettled() == 0);
  CHECK(w.zoho.write_calls().size() == zoho_writes_before);
  const auto zoho_after = w.zoho_side();
  const auto hubspot_after = w.hubspot_side();
  for (const auto &[email, seen] : zoho) {
    INFO(email);
    CHECK(zoho_after.at(email).stamp == seen.stamp);
    CHECK(hubspot_after.at(email).stamp == hubspot.at(email).stamp);
  }
  if (std::getenv("TWO_WAY_DEBUG")) {  // every event and conflict, to see how a run went
    for (const auto &e : w.db->list_events({std::nullopt, std::nullopt, 0, 100000}))
      std::fprintf(stderr, "event %lld %s %s %s %s %s\n", static_cast<long long>(e.id),
                   e.pipeline.c_str(), e.record_id.c_str(),
                   std::string(crmhost::store::to_string(e.status)).c_str(), e.last_error.c_str(),
                   e.payload.c_str());
    for (const auto &c : w.db->list_conflicts(std::nullopt, false))
      std::fprintf(stderr, "conflict %s %s %s\n", c.pipeline.c_str(), c.source_id.c_str(),
                   c.detail.c_str());
  }
}
