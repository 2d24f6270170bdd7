#pragma once
// The failure of a call into a plugin, as the rest of the host sees it.
#include <cstdint>
#include <string>
#include <utility>
#include <variant>

#include "crmhost/plugin.h"

namespace crmhost::plugins {

struct CallError {
  crm_status code = CRM_ERR_INTERNAL;
  int32_t http_status = 0;
  int32_t retry_after_ms = 0;
  bool retryable = false;
  std::string message;

  // "rate_limited (HTTP 429, retry after 2000 ms): message"
  std::string describe() const;
};

// The name of a status ("ok", "invalid_input", ...); unknown codes read as "internal".
const char *status_name(crm_status code);

// Maps unknown negative codes to CRM_ERR_INTERNAL, as the ABI requires.
crm_status normalize_status(crm_status code);

// Whether an error of this code may succeed when retried, absent the plugin's own opinion.
bool default_retryable(crm_status code);

// Either a value or the CallError that prevented it.
template <class T>
class Outcome {
 public:
  Outcome(T value) : state_(std::move(value)) {}
  Outcome(CallError error) : state_(std::move(error)) {}
  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T &value() { return std::get<0>(state_); }
  const T &value() const { return std::get<0>(state_); }
  T *operator->() { return &value(); }
  const T *operator->() const { return &value(); }
  T &operator*() { return value(); }
  const T &operator*() const { return value(); }
  const CallError &error() const { return std::get<1>(state_); }

 private:
  std::variant<T, CallError> state_;
};

}  // namespace crmhost::plugins
