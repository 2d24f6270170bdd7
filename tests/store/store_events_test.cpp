// The event queue: enqueue and dedupe, claims and their expiry, settling, replay, listing, purge.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "store_test_support.hpp"

using namespace crmhost::store;
using namespace crmhost::store::test;
using namespace std::chrono_literals;

namespace {

std::vector<NewEvent> make_events(const std::string &pipeline, int n, int first = 0) {
  std::vector<NewEvent> out;
  for (int i = first; i < first + n; ++i)
    out.push_back(make_event(pipeline, "r" + std::to_string(i)));
  return out;
}

}  // namespace

TEST_CASE("enqueue stores every field and reports ids in input order", "[events]") {
  TestDb db;
  auto store = db.open();
  NewEvent e = make_event("p1", "42", "created", R"({"x":1})");
  e.source = EventSource::poll;
  const EnqueueResult r = store->enqueue({e, make_event("p1", "43")});
  REQUIRE(r.size() == 2);
  CHECK_FALSE(r[0].duplicate);
  CHECK(r[1].id > r[0].id);

  const auto got = store->get_event(r[0].id);
  REQUIRE(got);
  CHECK(got->pipeline == "p1");
  CHECK(got->source == EventSource::poll);
  CHECK(got->connection == "hubspot-main");
  CHECK(got->object == "contact");
  CHECK(got->record_id == "42");
  CHECK(got->event_type == "created");
  CHECK(got->payload == R"({"x":1})");
  CHECK(got->dedupe_key == e.dedupe_key);
  CHECK(got->status == EventStatus::pending);
  CHECK(got->attempts == 0);
  CHECK(got->request_id == "req-42");
  CHECK_FALSE(got->finished_at);
  CHECK(store->get_event(999999) == std::nullopt);
}

TEST_CASE("dedupe: the same delivery twice is one event, update and delete are two", "[events]") {
  TestDb db;
  auto store = db.open();
  const std::string payload = R"({"id":"7","email":"a@example.com"})";
  const NewEvent update = make_event("p1", "7", "updated", payload);
  const NewEvent remove = make_event("p1", "7", "deleted", payload);
  CHECK(update.dedupe_key != remove.dedupe_key);
  CHECK(update.dedupe_key == "hubspot-main:contact:updated:7:" + sha256_hex(payload));

  const auto first = store->enqueue({update, remove});
  CHECK_FALSE(first[0].duplicate);
  CHECK_FALSE(first[1].duplicate);
  CHECK(first[0].id != first[1].id);

  // Redelivery (and a duplicate inside one batch) map to the stored event.
  const auto again = store->enqueue({update, make_event("p1", "8"), make_event("p1", "8")});
  CHECK(again[0].duplicate);
  CHECK(again[0].id == first[0].id);
  CHECK_FALSE(again[1].duplicate);
  CHECK(again[2].duplicate);
  CHECK(again[2].id == again[1].id);

  // The key is unique per pipeline only.
  CHECK_FALSE(store->enqueue({make_event("p2", "7", "updated", payload)})[0].duplicate);
  CHECK(store->list_events({}).size() == 4);
}

TEST_CASE("enqueue rejects events without pipeline or dedupe key", "[events]") {
  TestDb db;
  auto store = db.open();
  NewEvent e = make_event("p1", "1");
  e.dedupe_key.clear();
  CHECK_THROWS_AS(store->enqueue({make_event("p1", "0"), e}), StoreError);
  CHECK(store->list_events({}).empty());  // the batch is atomic
}

