// The Zoho emulator's modules, fields and values: module definitions, Zoho's error shape, JSON
// values, record validation and rendering, and the search criteria grammar.
#include <algorithm>
#include <cctype>
#include <ctime>

#include "sandbox/zoho_internal.hpp"
#include "util/time.hpp"

namespace crmsandbox {

using namespace zoho;

std::string zoho_time(int64_t unix_ms, int utc_offset_minutes) {
  const int64_t seconds = (unix_ms >= 0 ? unix_ms : unix_ms - 999) / 1000;
  const std::time_t local = static_cast<std::time_t>(seconds + utc_offset_minutes * 60LL);
  std::tm tm{};
  gmtime_r(&local, &tm);
  char text[96];
  const int offset = utc_offset_minutes < 0 ? -utc_offset_minutes : utc_offset_minutes;
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                utc_offset_minutes < 0 ? '-' : '+', offset / 60, offset % 60);
  return text;
}

namespace zoho {

const FieldDef *ModuleDef::field(std::string_view wanted) const {
  for (const auto &f : fields)
    if (f.name == wanted) return &f;
  return nullptr;
}

const std::vector<ModuleDef> &all_modules() {
  using K = FieldKind;
  // (guess) the module ids; the typed fields are the standard ones the plugin maps.
  static const std::vector<ModuleDef> modules = {
      {"Leads",
       "4876876000000002175",
       "Last_Name",
       "Email",
       {{"First_Name", K::Text},
        {"Last_Name", K::Text},
        {"Email", K::Email},
        {"Secondary_Email", K::Email},
        {"Phone", K::Text},
        {"Mobile", K::Text},
        {"Company", K::Text},
        {"Annual_Revenue", K::Double},
        {"No_of_Employees", K::Integer},
        {"Product_Interest", K::MultiSelect},
        {"Owner", K::Lookup}}},
      {"Contacts",
       "4876876000000002179",
       "Last_Name",
       "Email",
       {{"First_Name", K::Text},
        {"Last_Name", K::Text},
        {"Email", K::Email},
        {"Secondary_Email", K::Email},
        {"Phone", K::Text},
        {"Mobile", K::Text},
        {"Account_Name", K::Lookup},
        {"Date_of_Birth", K::Date},
        {"Product_Interest", K::MultiSelect},
        {"Owner", K::Lookup}}},
      {"Accounts",
       "4876876000000002177",
       "Account_Name",
       "Account_Name",
       {{"Account_Name", K::Text},
        {"Website", K::Text},
        {"Phone", K::Text},
        {"Annual_Revenue", K::Double},
        {"Employees", K::Integer},
        {"Product_Interest", K::MultiSelect},
        {"Owner", K::Lookup}}},
      {"Deals",
       "4876876000000002181",
       "Deal_Name",
       "Deal_Name",
       {{"Deal_Name", K::Text},
        {"Amount", K::Double},
        {"Stage", K::Text},
        {"Closing_Date", K::Date},
        {"Account_Name", K::Lookup},
        {"Contact_Name", K::Lookup},
        {"Product_Interest", K::MultiSelect},
        {"Owner", K::Lookup}}},
  };
  return modules;
}

const ModuleDef *find_module(std::string_view name) {
  for (const auto &m : all_modules())
    if (lowercase(m.name) == lowercase(name)) return &m;
  return nullptr;
}

bool is_system_field(std::string_view name) {
  return name == "id" || name == "Created_Time" || name == "Modified_Time" ||
         name == "Created_By" || name == "Modified_By" || name == "Full_Name";
}

ApiError &ApiError::detail(const std::string &k, const std::string &text) {
  details.emplace_back(k, json_string(text));
  return *this;
}

ApiError &ApiError::detail_raw(const std::string &k, const std::string &json) {
  details.emplace_back(k, json);
  return *this;
}

std::string json_string(std::string_view text) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  return {buffer.GetString(), buffer.GetSize()};
}

