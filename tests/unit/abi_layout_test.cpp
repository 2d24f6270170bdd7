// Pins the ABI's layout: an accidental change to a crossing struct fails the build here.
#include <cstddef>
#include <type_traits>

#include <catch2/catch.hpp>

#include "crmhost/plugin.h"

static_assert(sizeof(void *) == 8, "the pinned layout below is that of LP64 targets");

#define PIN(type, size) static_assert(sizeof(type) == (size), #type " size changed")
#define PIN_AT(type, field, offset) \
  static_assert(offsetof(type, field) == (offset), #type "." #field " moved")

PIN(crm_str, 16);
PIN_AT(crm_str, len, 8);

PIN(crm_error, 536);
PIN_AT(crm_error, code, 4);
PIN_AT(crm_error, http_status, 8);
PIN_AT(crm_error, retry_after_ms, 12);
PIN_AT(crm_error, retryable, 16);
PIN_AT(crm_error, message, 24);

PIN(crm_sink, 24);
PIN_AT(crm_sink, user_data, 8);
PIN_AT(crm_sink, emit, 16);

PIN(crm_host_api, 40);
PIN_AT(crm_host_api, abi_version, 4);
PIN_AT(crm_host_api, host_data, 8);
PIN_AT(crm_host_api, log, 16);
PIN_AT(crm_host_api, get_extension, 24);
PIN_AT(crm_host_api, now_ms, 32);

PIN(crm_http_header, 32);
PIN(crm_http_request, 88);
PIN_AT(crm_http_request, method, 8);
PIN_AT(crm_http_request, url, 24);
PIN_AT(crm_http_request, headers, 40);
PIN_AT(crm_http_request, header_count, 48);
PIN_AT(crm_http_request, timeout_ms, 52);
PIN_AT(crm_http_request, body, 56);
PIN_AT(crm_http_request, rate_limit_bucket, 72);
PIN(crm_http_response, 40);
PIN_AT(crm_http_response, headers, 8);
PIN_AT(crm_http_response, body, 24);
PIN(crm_http_response_sink, 24);
PIN(crm_http_v1, 16);
PIN(crm_state_v1, 32);
PIN_AT(crm_state_v1, remove, 24);

PIN(crm_connector_v1, 80);
PIN_AT(crm_connector_v1, describe, 8);
PIN_AT(crm_connector_v1, create, 16);
PIN_AT(crm_connector_v1, destroy, 24);
PIN_AT(crm_connector_v1, check, 32);
PIN_AT(crm_connector_v1, poll, 40);
PIN_AT(crm_connector_v1, fetch, 48);
PIN_AT(crm_connector_v1, push, 56);
PIN_AT(crm_connector_v1, webhook, 64);
PIN_AT(crm_connector_v1, cancel, 72);

PIN(crm_plugin_entry, 64);
PIN_AT(crm_plugin_entry, abi_version, 4);
PIN_AT(crm_plugin_entry, id, 8);
PIN_AT(crm_plugin_entry, version, 16);
PIN_AT(crm_plugin_entry, vendor, 24);
PIN_AT(crm_plugin_entry, negotiate, 32);
PIN_AT(crm_plugin_entry, init, 40);
PIN_AT(crm_plugin_entry, deinit, 48);
PIN_AT(crm_plugin_entry, get_interface, 56);

// Crossing structs hold only fixed-width fields, so they are trivially copyable C data.
static_assert(std::is_trivially_copyable_v<crm_connector_v1>);
static_assert(std::is_standard_layout_v<crm_plugin_entry>);

TEST_CASE("ABI version macros pack and unpack major and minor and patch", "[abi]") {
  constexpr uint32_t v = CRM_MAKE_VERSION(3, 1023, 4095);
  STATIC_REQUIRE(CRM_VERSION_MAJOR(v) == 3);
  STATIC_REQUIRE(CRM_VERSION_MINOR(v) == 1023);
  STATIC_REQUIRE(CRM_VERSION_PATCH(v) == 4095);
  STATIC_REQUIRE(CRM_VERSION_MAJOR(CRM_ABI_VERSION) == 1);
  // A newer minor compares greater within a major, which negotiation relies on.
  STATIC_REQUIRE(CRM_MAKE_VERSION(1, 2, 0) > CRM_MAKE_VERSION(1, 1, 99));
}

TEST_CASE("CRM_HAS_FIELD honours a struct_size written by an older plugin", "[abi]") {
  crm_connector_v1 table{};
  table.struct_size = offsetof(crm_connector_v1, cancel);
  CHECK(CRM_HAS_FIELD(&table, crm_connector_v1, webhook));
  CHECK_FALSE(CRM_HAS_FIELD(&table, crm_connector_v1, cancel));
  table.struct_size = sizeof table;
  CHECK(CRM_HAS_FIELD(&table, crm_connector_v1, cancel));
}