TEST_CASE("claim, complete, fail with retry, dead-letter", "[events]") {
  TestDb db;
  FakeClock clock;
  StoreOptions o = db.options();
  o.clock = clock.fn();
  auto store = db.open(o);
  store->enqueue(make_events("p1", 5));
  store->enqueue(make_events("other", 2));
  NewEvent later = make_event("p1", "later");
  later.not_before = clock.now() + 1h;
  store->enqueue({later});

  auto claimed = store->claim({"p1", "worker-a", 3, 30s});
  REQUIRE(claimed.size() == 3);
  for (const Event &e : claimed) {
    CHECK(e.status == EventStatus::in_flight);
    CHECK(e.attempts == 1);
    CHECK(e.claim_owner == "worker-a");
    CHECK(e.claim_token == claimed[0].claim_token);
    CHECK(e.claimed_until == clock.now() + 30s);
  }
  auto rest = store->claim({"p1", "worker-b", 10, 30s});
  CHECK(rest.size() == 2);  // not the other pipeline's, not the one due later
  CHECK(store->claim({"p1", "worker-b", 10, 30s}).empty());

  const std::string token = claimed[0].claim_token;
  CHECK(store->complete(claimed[0].id, token));
  CHECK_FALSE(store->complete(claimed[0].id, token));  // already settled
  CHECK_FALSE(store->complete(claimed[1].id, "not-the-token"));
  CHECK(store->fail(claimed[1].id, token, "HTTP 502 from target", clock.now() + 10s));
  CHECK(store->dead_letter(claimed[2].id, token, "HTTP 400: invalid email"));

  auto done = store->get_event(claimed[0].id);
  CHECK(done->status == EventStatus::done);
  CHECK(done->finished_at == clock.now());
  CHECK(done->claim_token.empty());
  auto failed = store->get_event(claimed[1].id);
  CHECK(failed->status == EventStatus::failed);
  CHECK(failed->last_error == "HTTP 502 from target");
  CHECK(failed->next_attempt_at == clock.now() + 10s);
  CHECK(store->get_event(claimed[2].id)->status == EventStatus::dead);

  // The failed one comes back when its retry time is reached, with attempts counted.
  CHECK(store->claim({"p1", "w", 10, 30s}).empty());
  clock.advance(10s);
  auto retried = store->claim({"p1", "w", 10, 30s});
  REQUIRE(retried.size() == 1);
  CHECK(retried[0].id == claimed[1].id);
  CHECK(retried[0].attempts == 2);
  CHECK(store->complete_many({retried[0].id, rest[0].id}, retried[0].claim_token) == 1);
  CHECK(store->complete_many({rest[0].id, rest[1].id}, rest[0].claim_token) == 2);
}

TEST_CASE("an abandoned claim comes back after its expiry; the old holder cannot settle it",
          "[events][claims]") {
  TestDb db;
  FakeClock clock;
  StoreOptions o = db.options();
  o.clock = clock.fn();
  auto store = db.open(o);
  store->enqueue(make_events("p1", 4));

  const auto crashed = store->claim({"p1", "worker-crashed", 10, 5s});
  REQUIRE(crashed.size() == 4);
  clock.advance(4999ms);
  CHECK(store->claim({"p1", "worker-b", 10, 5s}).empty());  // still held
  clock.advance(1ms);
  const auto taken = store->claim({"p1", "worker-b", 10, 5s});
  REQUIRE(taken.size() == 4);
  CHECK(taken[0].attempts == 2);
  CHECK(taken[0].claim_owner == "worker-b");
  CHECK(taken[0].claim_token != crashed[0].claim_token);

  // The slow "crashed" worker wakes up: every settle reports the lost claim and changes nothing.
  CHECK_FALSE(store->complete(crashed[0].id, crashed[0].claim_token));
  CHECK_FALSE(store->fail(crashed[1].id, crashed[0].claim_token, "x", clock.now()));
  CHECK_FALSE(store->dead_letter(crashed[2].id, crashed[0].claim_token, "x"));
  CHECK(store->complete_many({crashed[3].id}, crashed[0].claim_token) == 0);
  CHECK(store->get_event(crashed[0].id)->status == EventStatus::in_flight);
  CHECK(store->complete_many({taken[0].id, taken[1].id, taken[2].id, taken[3].id},
                             taken[0].claim_token) == 4);
}

TEST_CASE("claims expire in real time too", "[events][claims]") {
  TestDb db;
  auto store = db.open();
  store->enqueue(make_events("p1", 1));
  REQUIRE(store->claim({"p1", "a", 1, 150ms}).size() == 1);
  CHECK(store->claim({"p1", "b", 1, 150ms}).empty());
  std::this_thread::sleep_for(200ms);
  CHECK(store->claim({"p1", "b", 1, 150ms}).size() == 1);
}

