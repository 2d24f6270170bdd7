// Sync semantics end to end, HubSpot <-> Odoo on their sandboxes through the engine: match keys
// that differ in case or spaces link (each direction alone, so neither can hide the other's
// lookup), a first link of two existing records merges by newest_wins and records the overruled
// values, and a delete on one side that meets an edit on the other ends as on_delete says, with
// a conflict recorded and nothing dead-lettered.
#include <algorithm>

#include "crm_world.hpp"

#include "util/json.hpp"
#include "util/time.hpp"

namespace {

std::string normal(std::string email) {
  while (!email.empty() && email.back() == ' ') email.pop_back();
  std::transform(email.begin(), email.end(), email.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return email;
}

// Odoo's contacts (not companies) whose email is `email` once normalised.
std::vector<crmsandbox::OdooRecord> odoo_contacts(const World &w, const std::string &email) {
  std::vector<crmsandbox::OdooRecord> out;
  for (const auto &r : w.odoo.records(kDb, "res.partner")) {
    auto company = r.values.find("is_company");
    if (company != r.values.end() && std::get_if<bool>(&company->second) &&
        std::get<bool>(company->second))
      continue;
    if (normal(text(r.values, "email")) == email) out.push_back(r);
  }
  return out;
}

std::vector<crmsandbox::HubSpotRecord> hubspot_contacts(const World &w, const std::string &email) {
  std::vector<crmsandbox::HubSpotRecord> out;
  for (const auto &r : w.hubspot.records(kPortal, "contacts"))
    if (normal(property(r.properties, "email")) == email) out.push_back(r);
  return out;
}

std::vector<crmhost::store::Conflict> conflicts(World &w,
                                                std::initializer_list<const char *> reasons) {
  std::vector<crmhost::store::Conflict> out;
  for (auto &c : w.db->list_conflicts(std::nullopt)) {
    const auto detail = crmhost::json::parse(c.detail, "conflict detail");
    for (const char *reason : reasons)
      if (std::string(detail["reason"].GetString()) == reason) out.push_back(c);
  }
  return out;
}

int64_t dead(World &w) {
  return w.count(kToOdoo, {EventStatus::dead}) + w.count(kToHubSpot, {EventStatus::dead});
}

}  // namespace

TEST_CASE("keys that differ in case or spaces link instead of duplicating, each direction") {
  World w;
  SECTION("HubSpot -> Odoo finds 'Ann@Example.com' and 'bob@example.com ' in Odoo") {
    w.hubspot.seed(kPortal, "contacts",
                   {{{{"email", "ann@example.com"}, {"firstname", "Ann"}, {"lastname", "Smith"}}},
                    {{{"email", "bob@example.com"}, {"firstname", "Bob"}, {"lastname", "Jones"}}}});
    w.odoo.seed(kDb, "res.partner",
                {{{"name", std::string("Ann Smith")}, {"email", std::string("Ann@Example.com")}},
                 {{"name", std::string("Bob Jones")}, {"email", std::string("bob@example.com ")}}});
    w.to_hubspot = false;
    w.start();
    REQUIRE(w.wait_quiescent(60s, {kToOdoo}));
    CHECK(odoo_contacts(w, "ann@example.com").size() == 1);
    CHECK(odoo_contacts(w, "bob@example.com").size() == 1);
    CHECK(w.odoo.count(kDb, "res.partner") == 2);
    const auto ann = hubspot_contacts(w, "ann@example.com");
    REQUIRE(ann.size() == 1);
    auto link = w.db->find_link_by_source(kToOdoo, "hubspot", ann[0].id);
    REQUIRE(link);
    CHECK(link->target_id == std::to_string(odoo_contacts(w, "ann@example.com")[0].id));
  }
  SECTION("Odoo -> HubSpot finds HubSpot's contact for Odoo's 'Cy@Example.COM '") {
    w.hubspot.seed(kPortal, "contacts",
                   {{{{"email", "cy@example.com"}, {"firstname", "Cy"}, {"lastname", "Young"}}}});
    w.odoo.seed(kDb, "res.partner",
                {{{"name", std::string("Cy Young")}, {"email", std::string("Cy@Example.COM ")}}});
    w.to_odoo = false;
    w.start();
    REQUIRE(w.wait_quiescent(60s, {kToHubSpot}));
    CHECK(hubspot_contacts(w, "cy@example.com").size() == 1);
    CHECK(w.hubspot.count(kPortal, "contacts") == 1);
    const auto cy = odoo_contacts(w, "cy@example.com");
    REQUIRE(cy.size() == 1);
    CHECK(w.db->find_link_by_source(kToHubSpot, "odoo", std::to_string(cy[0].id)));
  }
  CHECK(dead(w) == 0);
  CHECK(conflicts(w, {"first link"}).empty());  // the same values: linked as they are
}

TEST_CASE("a first link of two existing records merges by newest_wins, both sides agreeing") {
  World w;
  // HubSpot's record is a minute old; Odoo's was written now: Odoo's differing values win.
  const int64_t old_ms = wall_ms() - 60'000;
  w.hubspot.seed(kPortal, "contacts",
                 {{{{"email", "dee@example.com"},
                    {"firstname", "Dee"},
                    {"lastname", "Old"},
                    {"city", "Ghent"}},
                   old_ms,
                   old_ms}});
  w.odoo.seed(kDb, "res.partner",
              {{{"name", std::string("Dee New")},
                {"email", std::string("DEE@example.com")},
                {"city", std::string("Antwerp")}}});
  w.start();
  REQUIRE(w.wait_quiescent(60s));
  const auto hub = hubspot_contacts(w, "dee@example.com");
  const auto odo = odoo_contacts(w, "dee@example.com");
  REQUIRE(hub.size() == 1);
  REQUIRE(odo.size() == 1);
  CHECK(property(hub[0].properties, "city") == "Antwerp");
  CHECK(property(hub[0].properties, "lastname") == "New");
  CHECK(text(odo[0].values, "city") == "Antwerp");
  CHECK(text(odo[0].values, "name") == "Dee New");
  // The overruled values are kept in a conflict, whichever direction linked first.
  const auto first = conflicts(w, {"first link"});
  REQUIRE_FALSE(first.empty());
  bool city_recorded = false;
  for (const auto &c : first) {
    const auto detail = crmhost::json::parse(c.detail, "detail");
    CHECK(std::string(detail["policy"].GetString()) == "newest_wins");
    if (!detail["fields"].HasMember("city")) continue;
    const auto &city = detail["fields"]["city"];
    const std::string source = city["source"].GetString(), target = city["target"].GetString();
    CHECK(
        ((source == "Ghent" && target == "Antwerp") || (source == "Antwerp" && target == "Ghent")));
    const std::string kept = city["kept"].GetString();
    CHECK((kept == "source" ? source : target) == "Antwerp");
    city_recorded = true;
  }
  CHECK(city_recorded);
  CHECK(dead(w) == 0);
}

// Odoo keeps one name, which its plugin reads as _first_name and _last_name: when only the last
// name differs, the merged record still carries both parts, so the first name is not lost.
TEST_CASE("a first link where only part of a composed name differs keeps the other part") {
  World w;
  auto odoo_old = w.odoo.begin_transaction(kDb, std::chrono::seconds(60));
  odoo_old.create("res.partner",
                  {{"name", std::string("Fay Old")}, {"email", std::string("fay@example.com")}});
  odoo_old.commit();
  const int64_t now = wall_ms();
  w.hubspot.seed(
      kPortal, "contacts",
      {{{{"email", "FAY@example.com"}, {"firstname", "Fay"}, {"lastname", "Newer"}}, now, now}});
  w.start();
  REQUIRE(w.wait_quiescent(60s));
  const auto hub = hubspot_contacts(w, "fay@example.com");
  const auto odo = odoo_contacts(w, "fay@example.com");
  REQUIRE(hub.size() == 1);
  REQUIRE(odo.size() == 1);
  CHECK(text(odo[0].values, "name") == "Fay Newer");
  CHECK(property(hub[0].properties, "firstname") == "Fay");
  CHECK(property(hub[0].properties, "lastname") == "Newer");
  CHECK_FALSE(conflicts(w, {"first link"}).empty());
  CHECK(dead(w) == 0);
}

// Odoo deletes a partner and HubSpot edits its counterpart within one poll window (both
// directions paused meanwhile), then one of the two travels first and the other after it.
namespace {
enum class First { edit, remove };

void delete_and_edit(World &w, decltype(crmsandbox::OdooRecord::id) odoo_id,
                     const std::string &hub_id, First first) {
  const char *travels = first == First::edit ? kToOdoo : kToHubSpot;
  const char *waits = first == First::edit ? kToHubSpot : kToOdoo;
  w.engine->pause(kToOdoo);
  w.engine->pause(kToHubSpot);
  w.odoo.unlink(kDb, "res.partner", {odoo_id});
  std::this_thread::sleep_for(1100ms);  // Odoo's times have whole seconds: the edit is later
  REQUIRE(w.hubspot.update_record(kPortal, "contacts", hub_id, {{"city", "Edited"}}));
  // One direction carries its change and settles (two more polls with nothing new), then the
  // other runs.
  w.engine->resume(travels);
  REQUIRE(w.wait_quiescent(60s, {travels}));
  w.engine->resume(waits);
  REQUIRE(w.wait_quiescent(60s));
}

std::string resolution(const crmhost::store::Conflict &c) {
  const auto detail = crmhost::json::parse(c.detail, "detail");
  return detail.HasMember("resolution") ? detail["resolution"].GetString() : "";
}
}  // namespace

TEST_CASE("a delete in Odoo that meets an edit in HubSpot ends as on_delete says") {
  World w;
  w.hubspot.seed(kPortal, "contacts",
                 {{{{"email", "eve@example.com"}, {"firstname", "Eve"}, {"lastname", "Adams"}}}});
  struct Case {
    const char *on_delete;
    First first;
  };
  Case c{};
  SECTION("keep_edited, the edit first") {
    c = {"keep_edited", First::edit};
  }
  SECTION("keep_edited, the delete first") {
    c = {"keep_edited", First::remove};
  }
  SECTION("propagate, the edit first") {
    c = {"propagate", First::edit};
  }
  SECTION("propagate, the delete first") {
    c = {"propagate", First::remove};
  }
  w.on_delete = c.on_delete;
  w.start();
  REQUIRE(w.wait_quiescent(60s));
  const auto before = odoo_contacts(w, "eve@example.com");
  REQUIRE(before.size() == 1);
  const auto hub_id = hubspot_contacts(w, "eve@example.com").at(0).id;
  delete_and_edit(w, before[0].id, hub_id, c.first);

  // The conflict names the order the two travelled in and how it ended.
  const auto met = conflicts(w, {c.first == First::edit ? "edit met delete" : "delete met edit"});
  REQUIRE(met.size() == 1);
  const auto hub = hubspot_contacts(w, "eve@example.com");
  const auto after = odoo_contacts(w, "eve@example.com");
  if (std::string(c.on_delete) == "keep_edited") {
    // The edit wins: HubSpot keeps it, and Odoo gets the record anew, linked to it.
    if (c.first == First::remove) CHECK(resolution(met[0]) == "kept and restored");
    REQUIRE(hub.size() == 1);
    CHECK(property(hub[0].properties, "city") == "Edited");
    REQUIRE(after.size() == 1);
    CHECK(after[0].id != before[0].id);
    CHECK(text(after[0].values, "city") == "Edited");
    auto link = w.db->find_link_by_source(kToOdoo, "hubspot", hub_id);
    REQUIRE(link);
    CHECK(link->target_id == std::to_string(after[0].id));
  } else {
    // The delete wins on both sides; the edit it overruled is in the conflict.
    CHECK(resolution(met[0]) == "deleted");
    CHECK(hub.empty());
    CHECK(after.empty());
    CHECK_FALSE(w.db->find_link_by_source(kToOdoo, "hubspot", hub_id));
    CHECK_FALSE(w.db->find_link_by_target(kToHubSpot, "hubspot", hub_id));
  }
  CHECK(dead(w) == 0);
}

// The mirror: HubSpot deletes a contact and Odoo edits its counterpart within one poll window.
// HubSpot's search shows no deletions, so the delete reaches the host only as HubSpot's own
// signed contact.deletion delivery, stored while both directions are paused; then one of the
// two travels first and the other after it.
namespace {
void hubspot_delete_and_odoo_edit(World &w, const std::string &hub_id,
                                  decltype(crmsandbox::OdooRecord::id) odoo_id, First first) {
  const char *travels = first == First::edit ? kToHubSpot : kToOdoo;
  const char *waits = first == First::edit ? kToOdoo : kToHubSpot;
  w.engine->pause(kToOdoo);
  w.engine->pause(kToHubSpot);
  REQUIRE(w.unsettled() == 0);
  const auto delivery = w.delete_in_hubspot(hub_id);
  REQUIRE(delivery);  // verified and stored by the host: answered 200
  CHECK(w.count(kToOdoo, {EventStatus::pending}) == 1);  // the delete, waiting for its pipeline
  CHECK(w.hubspot.count(kPortal, "contacts") == 0);
  std::this_thread::sleep_for(1100ms);  // Odoo's times have whole seconds: the edit is later
  w.odoo.write(kDb, "res.partner", {odoo_id}, {{"city", std::string("Edited")}});
  w.engine->resume(travels);
  REQUIRE(w.wait_quiescent(60s, {travels}));
  w.engine->resume(waits);
  REQUIRE(w.wait_quiescent(60s));
}

bool has_object(const rapidjson::Document &detail, const char *side) {
  return detail.HasMember(side) && detail[side].IsObject();
}

// Ivy, made in Odoo, so HubSpot's contact is the one the sync created (the mirror of the Odoo
// delete above, where the deleted side was the created one), is deleted in HubSpot and edited
// in Odoo; then the outcome `policy` promises, on both sides.
void hubspot_delete_meets_odoo_edit(const std::string &policy, First first) {
  World w;
  const auto odoo_id = w.odoo
                           .seed(kDb, "res.partner",
                                 {{{"name", std::string("Ivy Adams")},
                                   {"email", std::string("ivy@example.com")},
                                   {"city", std::string("Ghent")},
                                   {"is_company", false}}})
                           .at(0);
  w.on_delete = policy;
  w.start();
  w.receive_hubspot_deletions();
  REQUIRE(w.wait_quiescent(60s));
  const auto before = hubspot_contacts(w, "ivy@example.com");
  REQUIRE(before.size() == 1);
  const auto hub_id = before[0].id;
  REQUIRE(w.db->find_link_by_source(kToHubSpot, "odoo", std::to_string(odoo_id)));
  REQUIRE(w.db->find_link_by_source(kToOdoo, "hubspot", hub_id));  // noted on the echo
  hubspot_delete_and_odoo_edit(w, hub_id, odoo_id, first);

  // One conflict, naming the order the two travelled in and how it ended, holding both sides.
  const auto met = conflicts(w, {"edit met delete", "delete met edit"});
  REQUIRE(met.size() == 1);
  const auto detail = crmhost::json::parse(met[0].detail, "detail");
  CHECK(std::string(detail["reason"].GetString()) ==
        (first == First::edit ? "edit met delete" : "delete met edit"));
  CHECK(std::string(detail["policy"].GetString()) == policy);
  REQUIRE(has_object(detail, "source"));
  REQUIRE(has_object(detail, "target"));
  if (first == First::edit) {
    // Odoo's edit, pushed to the deleted HubSpot contact: the edit is the source.
    CHECK(met[0].pipeline == kToHubSpot);
    CHECK(std::string(detail["source"]["city"].GetString()) == "Edited");
    CHECK(std::string(detail["target"]["id"].GetString()) == hub_id);
    CHECK(detail["target"]["deleted"].GetBool());
    CHECK(resolution(met[0]) == (policy == "keep_edited" ? "restored" : "deleted"));
  } else {
    // HubSpot's delete, with its time, meeting Odoo's edited partner: the edit is the target.
    CHECK(met[0].pipeline == kToOdoo);
    CHECK(std::string(detail["source"]["id"].GetString()) == hub_id);
    CHECK(detail["source"]["deleted"].GetBool());
    CHECK(std::string(detail["target"]["city"].GetString()) == "Edited");
    CHECK(detail["deleted_at"].IsString());  // HubSpot says when it deleted
    CHECK(resolution(met[0]) == (policy == "keep_edited" ? "kept and restored"
                                 : policy == "archive"   ? "archived"
                                                         : "deleted"));
  }

  const auto hub = hubspot_contacts(w, "ivy@example.com");
  const auto odo = odoo_contacts(w, "ivy@example.com");
  const auto odoo_link = w.db->find_link_by_source(kToHubSpot, "odoo", std::to_string(odoo_id));
  // The deleted HubSpot contact is linked no more, in either direction.
  CHECK_FALSE(w.db->find_link_by_source(kToOdoo, "hubspot", hub_id));
  CHECK_FALSE(w.db->find_link_by_target(kToHubSpot, "hubspot", hub_id));
  REQUIRE(w.hubspot.record(kPortal, "contacts", hub_id));
  CHECK(w.hubspot.record(kPortal, "contacts", hub_id)->archived);
  if (policy == "keep_edited") {
    // The edit wins: Odoo keeps its partner, and HubSpot gets the contact anew, linked to it.
    CHECK(w.hubspot.count(kPortal, "contacts") == 1);
    REQUIRE(hub.size() == 1);
    CHECK(hub[0].id != hub_id);
    CHECK(property(hub[0].properties, "city") == "Edited");
    CHECK(property(hub[0].properties, "firstname") == "Ivy");
    CHECK(w.odoo.count(kDb, "res.partner") == 1);
    REQUIRE(odo.size() == 1);
    CHECK(odo[0].id == odoo_id);
    CHECK(text(odo[0].values, "city") == "Edited");
    REQUIRE(odoo_link);
    CHECK(odoo_link->target_id == hub[0].id);
  } else {
    // The delete wins on both sides; the edit it overruled is in the conflict.
    CHECK(w.hubspot.count(kPortal, "contacts") == 0);
    CHECK(hub.empty());
    CHECK(w.odoo.count(kDb, "res.partner") == 0);
    CHECK(odo.empty());
    CHECK_FALSE(odoo_link);
    const auto partner = w.odoo.record(kDb, "res.partner", odoo_id);
    if (policy == "archive") {
      // Archived, not deleted: still there, inactive, with the edit.
      REQUIRE(partner);
      const auto active = partner->values.find("active");
      REQUIRE(active != partner->values.end());
      REQUIRE(std::get_if<bool>(&active->second));
      CHECK_FALSE(std::get<bool>(active->second));
      CHECK(text(partner->values, "city") == "Edited");
    } else {
      CHECK_FALSE(partner);
    }
  }
  CHECK(dead(w) == 0);
}
}  // namespace

TEST_CASE("a delete in HubSpot that meets an edit in Odoo ends as on_delete says") {
  SECTION("keep_edited, the edit first") {
    hubspot_delete_meets_odoo_edit("keep_edited", First::edit);
  }
  SECTION("keep_edited, the delete first") {
    hubspot_delete_meets_odoo_edit("keep_edited", First::remove);
  }
  SECTION("propagate, the edit first") {
    hubspot_delete_meets_odoo_edit("propagate", First::edit);
  }
  SECTION("propagate, the delete first") {
    hubspot_delete_meets_odoo_edit("propagate", First::remove);
  }
}

// Under on_delete archive the Odoo partner the delete archived comes back in Odoo -> HubSpot's
// next poll as an upsert carrying active: false (the odoo plugin reports archived records as
// upserts). Its links closed with the archive; the host's note of the archive
// (store::note_archived) is what keeps it from being matched on email and created anew in
// HubSpot, undoing the delete.
TEST_CASE("a delete in HubSpot that meets an edit in Odoo under archive: the edit first") {
  hubspot_delete_meets_odoo_edit("archive", First::edit);
}
TEST_CASE("a delete in HubSpot that meets an edit in Odoo under archive: the delete first") {
  hubspot_delete_meets_odoo_edit("archive", First::remove);
}
// The same without an edit: a plain HubSpot delete under archive.
TEST_CASE("a delete in HubSpot under archive archives the Odoo partner and stays deleted") {
  World w;
  const auto odoo_id = w.odoo
                           .seed(kDb, "res.partner",
                                 {{{"name", std::string("Jo Baker")},
                                   {"email", std::string("jo@example.com")},
                                   {"is_company", false}}})
                           .at(0);
  w.on_delete = "archive";
  w.start();
  w.receive_hubspot_deletions();
  REQUIRE(w.wait_quiescent(60s));
  const auto before = hubspot_contacts(w, "jo@example.com");
  REQUIRE(before.size() == 1);
  REQUIRE(w.delete_in_hubspot(before[0].id));
  REQUIRE(w.wait_quiescent(60s));
  const auto partner = w.odoo.record(kDb, "res.partner", odoo_id);
  REQUIRE(partner);
  CHECK(w.odoo.count(kDb, "res.partner") == 0);  // archived, not deleted
  CHECK(hubspot_contacts(w, "jo@example.com").empty());
  CHECK(w.hubspot.count(kPortal, "contacts") == 0);
  CHECK_FALSE(w.db->find_link_by_source(kToHubSpot, "odoo", std::to_string(odoo_id)));
  CHECK(conflicts(w, {"edit met delete", "delete met edit"}).empty());  // nothing edited
  CHECK(dead(w) == 0);

  // Restored and edited in Odoo well after the archive (its clock two minutes on): a real change,
  // so the contact is created in HubSpot again.
  w.odoo.set_clock_offset(std::chrono::seconds(120));
  w.odoo.write(kDb, "res.partner", {odoo_id},
               {{"active", true}, {"city", std::string("Restored Town")}});
  REQUIRE(w.wait_quiescent(60s));
  const auto back = hubspot_contacts(w, "jo@example.com");
  REQUIRE(back.size() == 1);
  CHECK(back[0].properties.at("city") == "Restored Town");
  CHECK(dead(w) == 0);
}

// Odoo stamps its records to the second. An Odoo edit made in the same second as the HubSpot
// edit the host has just written there looks older than it (12:00:40 < 12:00:40.125; Odoo's
// clock is frozen on that second here, so the test does not hang on timing): newest_wins judges
// it stale, and since HubSpot will not change again, only sending HubSpot's version back to Odoo
// keeps the two sides from differing for good.
TEST_CASE("an Odoo edit that only looks older than the last sync is overruled on both sides") {
  World w;
  const auto odoo_id = w.odoo
                           .seed(kDb, "res.partner",
                                 {{{"name", std::string("Uma Lee")},
                                   {"email", std::string("uma@example.com")},
                                   {"city", std::string("Ghent")},
                                   {"is_company", false}}})
                           .at(0);
  w.start();
  REQUIRE(w.wait_quiescent(60s));
  const auto hub = hubspot_contacts(w, "uma@example.com");
  REQUIRE(hub.size() == 1);
  const auto second = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  w.odoo.freeze_clock(
      crmhost::timeutil::format_iso8601_ms(
          std::chrono::duration_cast<std::chrono::milliseconds>(second.time_since_epoch()).count())
          .replace(10, 1, " ")
          .substr(0, 19));
  std::this_thread::sleep_for(20ms);  // HubSpot's stamp is then later within that second
  REQUIRE(w.hubspot.update_record(kPortal, "contacts", hub[0].id, {{"city", "Paris"}}));
  REQUIRE(w.wait_quiescent(60s));
  REQUIRE(text(w.odoo.record(kDb, "res.partner", odoo_id)->values, "city") == "Paris");

  w.odoo.write(kDb, "res.partner", {odoo_id}, {{"city", std::string("Turin")}});
  REQUIRE(w.wait_quiescent(60s));
  const auto stale = conflicts(w, {"stale update"});
  REQUIRE(stale.size() >= 1);
  CHECK(stale[0].pipeline == kToHubSpot);
  // Both sides end on HubSpot's version, the newer by the stamps; Odoo's edit is in the conflict.
  CHECK(hubspot_contacts(w, "uma@example.com").at(0).properties.at("city") == "Paris");
  CHECK(text(w.odoo.record(kDb, "res.partner", odoo_id)->values, "city") == "Paris");
  CHECK(w.odoo.count(kDb, "res.partner") == 1);
  CHECK(w.hubspot.count(kPortal, "contacts") == 1);
  CHECK(dead(w) == 0);
  // And it stays so: the copy sent back is recognised as an echo, nothing bounces.
  const auto events_before = w.events();
  REQUIRE(w.wait_quiescent(30s));
  CHECK(w.events() == events_before);
}