void key(JsonWriter &w, std::string_view name) {
  w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
}

HttpResponse json_response(int status, std::string body) {
  return {status, "application/json;charset=UTF-8", {}, std::move(body)};
}

void write_error(JsonWriter &w, const ApiError &error) {
  w.StartObject();
  w.Key("code");
  w.String(error.code);
  w.Key("details");
  w.StartObject();
  for (const auto &[k, json] : error.details) {
    key(w, k);
    w.RawValue(json.data(), json.size(), rapidjson::kObjectType);
  }
  w.EndObject();
  w.Key("message");
  w.String(error.message);
  w.Key("status");
  w.String("error");
  w.EndObject();
}

HttpResponse error_response(const ApiError &error) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  write_error(w, error);
  return json_response(error.status, {buffer.GetString(), buffer.GetSize()});
}

ZohoValue from_json(const rapidjson::Value &value) {
  if (value.IsNull()) return nullptr;
  if (value.IsBool()) return value.GetBool();
  if (value.IsInt64()) return value.GetInt64();
  if (value.IsNumber()) return value.GetDouble();
  if (value.IsString()) return std::string(value.GetString(), value.GetStringLength());
  if (value.IsArray() &&
      std::all_of(value.Begin(), value.End(), [](const auto &v) { return v.IsString(); })) {
    std::vector<std::string> out;
    for (const auto &v : value.GetArray()) out.emplace_back(v.GetString(), v.GetStringLength());
    return out;
  }
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  value.Accept(w);
  return ZohoJson{{buffer.GetString(), buffer.GetSize()}};
}

void write_value(JsonWriter &w, const ZohoValue &value) {
  std::visit(
      [&](const auto &v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::nullptr_t>) {
          w.Null();
        } else if constexpr (std::is_same_v<T, bool>) {
          w.Bool(v);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          w.Int64(v);
        } else if constexpr (std::is_same_v<T, double>) {
          w.Double(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          w.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          w.StartArray();
          for (const auto &s : v) w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
          w.EndArray();
        } else {
          w.RawValue(v.text.data(), v.text.size(), rapidjson::kObjectType);
        }
      },
      value);
}

std::vector<std::string> value_texts(const ZohoValue &value) {
  return std::visit(
      [](const auto &v) -> std::vector<std::string> {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::nullptr_t>) {
          return {};
        } else if constexpr (std::is_same_v<T, bool>) {
          return {v ? "true" : "false"};
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return {std::to_string(v)};
        } else if constexpr (std::is_same_v<T, double>) {
          rapidjson::StringBuffer buffer;
          JsonWriter w(buffer);
          w.Double(v);
          return {std::string(buffer.GetString(), buffer.GetSize())};
        } else if constexpr (std::is_same_v<T, std::string>) {
          return {v};
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          return v;
        } else {
          // A lookup compares by its id and its name (guess).
          rapidjson::Document d;
          d.Parse(v.text.data(), v.text.size());
          std::vector<std::string> out;
          if (d.IsObject())
            for (const char *k : {"id", "name"})
              if (d.HasMember(k) && d[k].IsString()) out.emplace_back(d[k].GetString());
          return out;
        }
      },
      value);
}

bool is_empty(const ZohoValue &value) {
  if (std::holds_alternative<std::nullptr_t>(value)) return true;
  if (const auto *s = std::get_if<std::string>(&value)) return s->empty();
  if (const auto *a = std::get_if<std::vector<std::string>>(&value)) return a->empty();
  return false;
}

size_t Criteria::conditions() const {
  if (kind == Condition) return 1;
  size_t n = 0;
  for (const auto &c : children) n += c.conditions();
  return n;
}

namespace {

struct CriteriaParser {
  std::string_view text;
  size_t at = 0;
  std::string error;

  void skip_spaces() {
    while (at < text.size() && std::isspace(static_cast<unsigned char>(text[at]))) ++at;
  }