TEST_CASE("replay one event or by filter", "[events][replay]") {
  TestDb db;
  FakeClock clock;
  StoreOptions o = db.options();
  o.clock = clock.fn();
  auto store = db.open(o);
  store->enqueue(make_events("p1", 6));
  store->enqueue(make_events("p2", 1));
  const Timestamp t0 = clock.now();
  auto c = store->claim({"p1", "w", 10, 30s});
  REQUIRE(c.size() == 6);
  const auto &tok = c[0].claim_token;
  REQUIRE(store->dead_letter(c[0].id, tok, "HTTP 400 invalid email"));
  REQUIRE(store->dead_letter(c[1].id, tok, "timeout talking to zoho"));
  REQUIRE(store->fail(c[2].id, tok, "timeout talking to zoho", t0 + 1h));
  REQUIRE(store->complete(c[3].id, tok));
  // c[4], c[5] stay in flight
  auto p2 = store->claim({"p2", "w", 10, 30s});
  REQUIRE(store->dead_letter(p2[0].id, p2[0].claim_token, "timeout"));

  CHECK_FALSE(store->replay(c[4].id));  // in flight: left alone
  ReplayFilter by_error;
  by_error.pipeline = "p1";
  by_error.error_contains = "timeout";
  CHECK(store->replay(by_error) == 2);
  auto replayed = store->get_event(c[2].id);
  CHECK(replayed->status == EventStatus::pending);
  CHECK(replayed->attempts == 0);
  CHECK(replayed->next_attempt_at == t0);

  ReplayFilter window;
  window.statuses = {EventStatus::dead, EventStatus::done};
  window.received_from = t0 + 1s;  // nothing received after t0
  CHECK(store->replay(window) == 0);
  window.received_from = t0;
  window.received_to = t0 + 1ms;
  window.pipeline = "p1";
  CHECK(store->replay(window) == 2);  // the 400 dead letter and the done one
  CHECK(store->replay(p2[0].id));
  ReplayFilter in_flight;
  in_flight.statuses = {EventStatus::in_flight};
  CHECK_THROWS_AS(store->replay(in_flight), StoreError);

  CHECK(store->claim({"p1", "w2", 10, 30s}).size() == 4);
}

TEST_CASE("list events with keyset pagination and count by status", "[events][admin]") {
  TestDb db;
  auto store = db.open();
  store->enqueue(make_events("p1", 5));
  store->enqueue(make_events("p2", 3));
  auto claimed = store->claim({"p1", "w", 2, 30s});
  REQUIRE(store->complete(claimed[0].id, claimed[0].claim_token));

  EventQuery q;
  q.pipeline = "p1";
  q.limit = 2;
  std::vector<EventId> seen;
  for (;;) {
    auto page = store->list_events(q);
    if (page.empty()) break;
    for (const auto &e : page) seen.push_back(e.id);
    q.after_id = page.back().id;
  }
  CHECK(seen.size() == 5);
  CHECK(std::is_sorted(seen.begin(), seen.end()));

  EventQuery pending;
  pending.status = EventStatus::pending;
  CHECK(store->list_events(pending).size() == 6);

  std::map<std::pair<std::string, EventStatus>, std::int64_t> counts;
  for (const auto &c : store->count_by_status()) counts[{c.pipeline, c.status}] = c.count;
  CHECK(counts[{"p1", EventStatus::pending}] == 3);
  CHECK(counts[{"p1", EventStatus::in_flight}] == 1);
  CHECK(counts[{"p1", EventStatus::done}] == 1);
  CHECK(counts[{"p2", EventStatus::pending}] == 3);
  CHECK(store->count_by_status(std::string("p2")).size() == 1);
}

