// libFuzzer target for the Odoo plugin's webhook code (plugins/odoo/src/common.cpp): the
// automation-rule body parser and the secret comparison, plus the hand-writable cursor and time
// parsers. Checks: a parsed delivery has a model and an id the connector can use as an int64
// (it sends the id back to Odoo with std::stoll); every refusal is the SDK's invalid-input
// error; the secret comparison agrees with plain equality.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common.hpp"
#include "crmhost/plugin.hpp"
#include "util/json.hpp"

namespace {

using namespace crmhost::odoo;

bool is_int64_id(const std::string &id) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
  return !id.empty() && ec == std::errc() && end == id.data() + id.size() && value > 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view input(reinterpret_cast<const char *>(data), size);
  // The host refuses deeper bodies before a plugin sees them (engine.cpp).
  if (!crmhost::json::nesting_exceeds(input, crmhost::json::kMaxWebhookJsonDepth)) {
    try {
      const auto delivery = parse_webhook(input);
      if (delivery.model.empty() || !is_int64_id(delivery.id)) __builtin_trap();
    } catch (const crmhost::sdk::Error &e) {
      if (e.status() != CRM_ERR_INVALID_INPUT) __builtin_trap();
    }
  }
  // "<received>\n<expected>": constant-time comparison, same answer as ==.
  if (const auto nl = input.find('\n'); nl != std::string_view::npos) {
    const auto received = input.substr(0, nl), expected = input.substr(nl + 1);
    if (secret_matches(received, expected) != (received == expected && !expected.empty()))
      __builtin_trap();
  }
  try {
    const auto cursor = decode_cursor(input);
    if (decode_cursor(encode_cursor(cursor)).id != cursor.id) __builtin_trap();
  } catch (const crmhost::sdk::Error &e) {
    if (e.status() != CRM_ERR_INVALID_INPUT) __builtin_trap();
  }
  if (const auto t = parse_odoo_time(input)) (void)format_odoo_time(*t);
  return 0;
}
