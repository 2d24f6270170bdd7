#include "plugins/call_error.hpp"

namespace crmhost::plugins {

const char *status_name(crm_status code) {
  switch (code) {
    case CRM_OK:
      return "ok";
    case CRM_MORE:
      return "more";
    case CRM_ERR_INVALID_INPUT:
      return "invalid_input";
    case CRM_ERR_UNAUTHORIZED:
      return "unauthorized";
    case CRM_ERR_RATE_LIMITED:
      return "rate_limited";
    case CRM_ERR_TRANSPORT:
      return "transport";
    case CRM_ERR_REMOTE:
      return "remote";
    case CRM_ERR_UNSUPPORTED:
      return "unsupported";
    case CRM_ERR_CANCELLED:
      return "cancelled";
    case CRM_ERR_INCOMPATIBLE:
      return "incompatible";
    case CRM_ERR_NOT_FOUND:
      return "not_found";
    default:
      return code > 0 ? "ok" : "internal";
  }
}

crm_status normalize_status(crm_status code) {
  if (code >= 0) return code;
  return code >= CRM_ERR_NOT_FOUND ? code : CRM_ERR_INTERNAL;
}

bool default_retryable(crm_status code) {
  return code == CRM_ERR_RATE_LIMITED || code == CRM_ERR_TRANSPORT || code == CRM_ERR_REMOTE;
}

std::string CallError::describe() const {
  std::string text = status_name(code);
  if (http_status || retry_after_ms) {
    text += " (";
    if (http_status) text += "HTTP " + std::to_string(http_status);
    if (http_status && retry_after_ms) text += ", ";
    if (retry_after_ms) text += "retry after " + std::to_string(retry_after_ms) + " ms";
    text += ")";
  }
  if (!message.empty()) text += ": " + message;
  return text;
}

}  // namespace crmhost::plugins