TEST_CASE("retention purges old done events in batches", "[events][retention]") {
  TestDb db;
  FakeClock clock;
  StoreOptions o = db.options();
  o.clock = clock.fn();
  auto store = db.open(o);
  store->enqueue(make_events("p1", 7));
  auto c = store->claim({"p1", "w", 5, 30s});
  std::vector<EventId> ids;
  for (const auto &e : c) ids.push_back(e.id);
  REQUIRE(store->complete_many(ids, c[0].claim_token) == 5);
  clock.advance(2h);
  auto late = store->claim({"p1", "w", 1, 30s});
  REQUIRE(store->complete(late[0].id, late[0].claim_token));  // done, but recently

  CHECK(store->purge_done_events(1h, 2) == 5);
  CHECK(store->list_events({}).size() == 2);  // the recent done one and the pending one
  CHECK(store->purge_done_events(1h, 2) == 0);
  // A purged delivery can no longer be deduplicated: that is the retention trade-off.
  CHECK_FALSE(store->enqueue(make_events("p1", 1))[0].duplicate);
}

TEST_CASE("concurrent workers claim from one queue: every event processed exactly once",
          "[events][concurrency]") {
  TestDb db;
  constexpr int kEvents = 2000;
  constexpr int kThreads = 4;
  // Two store instances stand in for two hosts; each has its own connections (a pool of several
  // for PostgreSQL, its own writer for SQLite).
  StoreOptions o = db.options();
  o.pg_pool_size = 3;
  std::vector<std::unique_ptr<Store>> hosts;
  hosts.push_back(db.open(o));
  hosts.push_back(db.open(o));
  for (int i = 0; i < kEvents; i += 200) hosts[0]->enqueue(make_events("p1", 200, i));

  std::mutex mutex;
  std::vector<EventId> processed;
  std::atomic<int> lost{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      Store &store = *hosts[t % 2];
      for (;;) {
        auto batch = store.claim({"p1", "worker-" + std::to_string(t), 25, 60s});
        if (batch.empty()) return;
        std::vector<EventId> ids;
        for (const auto &e : batch) ids.push_back(e.id);
        {
          std::lock_guard lock(mutex);
          processed.insert(processed.end(), ids.begin(), ids.end());
        }
        lost += static_cast<int>(ids.size() - store.complete_many(ids, batch[0].claim_token));
      }
    });
  }
  for (auto &w : workers) w.join();

  CHECK(lost == 0);
  CHECK(processed.size() == kEvents);
  CHECK(std::set<EventId>(processed.begin(), processed.end()).size() == kEvents);
  auto counts = hosts[1]->count_by_status(std::string("p1"));
  REQUIRE(counts.size() == 1);
  CHECK(counts[0].status == EventStatus::done);
  CHECK(counts[0].count == kEvents);
}

TEST_CASE("concurrent producers: group commit keeps every batch and its dedupe",
          "[events][concurrency]") {
  TestDb db;
  auto store = db.open();
  constexpr int kThreads = 6;
  constexpr int kBatches = 40;
  std::atomic<int> duplicates{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        // Producers overlap pairwise on purpose: the same deliveries arrive twice.
        auto r = store->enqueue(make_events("p1", 5, ((t / 2) * kBatches + b) * 5));
        for (const auto &o : r) duplicates += o.duplicate ? 1 : 0;
      }
    });
  }
  for (auto &p : producers) p.join();
  CHECK(duplicates == kThreads / 2 * kBatches * 5);
  EventQuery all;
  all.limit = 10000;
  CHECK(store->list_events(all).size() == kThreads / 2 * kBatches * 5);
}

TEST_CASE("expired claims can be requeued to pending for operators", "[events][claims]") {
  TestDb db;
  FakeClock clock;
  StoreOptions o = db.options();
  o.clock = clock.fn();
  auto store = db.open(o);
  store->enqueue(make_events("p1", 3));
  const auto crashed = store->claim({"p1", "worker-crashed", 2, 5s});
  REQUIRE(crashed.size() == 2);
  CHECK(store->requeue_expired_claims() == 0);
  clock.advance(5s);
  CHECK(store->requeue_expired_claims() == 2);
  auto back = store->get_event(crashed[0].id);
  CHECK(back->status == EventStatus::pending);
  CHECK(back->claim_token.empty());
  CHECK_FALSE(store->complete(crashed[0].id, crashed[0].claim_token));
  const auto again = store->claim({"p1", "worker-b", 10, 5s});
  CHECK(again.size() == 3);
  CHECK(again[0].attempts == 2);  // the earlier claim still counts as an attempt
}
