#include "common.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>
#include <charconv>
#include <cstdio>

#include "crmhost/plugin.hpp"

namespace crmhost::odoo {
namespace {

const ObjectInfo kObjects[] = {
    {"contact", "res.partner", 0},
    {"company", "res.partner", 1},
    {"deal", "crm.lead", -1},
};

std::optional<int64_t> to_int(std::string_view s) {
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

void put_varint(std::string &out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool get_varint(std::string_view bytes, size_t &pos, uint64_t &v) {
  v = 0;
  for (int shift = 0; shift < 64 && pos < bytes.size(); shift += 7) {
    const auto b = static_cast<unsigned char>(bytes[pos++]);
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

const ObjectInfo *find_object(std::string_view name) {
  for (const auto &o : kObjects)
    if (name == o.name) return &o;
  return nullptr;
}

std::optional<int64_t> parse_odoo_time(std::string_view t) {
  if (t.size() < 19 || t[4] != '-' || t[7] != '-' || (t[10] != ' ' && t[10] != 'T') ||
      t[13] != ':' || t[16] != ':')
    return std::nullopt;
  auto num = [&](size_t pos, size_t len) { return to_int(t.substr(pos, len)); };
  auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2),
       s = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !s || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 ||
      *mi > 59 || *s > 60)
    return std::nullopt;
  // Odoo's own form has no fraction or zone; an ISO one may: the fraction is dropped, UTC only.
  std::string_view rest = t.substr(19);
  if (!rest.empty() && rest[0] == '.') {
    size_t n = 1;
    while (n < rest.size() && std::isdigit(static_cast<unsigned char>(rest[n]))) ++n;
    rest.remove_prefix(n);
  }
  if (!rest.empty() && rest != "Z" && rest != "+00:00") return std::nullopt;
  const int64_t days =
      sdk::days_from_civil(*y, static_cast<unsigned>(*mo), static_cast<unsigned>(*d));
  return ((days * 24 + *h) * 60 + *mi) * 60 + *s;
}

std::string format_odoo_time(int64_t unix_s) {
  return sdk::format_utc(unix_s * 1000, false);
}

std::string format_iso(int64_t unix_s) {
  std::string text = sdk::format_utc(unix_s * 1000, false);
  text[10] = 'T';
  return text + "Z";
}

std::string encode_cursor(const Cursor &c) {
  if (!c.started && c.token.empty()) return "o1:-:0:0:::0";
  return "o1:" + (c.started ? std::to_string(c.write_s) : std::string("-")) + ":" +
         std::to_string(c.id) + ":" + (c.head ? "1" : "0") + ":" + c.token + ":" +
         c.previous_token + ":" + std::to_string(c.reconciled_ms);
}

Cursor decode_cursor(std::string_view text) {
  if (text.substr(0, 3) == "o1:") {
    std::vector<std::string_view> parts;
    std::string_view rest = text.substr(3);
    for (size_t colon; (colon = rest.find(':')) != std::string_view::npos;) {
      parts.push_back(rest.substr(0, colon));
      rest.remove_prefix(colon + 1);
    }
    parts.push_back(rest);
    if (parts.size() == 6) {
      Cursor c;
      const auto write_s = parts[0] == "-" ? std::optional<int64_t>(0) : to_int(parts[0]);
      const auto id = to_int(parts[1]);
      const auto reconciled = to_int(parts[5]);
      if (write_s && id && reconciled && (parts[2] == "0" || parts[2] == "1")) {
        c.started = parts[0] != "-";
        c.write_s = *write_s;
        c.id = *id;
        c.head = parts[2] == "1";
        c.token = std::string(parts[3]);
        c.previous_token = std::string(parts[4]);
        c.reconciled_ms = *reconciled;
        return c;
      }
    }
  } else if (auto s = parse_odoo_time(text)) {
    Cursor c;
    c.started = true;
    c.write_s = *s;
    return c;
  }
  throw sdk::Error(CRM_ERR_INVALID_INPUT,
                   "poll cursor \"" + std::string(text.substr(0, 64)) +
                       "\" is not an odoo cursor (o1:..., or a time such as 2026-01-31 00:00:00)");
}

std::string encode_ids(const std::vector<int64_t> &ids) {
  std::string out;
  int64_t previous_end = 0;  // one past the last id of the previous run
  for (size_t i = 0; i < ids.size();) {
    size_t j = i + 1;
    while (j < ids.size() && ids[j] == ids[j - 1] + 1) ++j;
    put_varint(out, static_cast<uint64_t>(ids[i] - previous_end));
    put_varint(out, static_cast<uint64_t>(j - i - 1));
    previous_end = ids[j - 1] + 1;
    i = j;
  }
  return out;
}

std::vector<int64_t> decode_ids(std::string_view bytes) {
  std::vector<int64_t> out;
  int64_t next = 0;
  for (size_t pos = 0; pos < bytes.size();) {
    uint64_t gap = 0, extra = 0;
    if (!get_varint(bytes, pos, gap) || !get_varint(bytes, pos, extra) || extra > (1u << 30))
      throw sdk::Error(CRM_ERR_INTERNAL, "reconciliation state: a corrupt id list");
    int64_t id = next + static_cast<int64_t>(gap);
    for (uint64_t k = 0; k <= extra; ++k) out.push_back(id++);
    next = id;
  }
  return out;
}

Classified classify_fault(const Fault &f) {
  const std::string_view name = f.name;
  if (ends_with(name, "AccessDenied")) return {CRM_ERR_UNAUTHORIZED, "unauthorized", false};
  if (ends_with(name, "AccessError")) return {CRM_ERR_UNAUTHORIZED, "forbidden", false};
  if (ends_with(name, "MissingError")) return {CRM_ERR_NOT_FOUND, "not_found", false};
  if (ends_with(name, "ValidationError") || ends_with(name, "UserError") ||
      ends_with(name, "RedirectWarning") || ends_with(name, "ValueError"))
    return {CRM_ERR_REMOTE, "invalid_input", false};
  // PostgreSQL's concurrency failures that outlived Odoo's own retries (guess: their names).
  if (name.find("SerializationFailure") != std::string_view::npos ||
      name.find("LockNotAvailable") != std::string_view::npos ||
      name.find("OperationalError") != std::string_view::npos)
    return {CRM_ERR_REMOTE, "conflict", true};
  if (f.http_status == 0 && name.empty()) return {CRM_ERR_TRANSPORT, "transport", true};
  if (f.http_status == 429) return {CRM_ERR_RATE_LIMITED, "rate_limited", true};
  if (f.http_status >= 500) return {CRM_ERR_REMOTE, "remote", true};
  if (f.http_status == 401) return {CRM_ERR_UNAUTHORIZED, "unauthorized", false};
  if (f.http_status == 403) return {CRM_ERR_UNAUTHORIZED, "forbidden", false};
  if (f.http_status == 404) return {CRM_ERR_NOT_FOUND, "not_found", false};
  if (f.http_status == 400 || f.http_status == 422) return {CRM_ERR_REMOTE, "invalid_input", false};
  // Any other named server error (a bug on Odoo's side, a wrong field name) will fail again.
  return {CRM_ERR_REMOTE, "remote", false};
}

std::string too_deep_message() {
  return "JSON nested deeper than " + std::to_string(sdk::kMaxJsonDepth) + " levels";
}

bool secret_matches(std::string_view received, std::string_view expected) {
  // Both are hashed first so the comparison takes the same time whatever their lengths.
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char *>(received.data()), received.size(), a);
  SHA256(reinterpret_cast<const unsigned char *>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0 && !expected.empty();
}

WebhookDelivery parse_webhook(std::string_view body) {
  rapidjson::Document doc;
  if (sdk::try_parse_json(body, doc) == sdk::JsonParse::too_deep)
    throw sdk::Error(CRM_ERR_INVALID_INPUT, "webhook body: nested deeper than " +
                                                std::to_string(sdk::kMaxJsonDepth) + " levels");
  if (doc.HasParseError() || !doc.IsObject())
    throw sdk::Error(CRM_ERR_INVALID_INPUT,
                     "webhook body: expected a JSON object from an Odoo automation rule");
  WebhookDelivery out;
  auto model = doc.FindMember("_model");
  if (model == doc.MemberEnd() || !model->value.IsString() || model->value.GetStringLength() == 0)
    throw sdk::Error(CRM_ERR_INVALID_INPUT, "webhook body: \"_model\" is missing");
  out.model.assign(model->value.GetString(), model->value.GetStringLength());
  auto id = doc.FindMember("_id");
  // An int64 (as Odoo's ids are), so the id can be sent back as one; 2^64-1 is no record.
  if (id != doc.MemberEnd() && id->value.IsInt64() && id->value.GetInt64() > 0)
    out.id = std::to_string(id->value.GetInt64());
  else if (id != doc.MemberEnd() && id->value.IsString() && to_int(id->value.GetString()) &&
           *to_int(id->value.GetString()) > 0)
    out.id = id->value.GetString();
  else
    throw sdk::Error(CRM_ERR_INVALID_INPUT, "webhook body: \"_id\" is missing or not a record id");
  if (auto c = doc.FindMember("is_company"); c != doc.MemberEnd() && c->value.IsBool())
    out.is_company = c->value.GetBool();
  if (auto w = doc.FindMember("write_date"); w != doc.MemberEnd() && w->value.IsString())
    out.write_date = w->value.GetString();
  return out;
}

}  // namespace crmhost::odoo