  std::optional<Criteria> group() {
    skip_spaces();
    if (at >= text.size() || text[at] != '(') {
      error = "expected ( at " + std::to_string(at);
      return std::nullopt;
    }
    ++at;
    skip_spaces();
    if (at < text.size() && text[at] == '(') {
      Criteria out;
      out.kind = Criteria::And;
      std::string joiner;
      while (true) {
        auto child = group();
        if (!child) return std::nullopt;
        out.children.push_back(std::move(*child));
        skip_spaces();
        if (at < text.size() && text[at] == ')') {
          ++at;
          break;
        }
        std::string word;
        while (at < text.size() && std::isalpha(static_cast<unsigned char>(text[at])))
          word += static_cast<char>(std::tolower(static_cast<unsigned char>(text[at++])));
        if (word != "and" && word != "or") {
          error = "expected and/or at " + std::to_string(at);
          return std::nullopt;
        }
        if (!joiner.empty() && joiner != word) {
          // (guess) Zoho wants parentheses around each and/or group
          error = "and and or mixed without parentheses";
          return std::nullopt;
        }
        joiner = word;
      }
      if (out.children.size() == 1) return std::move(out.children.front());
      out.kind = joiner == "or" ? Criteria::Or : Criteria::And;
      return out;
    }
    return condition();
  }

  std::optional<Criteria> condition() {
    Criteria out;
    const auto colon = text.find(':', at);
    if (colon == std::string_view::npos) {
      error = "a condition needs field:operator:value";
      return std::nullopt;
    }
    out.field = std::string(text.substr(at, colon - at));
    const auto colon2 = text.find(':', colon + 1);
    if (colon2 == std::string_view::npos) {
      error = "a condition needs field:operator:value";
      return std::nullopt;
    }
    out.op = lowercase(text.substr(colon + 1, colon2 - colon - 1));
    at = colon2 + 1;
    std::string value;
    bool closed = false;
    while (at < text.size()) {
      const char c = text[at++];
      if (c == '\\' && at < text.size()) {
        value += text[at++];
        continue;
      }
      if (c == ')') {
        closed = true;
        break;
      }
      if (c == ',') {
        out.values.push_back(std::move(value));
        value.clear();
        continue;
      }
      value += c;
    }
    if (!closed) {
      error = "unbalanced parentheses";
      return std::nullopt;
    }
    out.values.push_back(std::move(value));
    auto trim = [](std::string s) {
      while (!s.empty() && s.back() == ' ') s.pop_back();
      while (!s.empty() && s.front() == ' ') s.erase(s.begin());
      return s;
    };
    out.field = trim(out.field);
    if (out.field.empty()) {
      error = "a condition needs a field";
      return std::nullopt;
    }
    return out;
  }
};

}  // namespace

std::optional<Criteria> parse_criteria(std::string_view text, std::string &error) {
  CriteriaParser parser{text, 0, {}};
  auto out = parser.group();
  parser.skip_spaces();
  if (out && parser.at != text.size()) {
    parser.error = "unexpected text after the criteria";
    out.reset();
  }
  error = parser.error;
  return out;
}

std::string Org::user_id() const {
  return std::to_string(4876876000000000000LL + spec.id % 1'000'000'000);  // (guess)
}

}  // namespace zoho

zoho::Org &ZohoSandbox::Impl::org(int64_t id) {
  auto &o = orgs[id];
  if (o.spec.id != id) {
    o.spec.id = id;
    if (!dcs.empty()) o.spec.data_centre = dcs.front().label;
  }
  return o;
}

zoho::Stored *ZohoSandbox::Impl::find(zoho::Org &o, const ModuleDef &module,
                                      const std::string &id) {
  const auto number = parse_number(id);
  if (!number || id.find_first_not_of("0123456789") != std::string::npos) return nullptr;
  auto &records = o.tables[module.name].records;
  const auto it = records.find(std::stoll(id));
  return it == records.end() ? nullptr : &it->second;
}

