// Records per second through a 20-field contact mapping with 5 transforms, on one thread,
// including parsing the source record's JSON and serialising the mapped record.
//   mapping_bench [seconds]   (default 5: five rounds of one second)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "mapping/mapping.hpp"

namespace {

// 20 target fields; transforms: trim+lower (email), title (name), e164 (phone), datetime
// (updated), multiply (score), plus a picklist (lifecycle).
const char *kRules = R"({
  "email": {"from": "Email|email", "transform": ["trim", "lower"], "required": true},
  "first_name": {"from": "firstname|First_Name", "transform": "title"},
  "last_name": "lastname|Last_Name",
  "phone": {"from": "phone|mobilephone", "transform": "e164"},
  "company": "company",
  "job_title": "jobtitle",
  "website": "website",
  "address.street": "address",
  "address.city": "city",
  "address.postal_code": "zip",
  "address.region": "state",
  "address.country": "country",
  "lifecycle_stage": {"from": "lifecyclestage",
                      "picklist": {"values": {"lead": "lead", "customer": "customer"},
                                   "unknown": "pass"}},
  "lead_source": "hs_analytics_source",
  "owner_id": "hubspot_owner_id",
  "score": {"from": "hubspotscore", "transform": {"multiply": 100}},
  "industry": "industry",
  "tier": "CUSTOMFIELDS[FIELD_NAME=Tier__c].FIELD_VALUE",
  "updated_at": {"from": "lastmodifieddate", "transform": "datetime"},
  "source_system": {"const": "hubspot"}
})";

std::string record(int i) {
  return R"({"id":")" + std::to_string(i) + R"(","Email":"  User)" + std::to_string(i) +
         R"(@Example.COM ","firstname":"ada","lastname":"Lovelace","phone":"(415) 555-)" +
         std::to_string(1000 + i % 9000) +
         R"(","company":"Analytical Engines Ltd","jobtitle":"Programmer",)"
         R"("website":"https://example.com","address":"12 St James's Square","city":"London",)"
         R"("zip":"SW1Y 4JH","state":"London","country":"GB","lifecyclestage":"lead",)"
         R"("hs_analytics_source":"ORGANIC_SEARCH","hubspot_owner_id":"31337",)"
         R"("hubspotscore":"0.42","industry":"Computing","createdate":"2017-03-10T03:34:10Z",)"
         R"("lastmodifieddate":"2026-11-22T10:00:00.250+02:00",)"
         R"("CUSTOMFIELDS":[{"FIELD_NAME":"Tier__c","FIELD_VALUE":"Gold"}]})";
}

}  // namespace

int main(int argc, char **argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  std::vector<crmhost::mapping::CompileProblem> problems;
  auto mapping = crmhost::mapping::Mapping::compile(kRules, {}, problems);
  if (!problems.empty()) {
    std::fprintf(stderr, "rules: %s\n", problems[0].message.c_str());
    return 1;
  }
  std::vector<std::string> records;
  for (int i = 0; i < 1000; ++i) records.push_back(record(i));
  const auto sample = mapping.apply(records[0]);
  if (!sample.ok) {
    std::fprintf(stderr, "map: %s\n", sample.error.c_str());
    return 1;
  }
  std::printf("rules: %zu fields; input %zu bytes, output %zu bytes\n%s\n", mapping.rule_count(),
              records[0].size(), sample.json.size(), sample.json.c_str());

  // Rounds of one second each; this VM's speed varies from second to second, so the median
  // and the best round are both reported.
  const int rounds = std::max(1, static_cast<int>(seconds));
  std::vector<double> rates;
  size_t bytes = 0;
  for (int round = 0; round < rounds; ++round) {
    size_t done = 0;
    const auto start = std::chrono::steady_clock::now();
    const auto until = start + std::chrono::seconds(1);
    while (std::chrono::steady_clock::now() < until) {
      for (int i = 0; i < 1000; ++i) {
        auto r = mapping.apply(records[static_cast<size_t>(i)]);
        bytes += r.json.size();
        if (!r.ok) return 1;
      }
      done += 1000;
    }
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rates.push_back(static_cast<double>(done) / elapsed);
    std::printf("round %d: %.0f records/s\n", round + 1, rates.back());
  }
  std::sort(rates.begin(), rates.end());
  std::printf(
      "%d rounds on one thread: median %.0f records/s, best %.0f, worst %.0f (%zu bytes out)\n",
      rounds, rates[rates.size() / 2], rates.back(), rates.front(), bytes);
  return 0;
}
