#pragma once
// The actions/watch channel lifecycle (settings.notifications): create the channel when Zoho has
// none, renew it well before it expires, re-create it when Zoho says it is gone, and stop it.
//
// Not wired to the host yet: the host's maintenance interface is being added. The entry point
// for it is channel_maintain() below, shaped as an ABI table function; ZohoConnector's
// ensure_channel() and stop_channel() (connector.hpp) are what it calls.
#include <cstdint>
#include <string>

#include "crmhost/plugin.h"

namespace crmhost::zoho {

// What a channel call did.
struct ChannelReport {
  // "unchanged", "created", "renewed", "updated", "recreated", "stopped", "disabled"
  std::string action;
  std::string channel_id;
  int64_t expires_at_ms = 0;  // the channel's expiry as Zoho holds it, 0 when none
  int64_t next_run_ms = 0;    // when the channel next needs a call (renewal time), 0 when none
  std::string message;
};

// [instance-serialized] request {"action":"ensure"} or {"action":"stop"} (JSON). Emits
// {"action","channel_id","expires_at","next_run_at","message"}; on failure fills `err` like
// every connector call (unauthorized, rate_limited, remote...). `connector` is a zoho connector
// made by this plugin's create().
crm_status channel_maintain(crm_connector *connector, crm_str request, crm_sink *out,
                            crm_error *err);

}  // namespace crmhost::zoho
