// The Odoo emulator's models and fields, Odoo's exceptions, values, domains and orders.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include "sandbox/odoo_internal.hpp"

namespace crmsandbox::odoo {

namespace {

FieldDef field(std::string name, std::string label, FieldType type, std::string relation = "") {
  FieldDef f;
  f.name = std::move(name);
  f.label = std::move(label);
  f.type = type;
  f.relation = std::move(relation);
  return f;
}

FieldDef readonly(FieldDef f, bool stored = true) {
  f.readonly = true;
  f.stored = stored;
  return f;
}

FieldDef required(FieldDef f) {
  f.required = true;
  return f;
}

// Fields every model has (Odoo's magic columns).
void add_magic_fields(std::vector<FieldDef> &fields) {
  fields.insert(fields.begin(), readonly(field("id", "ID", FieldType::Integer)));
  fields.push_back(readonly(field("display_name", "Display Name", FieldType::Char), false));
  fields.push_back(readonly(field("create_date", "Created on", FieldType::Datetime)));
  fields.push_back(readonly(field("write_date", "Last Updated on", FieldType::Datetime)));
}

std::vector<ModelDef> build_models() {
  using T = FieldType;
  std::vector<ModelDef> out;

  ModelDef partner{"res.partner", "Contact", {}, "display_name asc, id desc"};
  partner.fields = {
      field("name", "Name", T::Char),
      field("email", "Email", T::Char),
      field("phone", "Phone", T::Char),
      field("mobile", "Mobile", T::Char),
      field("street", "Street", T::Char),
      field("city", "City", T::Char),
      field("zip", "Zip", T::Char),
      field("country_id", "Country", T::Many2one, "res.country"),
      field("is_company", "Is a Company", T::Boolean),
      field("parent_id", "Related Company", T::Many2one, "res.partner"),
      field("function", "Job Position", T::Char),
      field("website", "Website Link", T::Char),
      field("active", "Active", T::Boolean),
  };
  add_magic_fields(partner.fields);
  out.push_back(std::move(partner));

  // (guess) crm.lead's real default order starts with priority, which the sandbox lacks.
  ModelDef lead{"crm.lead", "Lead/Opportunity", {}, "id desc"};
  FieldDef type = field("type", "Type", T::Selection);
  type.selection = {{"lead", "Lead"}, {"opportunity", "Opportunity"}};
  type.required = true;
  lead.fields = {
      required(field("name", "Opportunity", T::Char)),
      type,
      field("stage_id", "Stage", T::Many2one, "crm.stage"),
      field("expected_revenue", "Expected Revenue", T::Float),
      field("partner_id", "Customer", T::Many2one, "res.partner"),
      field("email_from", "Email", T::Char),
      field("phone", "Phone", T::Char),
      field("active", "Active", T::Boolean),
  };
  add_magic_fields(lead.fields);
  out.push_back(std::move(lead));

  ModelDef stage{"crm.stage", "CRM Stages", {}, "sequence asc, name asc, id asc"};
  stage.fields = {
      required(field("name", "Stage Name", T::Char)),
      field("sequence", "Sequence", T::Integer),
      field("is_won", "Is Won Stage?", T::Boolean),
  };
  add_magic_fields(stage.fields);
  out.push_back(std::move(stage));

  ModelDef country{"res.country", "Country", {}, "name asc"};
  country.fields = {
      required(field("name", "Country Name", T::Char)),
      field("code", "Country Code", T::Char),
  };
  add_magic_fields(country.fields);
  out.push_back(std::move(country));
  return out;
}

std::string trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return std::string(text);
}

std::string py_string(const std::string &text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string py_number(double value) {
  std::ostringstream out;
  out << value;
  auto text = out.str();
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

const std::vector<std::string> kOperators = {"=",        "!=",        ">",      ">=",    "<",
                                             "<=",       "in",        "not in", "like",  "ilike",
                                             "not like", "not ilike", "=like",  "=ilike"};

Domain parse_leaf(const ModelDef &model, const rapidjson::Value &leaf) {
  const auto invalid = [&] { return Error(kValueError, "Invalid leaf " + py_repr(leaf)); };
  if (!leaf[1].IsString()) throw invalid();
  Domain out;
  out.kind = Domain::Leaf;
  out.op = lowercase(trim(leaf[1].GetString()));
  if (out.op == "<>") out.op = "!=";
  if (out.op == "==") out.op = "=";
  // TRUE_LEAF (1, '=', 1) and FALSE_LEAF (0, '=', 1).
  if (leaf[0].IsInt64() && out.op == "=" && leaf[2].IsInt64() && leaf[2].GetInt64() == 1) {
    if (leaf[0].GetInt64() == 1) return Domain{Domain::True, {}, {}, {}, false, {}};
    if (leaf[0].GetInt64() == 0) return Domain{Domain::False, {}, {}, {}, false, {}};
  }
  if (!leaf[0].IsString()) throw invalid();
  out.field = leaf[0].GetString();
  const FieldDef *def = model.field(out.field);
  if (!def)  // (guess) Odoo 17's wording
    throw Error(kValueError,
                "Invalid field " + model.name + "." + out.field + " in leaf " + py_repr(leaf));
  if (std::find(kOperators.begin(), kOperators.end(), out.op) == kOperators.end()) throw invalid();
  const auto &operand = leaf[2];
  const std::string what = model.name + "." + out.field;
  if (operand.IsArray()) {
    out.list = true;
    for (const auto &v : operand.GetArray()) out.values.push_back(from_json(v, what));
    // Odoo rewrites ('f', '=', [..]) as 'in' and '!=' as 'not in'.
    if (out.op == "=") out.op = "in";
    if (out.op == "!=") out.op = "not in";
  } else {
    out.values.push_back(from_json(operand, what));
  }
  if (def->type == FieldType::Datetime)
    for (auto &v : out.values)
      if (const auto *text = std::get_if<std::string>(&v)) {
        const auto seconds = parse_odoo_datetime(*text);
        // (guess) PostgreSQL's refusal surfaces as a ValueError
        if (!seconds) throw Error(kValueError, "Invalid datetime " + py_string(*text));
        if (out.op.find("like") == std::string::npos) v = odoo_datetime(*seconds);
      }
  return out;
}

}  // namespace

const FieldDef *ModelDef::field(std::string_view wanted) const {
  for (const auto &f : fields)
    if (f.name == wanted) return &f;
  return nullptr;
}

const std::vector<ModelDef> &all_models() {
  static const std::vector<ModelDef> models = build_models();
  return models;
}

const ModelDef *find_model(std::string_view name) {
  for (const auto &m : all_models())
    if (m.name == name) return &m;
  return nullptr;
}

const char *type_name(FieldType type) {
  switch (type) {
    case FieldType::Integer:
      return "integer";
    case FieldType::Char:
      return "char";
    case FieldType::Boolean:
      return "boolean";
    case FieldType::Float:
      return "float";
    case FieldType::Many2one:
      return "many2one";
    case FieldType::Selection:
      return "selection";
    case FieldType::Datetime:
      return "datetime";
  }
  return "char";
}

// (doc) JSON-2: 401 bad credentials, 403 access rights, 404 missing, 422 the caller's input;
// (guess) which exception lands on which status.
int Error::json2_status() const {
  if (status != 0) return status;
  if (name == kAccessDenied) return 401;
  if (name == kAccessError) return 403;
  if (name == kMissingError) return 404;
  if (name == kValidationError || name == kUserError || name == kValueError || name == kTypeError)
    return 422;
  return 500;
}

std::string py_repr(const rapidjson::Value &value) {
  if (value.IsNull()) return "None";
  if (value.IsBool()) return value.GetBool() ? "True" : "False";
  if (value.IsInt64()) return std::to_string(value.GetInt64());
  if (value.IsNumber()) return py_number(value.GetDouble());
  if (value.IsString()) return py_string({value.GetString(), value.GetStringLength()});
  std::string out;
  if (value.IsArray()) {
    out = "[";
    for (const auto &item : value.GetArray()) out += (out.size() > 1 ? ", " : "") + py_repr(item);
    return out + "]";
  }
  out = "{";
  for (const auto &member : value.GetObject())
    out += (out.size() > 1 ? ", " : "") + py_repr(member.name) + ": " + py_repr(member.value);
  return out + "}";
}

std::string py_repr(const OdooValue &value) {
  if (const auto *b = std::get_if<bool>(&value)) return *b ? "True" : "False";
  if (const auto *i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const auto *d = std::get_if<double>(&value)) return py_number(*d);
  return py_string(std::get<std::string>(value));
}

std::string odoo_datetime(int64_t unix_seconds) {
  const auto iso = iso8601_ms(unix_seconds * 1000);  // "2026-11-22T10:00:00.000Z"
  return iso.substr(0, 10) + " " + iso.substr(11, 8);
}

std::optional<int64_t> parse_odoo_datetime(std::string_view text) {
  if (text.size() != 10 && text.size() != 19) return std::nullopt;
  const auto ms = parse_time_ms(text);
  if (!ms) return std::nullopt;
  return *ms / 1000;
}

OdooValue from_json(const rapidjson::Value &value, const std::string &what) {
  if (value.IsNull()) return false;
  if (value.IsBool()) return value.GetBool();
  if (value.IsInt64()) return value.GetInt64();
  if (value.IsNumber()) return value.GetDouble();
  if (value.IsString()) return std::string(value.GetString(), value.GetStringLength());
  throw Error(kValueError, "Wrong value for " + what + ": " + py_repr(value));
}

void write_value(JsonWriter &w, const OdooValue &value) {
  if (const auto *b = std::get_if<bool>(&value)) {
    w.Bool(*b);
  } else if (const auto *i = std::get_if<int64_t>(&value)) {
    w.Int64(*i);
  } else if (const auto *d = std::get_if<double>(&value)) {
    w.Double(*d);
  } else {
    const auto &s = std::get<std::string>(value);
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  }
}

bool Domain::mentions(std::string_view name) const {
  if (kind == Leaf) return field == name;
  return std::any_of(children.begin(), children.end(),
                     [&](const Domain &child) { return child.mentions(name); });
}

Domain parse_domain(const ModelDef &model, const rapidjson::Value *domain) {
  if (!domain || domain->IsNull() || (domain->IsBool() && !domain->GetBool())) return {};
  if (!domain->IsArray())  // (guess) the wording
    throw Error(kValueError, "Invalid domain " + py_repr(*domain));
  const auto &terms = *domain;
  size_t at = 0;
  const auto parse_one = [&](const auto &self) -> Domain {
    if (at >= terms.Size())  // (guess) the wording
      throw Error(kValueError, "Domain " + py_repr(terms) + " is syntactically not correct.");
    const auto &term = terms[static_cast<rapidjson::SizeType>(at++)];
    if (term.IsString()) {
      const std::string op = term.GetString();
      Domain node;
      if (op == "&" || op == "|") {
        node.kind = op == "&" ? Domain::And : Domain::Or;
        node.children.push_back(self(self));
        node.children.push_back(self(self));
        return node;
      }
      if (op == "!") {
        node.kind = Domain::Not;
        node.children.push_back(self(self));
        return node;
      }
      throw Error(kValueError, "Invalid leaf " + py_repr(term));
    }
    if (!term.IsArray() || term.Size() != 3)
      throw Error(kValueError, "Invalid leaf " + py_repr(term));
    return parse_leaf(model, term);
  };
  Domain top;
  top.kind = Domain::And;
  while (at < terms.Size()) top.children.push_back(parse_one(parse_one));
  if (top.children.empty()) return {};
  if (top.children.size() == 1) return std::move(top.children.front());
  return top;
}

std::vector<SortKey> parse_order(const ModelDef &model, const std::string &order) {
  const std::string spec = trim(order).empty() ? model.default_order : order;
  std::vector<SortKey> out;
  std::stringstream parts(spec);
  std::string part;
  while (std::getline(parts, part, ',')) {
    std::stringstream words(trim(part));
    std::vector<std::string> tokens;
    for (std::string word; words >> word;) tokens.push_back(lowercase(word));
    SortKey key;
    bool valid = !tokens.empty() && tokens.size() <= 4;
    if (valid) {
      key.field = model.field(tokens[0]);
      valid = key.field != nullptr;
      if (tokens[0] == "id") key.field = nullptr;
    }
    size_t i = 1;
    if (valid && i < tokens.size() && (tokens[i] == "asc" || tokens[i] == "desc"))
      key.descending = tokens[i++] == "desc";
    if (valid && i < tokens.size()) {
      valid = i + 2 == tokens.size() && tokens[i] == "nulls" &&
              (tokens[i + 1] == "first" || tokens[i + 1] == "last");
      if (valid) key.nulls_first = tokens[i + 1] == "first";
    }
    if (!valid)  // Odoo's message for a bad order (doc source, from memory)
      throw Error(kUserError,
                  "Invalid \"order\" specified (" + trim(part) +
                      "). A valid \"order\" specification is a comma-separated list of valid "
                      "field names (optionally followed by asc/desc for the direction)");
    out.push_back(key);
  }
  return out;
}

const rapidjson::Value *Params::get(const std::string &name) const {
  const auto it = named.find(name);
  return it == named.end() ? nullptr : it->second;
}

}  // namespace crmsandbox::odoo
