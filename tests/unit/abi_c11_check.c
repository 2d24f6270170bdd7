/* Compiled with -std=c11 -pedantic -Werror: plugin.h must be valid strict C11, and its layout on
 * LP64 (x86-64, AArch64 Linux) is pinned here as in abi_layout_test.cpp. */
#include <crmhost/plugin.h>

#if UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu
_Static_assert(sizeof(crm_str) == 16, "crm_str layout changed");
_Static_assert(sizeof(crm_error) == 536, "crm_error layout changed");
_Static_assert(offsetof(crm_error, message) == 24, "crm_error layout changed");
_Static_assert(sizeof(crm_sink) == 24, "crm_sink layout changed");
_Static_assert(sizeof(crm_host_api) == 40, "crm_host_api layout changed");
_Static_assert(sizeof(crm_connector_v1) == 80, "crm_connector_v1 layout changed");
_Static_assert(offsetof(crm_connector_v1, cancel) == 72, "crm_connector_v1 layout changed");
_Static_assert(sizeof(crm_plugin_entry) == 64, "crm_plugin_entry layout changed");
_Static_assert(sizeof(crm_http_request) == 88, "crm_http_request layout changed");
_Static_assert(sizeof(crm_state_v1) == 32, "crm_state_v1 layout changed");
#endif

/* A C translation unit must see the entry's prototype with C linkage. */
const crm_plugin_entry *(*abi_c11_check_entry)(void) = 0;
