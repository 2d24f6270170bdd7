#pragma once
// The actions/watch channel lifecycle (settings.notifications): create the channel when Zoho has
// none, renew it well before it expires, re-create it when Zoho says it is gone, and stop it.
//
// The host drives it through crm.maintenance.v1: ZohoConnector::maintain() (connector.hpp) calls
// ensure_channel() on "start" and "periodic" and stop_channel() on "shutdown".
#include <cstdint>
#include <string>

namespace crmhost::zoho {

// What a channel call did.
struct ChannelReport {
  // "unchanged", "created", "renewed", "updated", "recreated", "stopped", "kept", "disabled"
  std::string action;
  std::string channel_id;
  int64_t expires_at_ms = 0;  // the channel's expiry as Zoho holds it, 0 when none
  int64_t next_run_ms = 0;    // when the channel next needs a call (renewal time), 0 when none
  std::string message;
};

}  // namespace crmhost::zoho
