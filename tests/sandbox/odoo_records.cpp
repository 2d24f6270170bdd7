// The Odoo emulator's records: values checked as Odoo's fields do, inserts and updates stamped
// with their transaction, domain evaluation, ordering, reads, and webhook payloads.
#include <algorithm>
#include <cctype>
#include <charconv>

#include "sandbox/odoo_internal.hpp"

namespace crmsandbox {

using namespace odoo;

namespace {

std::string tuple_repr(const std::vector<int64_t> &ids) {
  std::string out = "(";
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + std::to_string(ids[i]);
  return out + (ids.size() == 1 ? ",)" : ")");
}

// Odoo's translation of a PostgreSQL constraint violation (Odoo 16+, from memory: guess).
std::string sql_error(const ModelDef &model, const std::string &detail) {
  return "The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n- "
         "Delete: another model requires the record being deleted. If possible, archive it "
         "instead.\n\nModel: " +
         model.label + " (" + model.name + ")\n" + detail;
}

std::optional<int> compare(const OdooValue &a, const OdooValue &b) {
  const auto number = [](const OdooValue &v) -> std::optional<double> {
    if (const auto *i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
    if (const auto *d = std::get_if<double>(&v)) return *d;
    return std::nullopt;
  };
  if (const auto x = number(a), y = number(b); x && y) return *x < *y ? -1 : *x > *y ? 1 : 0;
  const auto *s = std::get_if<std::string>(&a);
  const auto *t = std::get_if<std::string>(&b);
  if (s && t) return s->compare(*t) < 0 ? -1 : s->compare(*t) > 0 ? 1 : 0;
  const auto *p = std::get_if<bool>(&a);
  const auto *q = std::get_if<bool>(&b);
  if (p && q) return static_cast<int>(*p) - static_cast<int>(*q);
  return std::nullopt;
}

std::string as_text(const OdooValue &value) {
  if (const auto *s = std::get_if<std::string>(&value)) return *s;
  if (const auto *b = std::get_if<bool>(&value)) return *b ? "True" : "False";
  if (const auto *i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  return py_repr(value);
}

// SQL LIKE: '%' any run, '_' one character, '\' escapes.
bool like(std::string_view text, std::string_view pattern) {
  size_t t = 0, p = 0, star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '%') {
      star_p = p++;
      star_t = t;
      continue;
    }
    if (p < pattern.size()) {
      const bool escaped = pattern[p] == '\\' && p + 1 < pattern.size();
      const char c = escaped ? pattern[p + 1] : pattern[p];
      if ((!escaped && c == '_') || c == text[t]) {
        p += escaped ? 2 : 1;
        ++t;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pattern.size() && pattern[p] == '%') ++p;
  return p == pattern.size();
}

bool equals(const OdooValue &a, const OdooValue &b, const FieldDef &field) {
  if (field.type == FieldType::Boolean) return truthy(a) == truthy(b);
  const auto *flag = std::get_if<bool>(&b);
  if (flag) return truthy(a) == *flag;  // '= False' is IS NULL
  if (const auto *empty = std::get_if<bool>(&a); empty && !*empty) return false;
  const auto c = compare(a, b);
  return c && *c == 0;
}

}  // namespace

bool odoo::truthy(const OdooValue &value) {
  if (const auto *b = std::get_if<bool>(&value)) return *b;
  if (const auto *i = std::get_if<int64_t>(&value)) return *i != 0;
  if (const auto *d = std::get_if<double>(&value)) return *d != 0;
  return !std::get<std::string>(value).empty();
}

void odoo::check_required(const ModelDef &model, const OdooValues &values, bool create) {
  const auto empty = [&](const std::string &name) {
    const auto it = values.find(name);
    if (it == values.end()) return create;
    return !truthy(it->second) && !std::holds_alternative<int64_t>(it->second);
  };
  // (guess, Odoo 17's wording) res.partner's constraint instead of NOT NULL on name
  if (model.name == "res.partner") {
    if ((create || values.count("name")) && empty("name"))
      throw Error(kValidationError, "Contacts require a name");
    return;
  }
  for (const auto &f : model.fields)
    if (f.required && f.name != "type" && (create || values.count(f.name)) && empty(f.name))
      throw Error(kValidationError, sql_error(model, "Field: " + f.label + " (" + f.name + ")"));
}

Database &OdooSandbox::Impl::database(const std::string &name) {
  auto [it, inserted] = databases.try_emplace(name);
  if (!inserted) return it->second;
  auto &db = it->second;
  db.name = name;
  for (const auto &m : all_models()) db.tables[m.name];
  const auto stamp = stamp_now();
  const auto *country = find_model("res.country");
  for (const auto &[code, country_name] : std::vector<std::pair<const char *, const char *>>{
           {"BE", "Belgium"},
           {"BR", "Brazil"},
           {"CA", "Canada"},
           {"CH", "Switzerland"},
           {"DE", "Germany"},
           {"ES", "Spain"},
           {"FR", "France"},
           {"GB", "United Kingdom"},
           {"IN", "India"},
           {"IT", "Italy"},
           {"JP", "Japan"},
           {"NL", "Netherlands"},
           {"SE", "Sweden"},
           {"US", "United States"},
       })
    insert(db, *country, {{"code", std::string(code)}, {"name", std::string(country_name)}}, stamp);
  const auto *stage = find_model("crm.stage");
  int64_t sequence = 1;
  for (const auto *stage_name : {"New", "Qualified", "Proposition", "Won"})
    insert(db, *stage,
           {{"name", std::string(stage_name)},
            {"sequence", sequence++},
            {"is_won", std::string(stage_name) == "Won"}},
           stamp);
  return db;
}

std::string OdooSandbox::Impl::stamp_now() const {
  return odoo_datetime(frozen_s ? *frozen_s : now_ms() / 1000 + clock_offset_s);
}

OdooValues OdooSandbox::Impl::check_values(
    Database &db, const ModelDef &model, const OdooValues &values,
    const std::set<std::pair<std::string, int64_t>> &reserved) {
  OdooValues out;
  for (const auto &[name, value] : values) {
    const FieldDef *field = model.field(name);
    if (!field)  // (guess) the wording; the brief asks for a ValidationError
      throw Error(kValidationError, "Invalid field '" + name + "' on model '" + model.name + "'");
    if (field->readonly) continue;  // (guess) Odoo ignores the magic columns in writes
    const std::string what = model.name + "." + name;
    const auto wrong = [&] {
      return Error(kValueError, "Wrong value for " + what + ": " + py_repr(value));
    };
    const bool empty = std::holds_alternative<bool>(value) && !std::get<bool>(value);
    switch (field->type) {
      case FieldType::Char:
        out[name] = empty ? OdooValue(false) : OdooValue(as_text(value));
        break;
      case FieldType::Boolean:
        out[name] = truthy(value);
        break;
      case FieldType::Integer:
      case FieldType::Float: {
        double number = 0;
        if (const auto *s = std::get_if<std::string>(&value)) {
          const auto parsed = parse_number(*s);
          if (!parsed)  // Python's int() / float() refusal
            throw Error(kValueError,
                        field->type == FieldType::Integer
                            ? "invalid literal for int() with base 10: " + py_repr(value)
                            : "could not convert string to float: " + py_repr(value));
          number = *parsed;
        } else if (const auto *i = std::get_if<int64_t>(&value)) {
          number = static_cast<double>(*i);
        } else if (const auto *d = std::get_if<double>(&value)) {
          number = *d;
        } else {
          number = truthy(value) ? 1 : 0;
        }
        if (field->type == FieldType::Integer)
          out[name] = static_cast<int64_t>(number);
        else
          out[name] = number;
        break;
      }
      case FieldType::Selection: {
        if (empty) {
          out[name] = false;
          break;
        }
        const auto *s = std::get_if<std::string>(&value);
        if (!s || std::none_of(field->selection.begin(), field->selection.end(),
                               [&](const auto &option) { return option.first == *s; }))
          throw wrong();
        out[name] = *s;
        break;
      }
      case FieldType::Many2one: {
        if (empty) {
          out[name] = false;
          break;
        }
        const auto *id = std::get_if<int64_t>(&value);
        if (!id) throw wrong();
        const auto &rows = db.tables[field->relation].rows;
        if (!rows.count(*id) && !reserved.count({field->relation, *id})) {
          auto table = model.name;  // res_partner_parent_id_fkey
          std::replace(table.begin(), table.end(), '.', '_');
          throw Error(kValidationError,
                      sql_error(model, "Constraint: " + table + "_" + name + "_fkey"));
        }
        out[name] = *id;
        break;
      }
      case FieldType::Datetime: {
        if (empty) {
          out[name] = false;
          break;
        }
        const auto *s = std::get_if<std::string>(&value);
        const auto seconds = s ? parse_odoo_datetime(*s) : std::nullopt;
        if (!seconds) throw wrong();
        out[name] = odoo_datetime(*seconds);
        break;
      }
    }
  }
  return out;
}

int64_t OdooSandbox::Impl::insert(Database &db, const ModelDef &model, OdooValues values,
                                  const std::string &stamp, int64_t id) {
  check_required(model, values, true);
  auto &table = db.tables[model.name];
  if (id == 0) id = table.next_id++;
  if (model.has_active()) values.try_emplace("active", true);
  if (model.name == "res.partner") values.try_emplace("is_company", false);
  if (model.name == "crm.lead") {
    // (guess) the default without the "Leads" setting, which Odoo ships disabled
    values.try_emplace("type", std::string("opportunity"));
    if (!values.count("stage_id") || !truthy(values["stage_id"])) {
      const auto &stages = db.tables["crm.stage"].rows;
      std::optional<std::pair<int64_t, int64_t>> first;  // (sequence, id)
      for (const auto &[stage_id, row] : stages) {
        const auto it = row.find("sequence");
        const int64_t sequence = it != row.end() && std::holds_alternative<int64_t>(it->second)
                                     ? std::get<int64_t>(it->second)
                                     : 0;
        if (!first || std::make_pair(sequence, stage_id) < *first) first = {sequence, stage_id};
      }
      if (first) values["stage_id"] = first->second;
    }
  }
  if (model.name == "crm.stage") values.try_emplace("sequence", int64_t{1});
  values["create_date"] = stamp;
  values["write_date"] = stamp;
  table.rows[id] = std::move(values);
  return id;
}

void OdooSandbox::Impl::update(Database &db, const ModelDef &model, const std::vector<int64_t> &ids,
                               const OdooValues &values, const std::string &stamp) {
  check_required(model, values, false);
  auto &rows = db.tables[model.name].rows;
  for (const auto id : ids) {
    const auto row = rows.find(id);
    if (row == rows.end()) continue;
    for (const auto &[name, value] : values) row->second[name] = value;
    row->second["write_date"] = stamp;
  }
}

void OdooSandbox::Impl::remove(Database &db, const ModelDef &model,
                               const std::vector<int64_t> &ids) {
  auto &rows = db.tables[model.name].rows;
  for (const auto id : ids) rows.erase(id);
  // ON DELETE SET NULL, as Odoo's many2one columns default to: write_date does not move.
  for (const auto &other : all_models())
    for (const auto &f : other.fields) {
      if (f.type != FieldType::Many2one || f.relation != model.name) continue;
      for (auto &[id, row] : db.tables[other.name].rows) {
        const auto it = row.find(f.name);
        if (it == row.end() || !std::holds_alternative<int64_t>(it->second)) continue;
        if (std::find(ids.begin(), ids.end(), std::get<int64_t>(it->second)) != ids.end())
          it->second = false;
      }
    }
}

void OdooSandbox::Impl::require_rows(Database &db, const ModelDef &model,
                                     const std::vector<int64_t> &ids, int64_t uid) {
  const auto &rows = db.tables[model.name].rows;
  std::vector<int64_t> missing;
  for (const auto id : ids)
    if (!rows.count(id)) missing.push_back(id);
  if (!missing.empty())  // Odoo's MissingError text
    throw Error(kMissingError,
                "Record does not exist or has been deleted.\n(Record: " + model.name +
                    tuple_repr(missing) + ", User: " + std::to_string(uid) + ")");
}

std::string OdooSandbox::Impl::display_name(Database &db, const ModelDef &model, int64_t id) {
  const auto &rows = db.tables[model.name].rows;
  const auto row = rows.find(id);
  if (row == rows.end()) return model.name + "," + std::to_string(id);
  const auto get = [&](const char *name) -> OdooValue {
    const auto it = row->second.find(name);
    return it == row->second.end() ? OdooValue(false) : it->second;
  };
  const auto name = get("name");
  std::string out = truthy(name) ? as_text(name) : "";
  // A company's contact reads "Company, Contact" (Odoo's commercial partner prefix).
  if (model.name == "res.partner" && !truthy(get("is_company"))) {
    const auto parent = get("parent_id");
    if (const auto *parent_id = std::get_if<int64_t>(&parent)) {
      const auto &prow = rows.find(*parent_id);
      if (prow != rows.end()) {
        const auto pname = prow->second.find("name");
        if (pname != prow->second.end() && truthy(pname->second))
          out = as_text(pname->second) + (out.empty() ? "" : ", " + out);
      }
    }
  }
  if (out.empty() && !truthy(name)) return model.name + "," + std::to_string(id);
  return out;
}

namespace {

// A field's value as the domain and the order see it; many2one as its id.
OdooValue field_value(const FieldDef &field, int64_t id, const OdooValues &row) {
  if (field.name == "id") return id;
  const auto it = row.find(field.name);
  if (it != row.end()) return it->second;
  if (field.type == FieldType::Integer) return int64_t{0};
  if (field.type == FieldType::Float) return 0.0;
  return false;
}

}  // namespace

bool OdooSandbox::Impl::matches(Database &db, const ModelDef &model, int64_t id,
                                const OdooValues &row, const Domain &domain) {
  switch (domain.kind) {
    case Domain::True:
      return true;
    case Domain::False:
      return false;
    case Domain::Not:
      return !matches(db, model, id, row, domain.children[0]);
    case Domain::And:
      for (const auto &child : domain.children)
        if (!matches(db, model, id, row, child)) return false;
      return true;
    case Domain::Or:
      for (const auto &child : domain.children)
        if (matches(db, model, id, row, child)) return true;
      return false;
    case Domain::Leaf:
      break;
  }
  const FieldDef &field = *model.field(domain.field);
  const auto &op = domain.op;
  const bool like_op = op.find("like") != std::string::npos;
  OdooValue a = field.name == "display_name" ? OdooValue(display_name(db, model, id))
                                             : field_value(field, id, row);
  // A many2one compared with text compares the related record's name (Odoo's name_search).
  const bool by_name =
      field.type == FieldType::Many2one &&
      (like_op || std::any_of(domain.values.begin(), domain.values.end(), [](const auto &v) {
         return std::holds_alternative<std::string>(v);
       }));
  if (by_name && std::holds_alternative<int64_t>(a))
    a = display_name(db, *find_model(field.relation), std::get<int64_t>(a));
  const OdooValue &b = domain.values.empty() ? OdooValue(false) : domain.values.front();
  if (op == "=") return equals(a, b, field);
  if (op == "!=") return !equals(a, b, field);
  if (op == "in" || op == "not in") {
    const bool found = std::any_of(domain.values.begin(), domain.values.end(),
                                   [&](const auto &v) { return equals(a, v, field); });
    return op == "in" ? found : !found;
  }
  if (like_op) {
    const bool negated = op.rfind("not ", 0) == 0;
    const bool empty =
        std::holds_alternative<bool>(a) && !std::get<bool>(a) && field.type != FieldType::Boolean;
    if (empty) return negated;  // NULL: no match, but 'not ilike' keeps it (Odoo adds IS NULL)
    const bool insensitive = op.find("ilike") != std::string::npos;
    std::string text = as_text(a), pattern = as_text(b);
    if (op[0] != '=') pattern = "%" + pattern + "%";
    if (insensitive) {
      text = lowercase(text);
      pattern = lowercase(pattern);
    }
    return like(text, pattern) != negated;
  }
  if (std::holds_alternative<bool>(a) && !std::get<bool>(a) && field.type != FieldType::Boolean)
    return false;  // NULL compares with nothing
  const auto c = compare(a, b);
  if (!c) return false;
  if (op == ">") return *c > 0;
  if (op == ">=") return *c >= 0;
  if (op == "<") return *c < 0;
  return *c <= 0;
}

std::vector<int64_t> OdooSandbox::Impl::search(Database &db, const ModelDef &model,
                                               const Domain &domain, bool active_test,
                                               int64_t offset, std::optional<int64_t> limit,
                                               const std::string &order) {
  const auto keys = parse_order(model, order);
  const bool only_active = active_test && model.has_active() && !domain.mentions("active");
  const auto &rows = db.tables[model.name].rows;
  struct Hit {
    int64_t id;
    std::vector<OdooValue> sort;
  };
  std::vector<Hit> hits;
  for (const auto &[id, row] : rows) {
    if (only_active) {
      const auto active = row.find("active");
      if (active != row.end() && !truthy(active->second)) continue;
    }
    if (!matches(db, model, id, row, domain)) continue;
    Hit hit{id, {}};
    for (const auto &key : keys) {
      if (!key.field) {
        hit.sort.emplace_back(id);
      } else if (key.field->name == "display_name") {
        hit.sort.emplace_back(display_name(db, model, id));
      } else {
        auto v = field_value(*key.field, id, row);
        // (guess) many2one sorts by the related name, not by the related model's _order
        if (key.field->type == FieldType::Many2one && std::holds_alternative<int64_t>(v))
          v = display_name(db, *find_model(key.field->relation), std::get<int64_t>(v));
        hit.sort.push_back(std::move(v));
      }
    }
    hits.push_back(std::move(hit));
  }
  std::stable_sort(hits.begin(), hits.end(), [&](const Hit &x, const Hit &y) {
    for (size_t i = 0; i < keys.size(); ++i) {
      const bool boolean = keys[i].field && keys[i].field->type == FieldType::Boolean;
      const auto is_null = [&](const OdooValue &v) {
        return !boolean && std::holds_alternative<bool>(v) && !std::get<bool>(v);
      };
      const bool xn = is_null(x.sort[i]), yn = is_null(y.sort[i]);
      // PostgreSQL: NULLS LAST ascending, NULLS FIRST descending, unless told.
      const bool nulls_first = keys[i].nulls_first.value_or(keys[i].descending);
      if (xn != yn) return nulls_first ? xn : yn;
      if (xn) continue;
      const auto c = compare(x.sort[i], y.sort[i]).value_or(0);
      if (c != 0) return keys[i].descending ? c > 0 : c < 0;
    }
    return x.id < y.id;
  });
  std::vector<int64_t> out;
  for (size_t i = static_cast<size_t>(std::max<int64_t>(0, offset)); i < hits.size(); ++i) {
    if (limit && *limit > 0 && static_cast<int64_t>(out.size()) >= *limit) break;
    out.push_back(hits[i].id);
  }
  return out;
}

std::vector<const FieldDef *> OdooSandbox::Impl::read_fields(const ModelDef &model,
                                                             const rapidjson::Value *fields) {
  std::vector<const FieldDef *> out;
  const bool all = !fields || fields->IsNull() || (fields->IsBool() && !fields->GetBool()) ||
                   (fields->IsArray() && fields->Empty());
  if (all) {
    for (const auto &f : model.fields) out.push_back(&f);
    return out;
  }
  if (!fields->IsArray()) throw Error(kTypeError, "fields must be a list, not " + py_repr(*fields));
  out.push_back(model.field("id"));  // Odoo always answers the id
  for (const auto &name : fields->GetArray()) {
    const FieldDef *f = name.IsString() ? model.field(name.GetString()) : nullptr;
    if (!f)  // (guess) the wording of Odoo 17's refusal
      throw Error(kValueError, "Invalid field " + py_repr(name) + " on model '" + model.name + "'");
    if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
  }
  return out;
}

void OdooSandbox::Impl::write_field(JsonWriter &w, Database &db, const FieldDef &field, int64_t id,
                                    const OdooValues &row, const ModelDef &model, bool names) {
  if (field.name == "display_name") {
    const auto name = display_name(db, model, id);
    w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    return;
  }
  const auto value = field_value(field, id, row);
  if (field.type == FieldType::Many2one && std::holds_alternative<int64_t>(value) && names) {
    const auto related = std::get<int64_t>(value);
    const auto name = display_name(db, *find_model(field.relation), related);
    w.StartArray();
    w.Int64(related);
    w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
    w.EndArray();
    return;
  }
  write_value(w, value);
}

void OdooSandbox::Impl::write_row(JsonWriter &w, Database &db, const ModelDef &model, int64_t id,
                                  const std::vector<const FieldDef *> &fields, bool names) {
  const auto &row = db.tables[model.name].rows.at(id);
  w.StartObject();
  for (const auto *f : fields) {
    w.Key(f->name.data(), static_cast<rapidjson::SizeType>(f->name.size()));
    write_field(w, db, *f, id, row, model, names);
  }
  w.EndObject();
}

void OdooSandbox::Impl::collect_webhooks(Database &db, const ModelDef &model, int64_t id,
                                         const std::string &trigger,
                                         std::vector<OdooDelivery> &out) {
  const auto &rows = db.tables[model.name].rows;
  const auto row = rows.find(id);
  if (row == rows.end()) return;
  for (const auto &rule : rules) {
    if (rule.model != model.name || !rule.triggers.count(trigger) || rule.url.empty()) continue;
    // (doc source, from memory) json.dumps(vals, sort_keys=True): Python's separators and
    // ASCII escapes; fields read with load=None, so many2one values are bare ids.
    std::map<std::string, std::string> members;
    const auto json_of = [&](const auto &write) {
      rapidjson::StringBuffer buffer;
      rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::ASCII<>> w(buffer);
      write(w);
      return std::string(buffer.GetString(), buffer.GetSize());
    };
    const auto text = [&](const std::string &s) {
      return json_of(
          [&](auto &w) { w.String(s.data(), static_cast<rapidjson::SizeType>(s.size())); });
    };
    members["_action"] = text(rule.name + "(#" + std::to_string(rule.id) + ")");
    members["_id"] = std::to_string(id);
    members["_model"] = text(model.name);
    for (const auto &name : rule.fields) {
      const FieldDef *f = model.field(name);
      if (!f) continue;
      if (f->name == "display_name") {
        members[name] = text(display_name(db, model, id));
        continue;
      }
      const auto value = field_value(*f, id, row->second);
      members[name] = json_of([&](auto &w) {
        if (const auto *b = std::get_if<bool>(&value))
          w.Bool(*b);
        else if (const auto *i = std::get_if<int64_t>(&value))
          w.Int64(*i);
        else if (const auto *d = std::get_if<double>(&value))
          w.Double(*d);
        else {
          const auto &s = std::get<std::string>(value);
          w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
        }
      });
    }
    std::string body = "{";
    for (const auto &[key, json] : members)
      body += (body.size() > 1 ? ", " : "") + text(key) + ": " + json;
    body += "}";
    // RapidJSON writes \u00EB, Python \u00eb.
    for (size_t i = 0; i + 1 < body.size(); ++i) {
      if (body[i] != '\\') continue;
      if (body[i + 1] == 'u')
        for (size_t k = i + 2; k < std::min(body.size(), i + 6); ++k)
          body[k] = static_cast<char>(std::tolower(static_cast<unsigned char>(body[k])));
      ++i;
    }
    OdooDelivery delivery;
    delivery.rule_id = rule.id;
    delivery.database = db.name;
    delivery.model = model.name;
    delivery.record_id = id;
    delivery.trigger = trigger;
    delivery.url = rule.url;
    delivery.headers = {{"Content-Type", "application/json"},
                        {"User-Agent", "python-requests/2.31.0"}};  // (guess) the version
    if (!rule.header_name.empty())
      delivery.headers.emplace_back(rule.header_name, rule.header_value);
    delivery.body = std::move(body);
    out.push_back(std::move(delivery));
  }
}

void OdooSandbox::Impl::commit(int64_t transaction_id, std::vector<OdooDelivery> &webhooks) {
  const auto it = transactions.find(transaction_id);
  if (it == transactions.end())
    throw std::invalid_argument("no open transaction " + std::to_string(transaction_id));
  const Transaction tx = std::move(it->second);
  transactions.erase(it);
  auto &db = database(tx.db);
  for (const auto &op : tx.ops) {
    const auto &model = *find_model(op.model);
    auto &rows = db.tables[model.name].rows;
    std::vector<int64_t> present;
    for (const auto id : op.ids)
      if (rows.count(id) || op.kind == PendingOp::Create) present.push_back(id);
    auto values = op.values;
    // A many2one target deleted since the write: PostgreSQL would have refused; keep it empty.
    for (auto &[name, value] : values) {
      const FieldDef *f = model.field(name);
      if (f && f->type == FieldType::Many2one && std::holds_alternative<int64_t>(value) &&
          !db.tables[f->relation].rows.count(std::get<int64_t>(value)))
        value = false;
    }
    if (op.kind == PendingOp::Create) {
      insert(db, model, values, tx.stamp, op.ids.front());
      collect_webhooks(db, model, op.ids.front(), "create", webhooks);
    } else if (op.kind == PendingOp::Write) {
      update(db, model, present, values, tx.stamp);
      for (const auto id : present) collect_webhooks(db, model, id, "write", webhooks);
    } else {
      for (const auto id : present) collect_webhooks(db, model, id, "unlink", webhooks);
      remove(db, model, present);
    }
  }
}

}  // namespace crmsandbox