std::optional<ApiError> ZohoSandbox::Impl::validate(zoho::Org &o, const ModuleDef &module,
                                                    ZohoFields &fields, int64_t self_id,
                                                    bool insert, const std::string &path) {
  for (auto it = fields.begin(); it != fields.end();)
    it = is_system_field(it->first) ? fields.erase(it) : std::next(it);
  const auto invalid = [&](const std::string &name, const char *expected) {
    ApiError e;
    e.code = "INVALID_DATA";
    e.message = "invalid data";
    e.detail("expected_data_type", expected)
        .detail("api_name", name)
        .detail("json_path", path + "." + name);
    return e;
  };
  for (const auto &[name, value] : fields) {
    const auto *def = module.field(name);
    if (!def || std::holds_alternative<std::nullptr_t>(value)) continue;
    switch (def->kind) {
      case FieldKind::Text:
        if (!std::holds_alternative<std::string>(value)) return invalid(name, "text");
        break;
      case FieldKind::Email: {
        const auto *s = std::get_if<std::string>(&value);
        const auto atsign = s ? s->find('@') : std::string::npos;
        if (!s || (!s->empty() && (atsign == std::string::npos || atsign == 0 ||
                                   s->find('.', atsign) == std::string::npos ||
                                   s->find(' ') != std::string::npos)))
          return invalid(name, "email");
        break;
      }
      case FieldKind::Double:
        if (!std::holds_alternative<int64_t>(value) && !std::holds_alternative<double>(value))
          return invalid(name, "double");
        break;
      case FieldKind::Integer:
        if (!std::holds_alternative<int64_t>(value)) return invalid(name, "integer");
        break;
      case FieldKind::Date: {
        const auto *s = std::get_if<std::string>(&value);
        if (!s || s->size() != 10 || !crmhost::timeutil::parse_iso8601_ms(*s))
          return invalid(name, "date");
        break;
      }
      case FieldKind::MultiSelect:
        if (!std::holds_alternative<std::vector<std::string>>(value))
          return invalid(name, "jsonarray");
        break;
      case FieldKind::Lookup:
        if (!std::holds_alternative<ZohoJson>(value)) return invalid(name, "lookup");
        break;
    }
  }
  const auto mandatory = fields.find(module.mandatory);
  if ((insert && (mandatory == fields.end() || is_empty(mandatory->second))) ||
      (!insert && mandatory != fields.end() && is_empty(mandatory->second))) {
    ApiError e;
    e.code = "MANDATORY_NOT_FOUND";
    e.message = "required field not found";
    e.detail("api_name", module.mandatory).detail("json_path", path + "." + module.mandatory);
    return e;
  }
  for (const auto &name : unique_fields[module.name]) {
    const auto it = fields.find(name);
    if (it == fields.end() || is_empty(it->second)) continue;
    const auto wanted = value_texts(it->second);
    for (const auto &[id, record] : o.tables[module.name].records) {
      if (id == self_id) continue;
      const auto stored = record.fields.find(name);
      if (stored == record.fields.end()) continue;
      const auto texts = value_texts(stored->second);
      if (texts.size() == 1 && wanted.size() == 1 && lowercase(texts[0]) == lowercase(wanted[0])) {
        ApiError e;
        e.code = "DUPLICATE_DATA";
        e.message = "duplicate data";
        e.detail("api_name", name)
            .detail("json_path", path + "." + name)
            .detail_raw("duplicate_record", R"({"module":{"api_name":)" + json_string(module.name) +
                                                R"(,"id":)" + json_string(module.resource_id) +
                                                R"(},"id":)" + json_string(std::to_string(id)) +
                                                "}");
        return e;
      }
    }
  }
  return std::nullopt;
}

int64_t ZohoSandbox::Impl::insert(zoho::Org &o, const ModuleDef &module, ZohoFields fields,
                                  int64_t created_ms, int64_t modified_ms) {
  const int64_t now = clock() / 1000 * 1000;
  const int64_t id = next_id++;
  auto &record = o.tables[module.name].records[id];
  record.id = id;
  record.fields = std::move(fields);
  record.created_ms = created_ms ? created_ms / 1000 * 1000 : now;
  record.modified_ms = modified_ms ? modified_ms / 1000 * 1000 : record.created_ms;
  return id;
}

void ZohoSandbox::Impl::apply(zoho::Stored &record, const ZohoFields &changes) {
  for (const auto &[name, value] : changes) {
    if (std::holds_alternative<std::nullptr_t>(value))
      record.fields.erase(name);
    else
      record.fields[name] = value;
  }
  // (guess) every successful update stamps Modified_Time, changed values or not
  record.modified_ms = clock() / 1000 * 1000;
}

void ZohoSandbox::Impl::remove_record(zoho::Org &o, const ModuleDef &module, int64_t id) {
  auto &table = o.tables[module.name];
  const auto it = table.records.find(id);
  if (it == table.records.end()) return;
  table.deleted.push_back(
      {id, display_name(module, it->second.fields), "recycle", clock(), it->second.created_ms});
  table.records.erase(it);
}

std::string ZohoSandbox::Impl::display_name(const ModuleDef &module,
                                            const ZohoFields &fields) const {
  const auto text = [&](const char *name) {
    const auto it = fields.find(name);
    if (it == fields.end()) return std::string();
    const auto texts = value_texts(it->second);
    return texts.empty() ? std::string() : texts.front();
  };
  if (!module.has_full_name()) return text(module.mandatory.c_str());
  const auto first = text("First_Name"), last = text("Last_Name");
  return first.empty() ? last : last.empty() ? first : first + " " + last;
}

void ZohoSandbox::Impl::write_user(JsonWriter &w, const zoho::Org &o) const {
  w.StartObject();
  w.Key("name");
  w.String(o.spec.user_name);
  w.Key("id");
  w.String(o.user_id());
  w.Key("email");
  w.String("sandbox.user@example.com");  // (guess)
  w.EndObject();
}

void ZohoSandbox::Impl::write_record(JsonWriter &w, const zoho::Org &o, const ModuleDef &module,
                                     const zoho::Stored &record,
                                     const std::vector<std::string> *only) const {
  const auto offset = o.spec.utc_offset_minutes;
  const auto system = [&](const std::string &name) {
    if (name == "Created_Time") {
      w.String(zoho_time(record.created_ms, offset));
    } else if (name == "Modified_Time") {
      w.String(zoho_time(record.modified_ms, offset));
    } else if (name == "Created_By" || name == "Modified_By") {
      write_user(w, o);
    } else if (name == "Full_Name") {
      w.String(display_name(module, record.fields));
    } else {
      return false;
    }
    return true;
  };
  w.StartObject();
  w.Key("id");
  w.String(std::to_string(record.id));
  if (only) {
    for (const auto &name : *only) {
      if (name == "id") continue;
      if (name == "Full_Name" && !module.has_full_name()) continue;
      key(w, name);
      if (system(name)) continue;
      const auto it = record.fields.find(name);
      if (it != record.fields.end())
        write_value(w, it->second);
      else if (name == "Owner")
        write_user(w, o);
      else
        w.Null();
    }
    w.EndObject();
    return;
  }
  for (const char *name : {"Created_Time", "Modified_Time", "Created_By", "Modified_By"}) {
    w.Key(name);
    system(name);
  }
  if (module.has_full_name()) {
    w.Key("Full_Name");
    system("Full_Name");
  }
  if (!record.fields.count("Owner")) {
    w.Key("Owner");
    write_user(w, o);
  }
  for (const auto &[name, value] : record.fields) {
    key(w, name);
    write_value(w, value);
  }
  w.EndObject();
}

}  // namespace crmsandbox
