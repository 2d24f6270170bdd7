// Loads YAML configuration files into Config, reporting every problem with its file:line:column.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <rapidjson/document.h>
#include <yaml-cpp/eventhandler.h>

#include "config/config.hpp"
#include "config/detail.hpp"
#include "mapping/mapping.hpp"
#include "plugins/plugin_registry.hpp"
#include "util/json.hpp"
#include "util/redact.hpp"

namespace crmhost::config {

namespace {

namespace fs = std::filesystem;

// The documents of a YAML stream, as parser events: where each starts and where its first
// node is, without building (or expanding the aliases of) any node.
class DocumentCounter : public YAML::EventHandler {
 public:
  struct Document {
    YAML::Mark start, node;
    bool has_node = false;
  };
  std::vector<Document> documents;

  void OnDocumentStart(const YAML::Mark &mark) override { documents.push_back({mark, mark}); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark &mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark &mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark &mark, const std::string &, YAML::anchor_t,
                const std::string &) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark &mark, const std::string &, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark &mark, const std::string &, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

 private:
  void node(const YAML::Mark &mark) {
    if (documents.empty() || documents.back().has_node) return;
    documents.back().node = mark;
    documents.back().has_node = true;
  }
};
using detail::location;

const std::vector<std::string> kTopKeys = {"store",
                                           "listen",
                                           "admin_token",
                                           "plugin_dir",
                                           "log",
                                           "workers",
                                           "shutdown_grace",
                                           "claim_lease",
                                           "retention",
                                           "max_body",
                                           "tls",
                                           "metrics_token",
                                           "connections",
                                           "pipelines",
                                           "allow_inline_secrets",
                                           "max_connections_per_client"};
const std::vector<std::string> kLogFormats = {"text", "json"};
const std::vector<std::string> kLogLevels = {"trace", "debug",    "info", "warn",
                                             "error", "critical", "off"};
const std::vector<std::string> kPushModes = {"upsert", "create", "update", "delete"};
const std::vector<std::string> kDeletePolicies = {"keep_edited", "propagate", "archive"};
const std::vector<std::string> kKeySteps = {"trim", "lower"};
const std::vector<std::string> kConflicts = {"source_wins", "target_wins", "newest_wins",
                                             "fill_empty"};

// Whether a PostgreSQL URI as written carries a password (user:password@ or password=).
bool uri_has_password(std::string_view uri) {
  const auto scheme = uri.find("://");
  if (scheme == std::string_view::npos) return false;
  const auto authority = uri.substr(scheme + 3, uri.find('/', scheme + 3) - (scheme + 3));
  const auto at = authority.rfind('@');
  return (at != std::string_view::npos &&
          authority.substr(0, at).find(':') != std::string_view::npos) ||
         uri.find("password=") != std::string_view::npos;
}

std::string q(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

std::string format_duration(Duration d) {
  const auto ms = d.count();
  if (ms % 86'400'000 == 0 && ms) return std::to_string(ms / 86'400'000) + "d";
  if (ms % 3'600'000 == 0 && ms) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0 && ms) return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0 && ms) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

// Values from ${...} at least this long are scrubbed from every problem; shorter ones (ports,
// flags, country codes) would match ordinary words, and are never echoed where they are read.
constexpr size_t kScrubbedLength = 6;

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

// Where a value sits, for messages: `owner` is `connection "x"` or `pipeline "y"` (empty at the
// top level), `path` the keys below it ("source.poll").
struct Ctx {
  std::string owner;
  std::string path;

  Ctx child(std::string_view key) const {
    return {owner, path.empty() ? std::string(key) : path + "." + std::string(key)};
  }
  std::string name() const {
    if (path.empty()) return owner;
    return owner.empty() ? path : path + " of " + owner;
  }
  std::string in() const {
    return owner.empty() && path.empty() ? "at the top level" : "in " + name();
  }
};

struct Entry {
  YAML::Node key;
  YAML::Node value;
  Ctx ctx;  // the value's
  YAML::Mark key_mark() const { return key.Mark(); }
  YAML::Mark value_mark() const { return detail::mark_of(value, key.Mark()); }
};

// The entries of one mapping, checked for unknown and duplicate keys.
struct Fields {
  bool ok = false;
  YAML::Mark mark;  // the mapping's own key, where missing keys are reported
  Ctx ctx;
  std::map<std::string, Entry, std::less<>> entries;
  const Entry *get(std::string_view key) const {
    auto it = entries.find(key);
    return it == entries.end() ? nullptr : &it->second;
  }
};

struct Scalar {
  std::string text;
  bool plain = true;
  bool substituted = false;  // came (partly) from ${...}: never echo it
  std::string written;       // as in the file, e.g. ${file:/run/secrets/x}

  // How a problem may name the value: quoted when written literally, else by where it came from.
  std::string shown() const { return substituted ? "the value from " + written : q(text); }
};

struct ConnectionExtra {
  YAML::Node settings;
  YAML::Mark settings_mark;
  bool settings_ok = true;
  std::string file;
  SourceLocation plugin_at;
  std::string plugin_shown;  // Scalar::shown()
  bool plugin_substituted = false;
};

struct Ref {
  std::string connection;
  std::string connection_shown;  // Scalar::shown()
  bool connection_substituted = false;
  SourceLocation connection_at;
  SourceLocation object_at;
  std::string object_shown;
};

struct PipelineExtra {
  std::optional<Ref> webhook, poll, push;
  SourceLocation path_at, mode_at, conflict_at, on_delete_at;
  std::string normalized_path;
  std::string path_shown, preset_shown;  // Scalar::shown()
  // The map stage, checked once every file is read (a preset is found through plugin_dir).
  YAML::Node map_fields;  // undefined when absent
  std::string map_file;
  fs::path map_base_dir;
  YAML::Mark preset_mark;
  bool map_ok = true;
};

class Loader {
 public:
  explicit Loader(const plugins::PluginRegistry *registry) : registry_(registry) {}

  LoadResult run(const std::vector<fs::path> &paths) {
    for (const auto &path : paths) load_path(path);
    check_maps();
    cross_check();
    if (registry_) plugin_check();
    scrub_substituted_values();
    std::stable_sort(problems_.begin(), problems_.end(), [&](const Problem &a, const Problem &b) {
      const int ra = rank(a.where.file), rb = rank(b.where.file);
      if (ra != rb) return ra < rb;
      if (a.where.line != b.where.line) return a.where.line < b.where.line;
      return a.where.column < b.where.column;
    });
    LoadResult result;
    if (!config_.allow_inline_secrets) result.warnings = std::move(inline_secrets_);
    for (auto &w : plugin_warnings_) result.warnings.push_back(std::move(w));
    result.problems = std::move(problems_);
    if (result.problems.empty()) result.config = std::move(config_);
    return result;
  }

 private:
  // ---- problems ----

  std::vector<Problem> plugin_warnings_;  // valid, but a plugin cannot do all that is asked

  void problem(const YAML::Mark &mark, std::string message) {
    problems_.push_back({location(file_, mark), std::move(message)});
  }

  // A secret written into the file itself rather than taken from ${ENV} or ${file:}: it then
  // sits in backups, diffs and review tools. A warning, unless allow_inline_secrets is set.
  void note_inline_secret(const YAML::Node &value, const std::string &name) {
    if (!value.IsScalar() || value.Scalar().empty() ||
        value.Scalar().find("${") != std::string::npos)
      return;
    inline_secrets_.push_back(
        {location(file_, value.Mark()),
         name + " is written inline: take secrets from ${ENV} or ${file:/path} (or set "
                "allow_inline_secrets: true)"});
  }

  // Settings keys that name secrets (and not where one is found: *_url, *_header, *_file...).
  static bool secret_key_name(std::string key) {
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (const char *suffix : {"_url", "_uri", "_header", "_file", "_path", "_name", "_field",
                               "_id", "_expiry", "_ttl", "_seconds"})
      if (key.size() > std::strlen(suffix) &&
          key.compare(key.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
        return false;
    // The redaction policy's notion of a secret key, plus credentials it has no value form of.
    return redaction::is_secret_key(key) || key.find("credential") != std::string::npos;
  }

  void find_inline_secrets(const YAML::Node &node, const std::string &name, int depth = 0) {
    if (depth > 16 || !node.IsMap()) return;
    for (const auto &item : node) {
      if (!item.first.IsScalar()) continue;
      const std::string child = name + "." + item.first.Scalar();
      if (item.second.IsMap())
        find_inline_secrets(item.second, child, depth + 1);
      else if (secret_key_name(item.first.Scalar()))
        note_inline_secret(item.second, child);
    }
  }
  void problem(const SourceLocation &where, std::string message) {
    problems_.push_back({where, std::move(message)});
  }
  int rank(const std::string &file) const {
    auto it = std::find(files_.begin(), files_.end(), file);
    return static_cast<int>(it - files_.begin());
  }

  // A value from ${file:...} or ${ENV} may be a secret: remember it, so that no problem echoes
  // it even through a message built elsewhere (the mapping compiler's, say).
  void remember_substituted(const std::string &value, const std::string &written) {
    if (value.size() >= kScrubbedLength) substituted_.emplace_back(value, written);
  }
  void scrub_substituted_values() {
    std::sort(substituted_.begin(), substituted_.end(),
              [](const auto &a, const auto &b) { return a.first.size() > b.first.size(); });
    for (auto &problem : problems_)
      for (const auto &[value, written] : substituted_)
        for (size_t at = 0; (at = problem.message.find(value, at)) != std::string::npos;) {
          const std::string shown = "the value from " + written;
          problem.message.replace(at, value.size(), shown);
          at += shown.size();
        }
  }

  // ", not "text"" for a value that may be shown, "" otherwise.
  static std::string got(const Entry &e, const Scalar *scalar = nullptr) {
    // Never a substituted value (it may be a secret), and a long one only in part.
    const auto shown = [](const std::string &text) {
      return text.size() <= 80
                 ? q(text)
                 : q(text.substr(0, 60)) + "... (" + std::to_string(text.size()) + " characters)";
    };
    if (scalar) return scalar->substituted ? "" : ", not " + shown(scalar->text);
    if (!e.value.IsDefined() || e.value.IsNull()) return ", not empty";
    if (e.value.IsMap()) return ", not a mapping";
    if (e.value.IsSequence()) return ", not a list";
    return ", not " + shown(e.value.Scalar());
  }

  // ---- files ----

  void load_path(const fs::path &path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      std::vector<fs::path> files;
      for (const auto &item : fs::directory_iterator(path, ec)) {
        const auto ext = item.path().extension();
        if ((ext == ".yaml" || ext == ".yml") && item.is_regular_file(ec))
          files.push_back(item.path());
      }
      std::sort(files.begin(), files.end());
      if (files.empty()) {
        files_.push_back(path.string());
        problems_.push_back({{path.string(), 0, 0}, "the directory holds no *.yaml or *.yml file"});
      }
      for (const auto &file : files) load_file(file);
      return;
    }
    load_file(path);
  }

  void load_file(const fs::path &path) {
    file_ = path.string();
    files_.push_back(file_);
    base_dir_ = path.parent_path();
    std::ifstream in(path, std::ios::binary);
    std::error_code ec;
    if (!in) {
      problems_.push_back(
          {{file_, 0, 0}, fs::exists(path, ec) ? "cannot read the file" : "no such file"});
      return;
    }
    if (const auto size = fs::file_size(path, ec); !ec && size > detail::kMaxConfigFileBytes) {
      problems_.push_back({{file_, 0, 0},
                           "the file is " + std::to_string(size) +
                               " bytes; a configuration file "
                               "may hold at most " +
                               std::to_string(detail::kMaxConfigFileBytes) +
                               " (is it the right file?)"});
      return;
    }
    YAML::Node document;
    try {
      // Documents are counted first, at most three, and only the first is built. yaml-cpp
      // 0.7's LoadAll loops for ever, allocating, on a stream where a token that cannot start
      // a node (a stray ',') is never consumed (jbeder/yaml-cpp#1040): each document then
      // starts where the previous one did.
      DocumentCounter counter;
      YAML::Parser parser(in);
      while (counter.documents.size() < 3 && parser.HandleNextDocument(counter)) {
      }
      const auto &documents = counter.documents;
      for (size_t i = 1; i < documents.size(); ++i)
        if (documents[i].start.pos == documents[i - 1].start.pos) {
          problem(documents[i].start,
                  "YAML syntax error: unexpected token where a value should start (a stray "
                  "','?)");
          return;
        }
      if (documents.size() > 1) {
        problem(documents[1].node, "a configuration file holds one YAML document, not several");
        return;
      }
      if (documents.empty()) return;
      in.clear();
      in.seekg(0);
      document = YAML::Load(in);
    } catch (const YAML::Exception &e) {
      std::string message = "YAML syntax error: " + e.msg;
      if (line_has_flow_interpolation(path, e.mark.line))
        message += " (inside { } or [ ], quote values that use ${...}: \"${NAME}\")";
      message += syntax_error_context(path, e.mark.line, e.msg);
      problem(e.mark, message);
      return;
    }
    YAML::Mark where;
    if (auto excess = detail::check_bounds(document, detail::YamlBounds{}, where)) {
      problem(where, *excess);
      return;
    }
    top_level(document);
  }

  // The offending line, quoted (up to its first ':' when it may hold a secret), and the likely
  // cause of yaml-cpp's terser messages.
  static std::string syntax_error_context(const fs::path &path, int line, const std::string &msg) {
    if (line < 0) return "";
    std::ifstream in(path);
    std::string text, previous;
    bool found = false;
    for (int i = 0; i <= line && std::getline(in, text); ++i) {
      found = i == line;
      if (i < line && text.find_first_not_of(" \t") != std::string::npos) previous = text;
    }
    if (!found) return "";
    std::string lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    for (const char *word : {"token", "secret", "passw", "pwd", "key", "credential", "passphrase"})
      if (lower.find(word) != std::string::npos && text.find(':') != std::string::npos) {
        text = text.substr(0, text.find(':') + 1) + " ...";
        break;
      }
    if (text.size() > 120) text = text.substr(0, 117) + "...";
    std::string out = "; the line reads \"" + text + "\"";
    const auto indent = [](const std::string &s) { return s.find_first_not_of(' '); };
    const auto colon = previous.find(": ");
    const bool under_a_value = colon != std::string::npos &&
                               previous.find_first_not_of(" \t", colon + 1) != std::string::npos &&
                               indent(text) != std::string::npos && indent(text) > indent(previous);
    if (msg.find("illegal map value") != std::string::npos ||
        msg.find("end of map not found") != std::string::npos ||
        msg.find("bad indentation") != std::string::npos)
      out += under_a_value
                 ? " (likely the indentation: this key is indented under a line that already "
                   "has a value; align it with its siblings, or drop that value so it can hold "
                   "keys)"
                 : " (likely the indentation, or a second \": \" on one line: align keys with "
                   "their siblings, and quote a value that holds \": \")";
    return out;
  }

  static bool line_has_flow_interpolation(const fs::path &path, int line) {
    std::ifstream in(path);
    std::string text;
    for (int i = 0; i <= line && std::getline(in, text); ++i) {
    }
    return text.find("${") != std::string::npos &&
           (text.find('{') != text.find("${") + 1 || text.find('[') != std::string::npos);
  }

  // ---- generic readers ----

  Fields fields(const YAML::Node &node, const YAML::Mark &key_mark, const Ctx &ctx,
                const std::vector<std::string> &allowed) {
    Fields f;
    f.mark = key_mark;
    f.ctx = ctx;
    if (!node.IsDefined() || node.IsNull()) {
      f.ok = true;
      return f;
    }
    if (!node.IsMap()) {
      problem(detail::mark_of(node, key_mark),
              ctx.name() + " must be a mapping" + got(Entry{YAML::Node(), node, ctx}));
      return f;
    }
    f.ok = true;
    for (const auto &item : node) {
      if (!item.first.IsScalar()) {
        problem(detail::mark_of(item.first, key_mark), "keys must be plain strings " + ctx.in());
        continue;
      }
      const std::string &key = item.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        problem(item.first.Mark(),
                "unknown key " + q(key) + " " + ctx.in() + detail::did_you_mean(key, allowed));
        continue;
      }
      if (auto *first = f.get(key)) {
        problem(item.first.Mark(), "key " + q(key) + " appears twice " + ctx.in() + " (first at " +
                                       location(file_, first->key_mark()).file + ":" +
                                       std::to_string(first->key_mark().line + 1) + ":" +
                                       std::to_string(first->key_mark().column + 1) + ")");
        continue;
      }
      f.entries.emplace(key, Entry{item.first, item.second, ctx.child(key)});
    }
    return f;
  }

  bool require(const Fields &f, std::string_view key) {
    if (!f.ok || f.get(key)) return f.ok;
    problem(f.mark, f.ctx.name() + " is missing the required key " + q(key));
    return false;
  }

  std::optional<Scalar> scalar(const Entry &e, std::string_view expected) {
    if (!e.value.IsScalar()) {
      problem(e.value_mark(), e.ctx.name() + " must be " + std::string(expected) + got(e));
      return std::nullopt;
    }
    std::vector<std::string> errors;
    auto value = detail::interpolate(e.value.Scalar(), base_dir_, errors);
    for (auto &error : errors) problem(e.value_mark(), e.ctx.name() + ": " + error);
    if (!value) return std::nullopt;
    if (value->substituted) remember_substituted(value->text, e.value.Scalar());
    return Scalar{value->text, detail::is_plain(e.value), value->substituted, e.value.Scalar()};
  }

  // A non-empty string, with how problems may name it (names, paths, references).
  std::optional<Scalar> name_value(const Entry &e) {
    auto s = scalar(e, "a string");
    if (!s) return std::nullopt;
    if (s->text.empty()) {
      problem(e.value_mark(), e.ctx.name() + " must not be empty");
      return std::nullopt;
    }
    return s;
  }

  std::optional<std::string> string_value(const Entry &e, bool allow_empty = false) {
    auto s = scalar(e, "a string");
    if (!s) return std::nullopt;
    if (s->text.empty() && !allow_empty) {
      problem(e.value_mark(), e.ctx.name() + " must not be empty");
      return std::nullopt;
    }
    return s->text;
  }

  std::optional<uint32_t> uint_value(const Entry &e, uint32_t min, uint32_t max) {
    const std::string expected =
        "an integer from " + std::to_string(min) + " to " + std::to_string(max);
    auto s = scalar(e, expected);
    if (!s) return std::nullopt;
    const bool digits =
        !s->text.empty() && s->text.size() <= 10 &&
        std::all_of(s->text.begin(), s->text.end(), [](char c) { return c >= '0' && c <= '9'; });
    const uint64_t value = digits ? std::stoull(s->text) : 0;
    if (!digits || !s->plain || value < min || value > max) {
      problem(e.value_mark(), e.ctx.name() + " must be " + expected + got(e, &*s));
      return std::nullopt;
    }
    return static_cast<uint32_t>(value);
  }

  std::optional<bool> bool_value(const Entry &e) {
    auto s = scalar(e, "true or false");
    if (!s) return std::nullopt;
    if (s->plain && (s->text == "true" || s->text == "True" || s->text == "TRUE")) return true;
    if (s->plain && (s->text == "false" || s->text == "False" || s->text == "FALSE")) return false;
    problem(e.value_mark(), e.ctx.name() + " must be true or false" + got(e, &*s));
    return std::nullopt;
  }

  std::optional<Duration> duration_value(const Entry &e, Duration min = Duration{0}) {
    const std::string expected = "a duration such as 500ms, 30s, 15m, 2h, 7d or 1m30s";
    auto s = scalar(e, expected);
    if (!s) return std::nullopt;
    auto d = parse_duration(s->text);
    if (!d) {
      problem(e.value_mark(), e.ctx.name() + " must be " + expected + got(e, &*s));
      return std::nullopt;
    }
    if (*d < min) {
      problem(e.value_mark(), e.ctx.name() + " must be at least " + format_duration(min));
      return std::nullopt;
    }
    return d;
  }

  std::optional<std::string> enum_value(const Entry &e, const std::vector<std::string> &allowed) {
    const std::string expected = "one of " + detail::join(allowed);
    auto s = scalar(e, expected);
    if (!s) return std::nullopt;
    if (std::find(allowed.begin(), allowed.end(), s->text) != allowed.end()) return s->text;
    problem(e.value_mark(), e.ctx.name() + " must be " + expected + got(e, &*s) +
                                (s->substituted ? "" : detail::did_you_mean(s->text, allowed)));
    return std::nullopt;
  }

  std::optional<std::string> json_value(const YAML::Node &node) {
    rapidjson::Document doc;
    detail::Substitutions substitutions;
    const bool ok = detail::yaml_to_json(
        node, base_dir_, doc, doc.GetAllocator(),
        [&](const YAML::Mark &mark, std::string message) { problem(mark, std::move(message)); },
        &substitutions);
    for (const auto &[value, written] : substitutions) remember_substituted(value, written);
    if (!ok) return std::nullopt;
    return json::to_string(doc);
  }

  // ---- the top level ----

  void top_level(const YAML::Node &root) {
    if (root.IsNull()) return;
    if (!root.IsMap()) {
      problem(root.Mark(),
              "a configuration file must be a mapping of settings such as store, connections and "
              "pipelines");
      return;
    }
    for (const auto &item : root) {
      if (!item.first.IsScalar()) {
        problem(detail::mark_of(item.first, root.Mark()), "keys must be plain strings");
        continue;
      }
      const std::string &key = item.first.Scalar();
      const Entry e{item.first, item.second, Ctx{}.child(key)};
      if (std::find(kTopKeys.begin(), kTopKeys.end(), key) == kTopKeys.end()) {
        std::string hint = detail::did_you_mean(key, kTopKeys);
        if (key == "log_level" || key == "log_format")
          hint = " (write log: { level: ..., format: ... })";
        problem(item.first.Mark(), "unknown key " + q(key) + " at the top level" + hint);
        continue;
      }
      if (key == "connections") {
        connections(e);
        continue;
      }
      if (key == "pipelines") {
        pipelines(e);
        continue;
      }
      auto [seen, fresh] = top_seen_.emplace(key, location(file_, item.first.Mark()));
      if (!fresh) {
        problem(item.first.Mark(), q(key) + " is already set at " + seen->second.file + ":" +
                                       std::to_string(seen->second.line) + ":" +
                                       std::to_string(seen->second.column));
        continue;
      }
      host_setting(key, e);
    }
  }

  void host_setting(const std::string &key, const Entry &e) {
    if (key == "store") {
      if (auto s = string_value(e)) {
        std::string lower = *s;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (lower.rfind("sqlite://", 0) != 0 && lower.rfind("postgresql://", 0) != 0 &&
            lower.rfind("postgres://", 0) != 0)  // the URI may hold a password: never echo it
          problem(e.value_mark(),
                  "store must be a sqlite:///path/state.db or postgresql://user@host/db URI");
        else if (lower.rfind("sqlite://", 0) != 0 && uri_has_password(e.value.Scalar())) {
          note_inline_secret(e.value, "the password in store");
          config_.store = *s;
        } else if (lower.rfind("sqlite://", 0) == 0 && s->size() > 9 && (*s)[9] != '/')
          // A relative SQLite path is the config file's neighbour, as plugin_dir and ${file:}
          // are, not the working directory's (which differs under systemd).
          config_.store = "sqlite://" + (base_dir_ / s->substr(9)).lexically_normal().string();
        else
          config_.store = *s;
      }
    } else if (key == "listen") {
      listen(e);
    } else if (key == "allow_inline_secrets") {
      if (auto b = bool_value(e)) config_.allow_inline_secrets = *b;
    } else if (key == "admin_token") {
      note_inline_secret(e.value, "admin_token");
      if (auto s = string_value(e, true)) {
        if (!s->empty() && s->size() < 16)
          problem(e.value_mark(), "admin_token must be at least 16 characters long");
        else
          config_.admin_token = *s;
      }
    } else if (key == "metrics_token") {
      note_inline_secret(e.value, "metrics_token");
      if (auto s = string_value(e, true)) {
        if (!s->empty() && s->size() < 16)
          problem(e.value_mark(), "metrics_token must be at least 16 characters long");
        else
          config_.metrics_token = *s;
      }
    } else if (key == "tls") {
      auto f = fields(e.value, e.key_mark(), e.ctx, {"cert", "key"});
      const bool has_cert = require(f, "cert"), has_key = require(f, "key");
      Config::Tls tls;
      bool ok = has_cert && has_key;
      for (const auto &[name, target] :
           {std::pair<const char *, std::string *>{"cert", &tls.certificate}, {"key", &tls.key}}) {
        const auto *v = f.get(name);
        if (!v) continue;
        auto s = name_value(*v);
        if (!s) {
          ok = false;
          continue;
        }
        const fs::path file(s->text);
        *target = file.is_absolute() ? s->text : (base_dir_ / file).lexically_normal().string();
        std::error_code ec;
        if (!fs::is_regular_file(*target, ec)) {
          problem(v->value_mark(), std::string("tls.") + name + ": no such file " +
                                       (s->substituted ? "as " + s->shown() : *target));
          ok = false;
        }
      }
      if (ok) config_.tls = tls;
    } else if (key == "plugin_dir") {
      if (auto s = string_value(e)) {
        const fs::path dir(*s);
        config_.plugin_dir = dir.is_absolute() ? *s : (base_dir_ / dir).lexically_normal().string();
      }
    } else if (key == "log") {
      auto f = fields(e.value, e.key_mark(), e.ctx, {"format", "level"});
      if (auto *v = f.get("format"))
        if (auto s = enum_value(*v, kLogFormats)) config_.log_format = *s;
      if (auto *v = f.get("level"))
        if (auto s = enum_value(*v, kLogLevels)) config_.log_level = *s;
    } else if (key == "workers") {
      auto f = fields(e.value, e.key_mark(), e.ctx, {"io", "plugin"});
      if (auto *v = f.get("io"))
        if (auto n = uint_value(*v, 1, 64)) config_.io_threads = *n;
      if (auto *v = f.get("plugin"))
        if (auto n = uint_value(*v, 1, 256)) config_.plugin_workers = *n;
    } else if (key == "shutdown_grace") {
      if (auto d = duration_value(e)) config_.shutdown_grace = *d;
    } else if (key == "claim_lease") {
      if (auto d = duration_value(e, std::chrono::seconds(1))) config_.claim_lease = *d;
    } else if (key == "retention") {
      if (auto d = duration_value(e, std::chrono::hours(1))) config_.retention = *d;
    } else if (key == "max_body") {
      const std::string expected = "a size from 1KiB to 1GiB such as 512KiB or 1MiB";
      if (auto s = scalar(e, expected)) {
        auto size = parse_size(s->text);
        if (!size || *size < 1024 || *size > (1ULL << 30))
          problem(e.value_mark(), "max_body must be " + expected + got(e, &*s));
        else
          config_.max_body = *size;
      }
    } else if (key == "max_connections_per_client") {
      if (auto n = uint_value(e, 0, 1'000'000)) config_.max_connections_per_client = *n;
    }
  }

  void listen(const Entry &e) {
    std::vector<Entry> items;
    if (e.value.IsSequence()) {
      for (const auto &item : e.value) items.push_back(Entry{e.key, item, e.ctx});
      if (items.empty()) problem(e.value_mark(), "listen must name at least one address");
    } else {
      items.push_back(e);
    }
    std::vector<std::string> addresses;
    for (const auto &item : items) {
      auto s = scalar(item, "a host:port address or a list of them");
      if (!s) continue;
      const size_t colon = s->text.rfind(':');
      const std::string host = colon == std::string::npos ? "" : s->text.substr(0, colon);
      const std::string port = colon == std::string::npos ? "" : s->text.substr(colon + 1);
      const bool port_ok =
          !port.empty() && port.size() <= 5 &&
          std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
          std::stoi(port) >= 1 && std::stoi(port) <= 65535;
      const bool host_ok = !host.empty() && host.find_first_of(" /") == std::string::npos &&
                           (host.front() != '[' || host.back() == ']');
      if (!port_ok || !host_ok) {
        problem(item.value_mark(),
                "listen address " + (s->substituted ? std::string("") : q(s->text) + " ") +
                    "must be host:port, e.g. 0.0.0.0:8080 or [::1]:8080, with a port from 1 to "
                    "65535");
        continue;
      }
      if (std::find(addresses.begin(), addresses.end(), s->text) != addresses.end()) {
        problem(item.value_mark(), "listen address " + s->shown() + " is listed twice");
        continue;
      }
      addresses.push_back(s->text);
    }
    if (!addresses.empty()) config_.listen = addresses;
  }

  // ---- connections ----

  void connections(const Entry &e) {
    if (e.value.IsNull()) return;
    if (!e.value.IsMap()) {
      problem(e.value_mark(),
              "connections must be a mapping of connection names to connections" + got(e));
      return;
    }
    for (const auto &item : e.value) {
      if (!item.first.IsScalar()) {
        problem(detail::mark_of(item.first, e.key_mark()), "connection names must be strings");
        continue;
      }
      const std::string &name = item.first.Scalar();
      if (!valid_name(name)) {
        problem(item.first.Mark(),
                "connection name " + q(name) + " must be 1 to 64 letters, digits, \"-\" or \"_\"");
        continue;
      }
      if (auto it = config_.connections.find(name); it != config_.connections.end()) {
        problem(item.first.Mark(),
                "connection " + q(name) + " is already defined at " + format(it->second.where));
        continue;
      }
      connection(name, item.first, item.second);
    }
  }

  void connection(const std::string &name, const YAML::Node &key, const YAML::Node &value) {
    ConnectionConfig c;
    c.name = name;
    c.where = location(file_, key.Mark());
    ConnectionExtra extra;
    extra.file = file_;
    extra.settings_mark = key.Mark();
    const Ctx ctx{"connection " + q(name), ""};
    auto f = fields(value, key.Mark(), ctx, {"plugin", "settings", "rate_limit"});
    if (require(f, "plugin")) {
      const Entry &e = *f.get("plugin");
      extra.plugin_at = location(file_, e.value_mark());
      if (auto s = name_value(e)) {
        c.plugin = s->text;
        extra.plugin_shown = s->shown();
        extra.plugin_substituted = s->substituted;
      }
    }
    extra.settings_ok = f.ok;
    if (auto *e = f.get("settings")) {
      find_inline_secrets(e->value, "connections." + name + ".settings");
      extra.settings.reset(e->value);
      extra.settings_mark = e->key_mark();
      if (!e->value.IsMap() && !e->value.IsNull()) {
        problem(e->value_mark(), e->ctx.name() + " must be a mapping" + got(*e));
        extra.settings_ok = false;
      } else if (auto json = json_value(e->value)) {
        c.settings_json = e->value.IsNull() ? "{}" : *json;
      } else {
        extra.settings_ok = false;
      }
    }
    if (auto *e = f.get("rate_limit")) {
      auto r = fields(e->value, e->key_mark(), e->ctx, {"requests", "per", "burst"});
      const bool has_requests = require(r, "requests"), has_per = require(r, "per");
      if (r.ok && has_requests && has_per) {
        auto requests = uint_value(*r.get("requests"), 1, 1'000'000);
        auto per = duration_value(*r.get("per"), Duration{1});
        std::optional<uint32_t> burst = 0;
        if (auto *b = r.get("burst")) burst = uint_value(*b, 1, 1'000'000);
        if (requests && per && burst) c.rate_limit = RateLimit{*requests, *per, *burst};
      }
    }
    connection_extra_[name] = std::move(extra);
    config_.connections[name] = std::move(c);
  }

  // ---- pipelines ----

  void pipelines(const Entry &e) {
    if (e.value.IsNull()) return;
    if (!e.value.IsMap()) {
      problem(e.value_mark(),
              "pipelines must be a mapping of pipeline names to pipelines" + got(e));
      return;
    }
    for (const auto &item : e.value) {
      if (!item.first.IsScalar()) {
        problem(detail::mark_of(item.first, e.key_mark()), "pipeline names must be strings");
        continue;
      }
      const std::string &name = item.first.Scalar();
      if (!valid_name(name)) {
        problem(item.first.Mark(),
                "pipeline name " + q(name) + " must be 1 to 64 letters, digits, \"-\" or \"_\"");
        continue;
      }
      if (auto it = config_.pipelines.find(name); it != config_.pipelines.end()) {
        problem(item.first.Mark(),
                "pipeline " + q(name) + " is already defined at " + format(it->second.where));
        continue;
      }
      pipeline(name, item.first, item.second);
    }
  }

  std::optional<Ref> reference(const Fields &f, std::string &connection) {
    if (!require(f, "connection")) return std::nullopt;
    const Entry &e = *f.get("connection");
    auto s = name_value(e);
    if (!s) return std::nullopt;
    connection = s->text;
    Ref ref;
    ref.connection = s->text;
    ref.connection_shown = s->shown();
    ref.connection_substituted = s->substituted;
    ref.connection_at = location(file_, e.value_mark());
    return ref;
  }

  void pipeline(const std::string &name, const YAML::Node &key, const YAML::Node &value) {
    PipelineConfig p;
    PipelineExtra extra;
    p.name = name;
    p.where = location(file_, key.Mark());
    const Ctx ctx{"pipeline " + q(name), ""};
    auto f =
        fields(value, key.Mark(), ctx, {"enabled", "source", "map", "sink", "retry", "batch_size"});
    require(f, "source");
    require(f, "sink");
    if (auto *e = f.get("enabled"))
      if (auto b = bool_value(*e)) p.enabled = *b;
    if (auto *e = f.get("source")) source(*e, p, extra);
    if (auto *e = f.get("map")) map(*e, p, extra);
    if (auto *e = f.get("sink")) sink(*e, p, extra);
    if (auto *e = f.get("retry")) retry(*e, p);
    if (auto *e = f.get("batch_size"))
      if (auto n = uint_value(*e, 1, 10'000)) p.batch_size = *n;
    pipeline_extra_[name] = std::move(extra);
    config_.pipelines[name] = std::move(p);
  }

  void source(const Entry &e, PipelineConfig &p, PipelineExtra &extra) {
    auto f = fields(e.value, e.key_mark(), e.ctx, {"webhook", "poll"});
    if (!f.ok) return;
    if (!f.get("webhook") && !f.get("poll"))
      problem(e.key_mark(), e.ctx.name() + " needs a webhook, a poll, or both");
    if (auto *w = f.get("webhook")) {
      WebhookSource webhook;
      webhook.where = location(file_, w->key_mark());
      auto wf = fields(w->value, w->key_mark(), w->ctx, {"connection", "path", "object"});
      extra.webhook = reference(wf, webhook.connection);
      if (auto *oe = wf.get("object"))
        if (auto s = string_value(*oe)) webhook.object = *s;
      if (require(wf, "path")) {
        const Entry &pe = *wf.get("path");
        if (auto path_value = name_value(pe)) {
          const std::string *s = &path_value->text;
          const bool ok =
              s->size() > 1 && s->front() == '/' && std::all_of(s->begin(), s->end(), [](char c) {
                return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '-' ||
                       c == '_' || c == '.' || c == '~';
              });
          if (!ok) {
            problem(pe.value_mark(), pe.ctx.name() +
                                         " must start with \"/\" and hold only letters, digits "
                                         "and / - _ . ~" +
                                         got(pe, &*path_value));
          } else {
            webhook.path = *s;
            extra.path_shown = path_value->shown();
            extra.path_at = location(file_, pe.value_mark());
            extra.normalized_path = *s;
            while (extra.normalized_path.size() > 1 && extra.normalized_path.back() == '/')
              extra.normalized_path.pop_back();
          }
        }
      }
      p.webhook = webhook;
    }
    if (auto *pl = f.get("poll")) {
      PollSource poll;
      poll.where = location(file_, pl->key_mark());
      auto pf = fields(pl->value, pl->key_mark(), pl->ctx,
                       {"connection", "object", "every", "jitter", "page_size"});
      extra.poll = reference(pf, poll.connection);
      if (require(pf, "object"))
        if (auto s = name_value(*pf.get("object"))) {
          poll.object = s->text;
          if (extra.poll) {
            extra.poll->object_at = location(file_, pf.get("object")->value_mark());
            extra.poll->object_shown = s->shown();
          }
        }
      if (auto *v = pf.get("every"))
        if (auto d = duration_value(*v, std::chrono::seconds(1))) poll.every = *d;
      poll.jitter = poll.every / 10;
      if (auto *v = pf.get("jitter")) {
        if (auto d = duration_value(*v)) {
          if (*d >= poll.every)
            problem(v->value_mark(), v->ctx.name() + " must be shorter than every (" +
                                         format_duration(poll.every) + ")");
          else
            poll.jitter = *d;
        }
      }
      if (auto *v = pf.get("page_size"))
        if (auto n = uint_value(*v, 1, 10'000)) poll.page_size = *n;
      p.poll = poll;
    }
  }

  void map(const Entry &e, PipelineConfig &p, PipelineExtra &extra) {
    p.map.where = location(file_, e.key_mark());
    extra.map_file = file_;
    extra.map_base_dir = base_dir_;
    const size_t before = problems_.size();
    auto f = fields(e.value, e.key_mark(), e.ctx,
                    {"preset", "copy_unmapped", "default_country", "fields"});
    if (auto *v = f.get("preset")) {
      extra.preset_mark = v->value_mark();
      if (auto s = name_value(*v)) {
        p.map.preset = s->text;
        extra.preset_shown = s->substituted ? s->shown() : "";
      }
    }
    if (auto *v = f.get("copy_unmapped"))
      if (auto b = bool_value(*v)) p.map.copy_unmapped = *b;
    if (auto *v = f.get("default_country"))
      if (auto s = string_value(*v)) p.map.default_country = *s;
    if (auto *v = f.get("fields")) {
      if (!v->value.IsMap() && !v->value.IsNull())
        problem(v->value_mark(), v->ctx.name() + " must be a mapping of target fields" + got(*v));
      else if (auto json = json_value(v->value))
        p.map.fields_json = v->value.IsNull() ? "{}" : *json;
      if (v->value.IsMap()) extra.map_fields.reset(v->value);
    }
    extra.map_ok = problems_.size() == before;
  }

  // Where presets are looked up: <plugin_dir>/presets, then presets/ beside each loaded plugin.
  std::vector<std::string> preset_dirs() const {
    std::vector<std::string> dirs;
    if (!config_.plugin_dir.empty())
      dirs.push_back((fs::path(config_.plugin_dir) / "presets").string());
    if (registry_)
      for (const auto &plugin : registry_->plugins()) {
        auto dir = (plugin->info().path.parent_path() / "presets").string();
        if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(dir);
      }
    return dirs;
  }

  // The YAML node a rule problem points at: below `fields`, key by key and index by index.
  static YAML::Mark rule_mark(YAML::Node node, const YAML::Mark &fallback,
                              const mapping::CompileProblem &p) {
    YAML::Mark mark = fallback;
    const bool about_key = p.message.starts_with("unknown rule setting") ||
                           p.message.starts_with("unknown picklist setting") ||
                           p.message.starts_with("a target field");
    for (size_t i = 0; i < p.path.size(); ++i) {
      const std::string &seg = p.path[i];
      YAML::Node next;
      YAML::Mark key_mark = mark;
      if (node.IsMap()) {
        for (auto it = node.begin(); it != node.end(); ++it)
          if (it->first.IsScalar() && it->first.Scalar() == seg) {
            next.reset(it->second);
            key_mark = it->first.Mark();
          }
        // picklist short form vs. `values:`: the path may skip a level that is not there.
      } else if (node.IsSequence()) {
        const size_t index = std::strtoul(seg.c_str(), nullptr, 10);
        if (index < node.size()) {
          next.reset(node[index]);
          key_mark = next.Mark();
        }
      }
      if (!next.IsDefined()) return mark;
      if (about_key && i + 1 == p.path.size()) return key_mark;
      mark = detail::mark_of(next, key_mark);
      node.reset(next);
    }
    return mark;
  }

  // Resolves each pipeline's preset (overlaid by its fields) and compiles the rules with the
  // mapping stage, so an unknown transform or a bad rule is reported where it is written.
  void check_maps() {
    const std::string saved_file = file_;
    for (auto &[name, p] : config_.pipelines) {
      auto &extra = pipeline_extra_[name];
      if (!extra.map_ok) continue;
      YAML::Node preset_fields;
      std::string preset_file;
      // Presets live beside the plugins, so they are resolved only when the plugins are loaded.
      if (!p.map.preset.empty() && registry_) {
        file_ = extra.map_file;
        const auto dirs = preset_dirs();
        std::string preset = p.map.preset;
        if (preset.find('/') == std::string::npos) {  // "contact": the source plugin's preset
          const std::string &source =
              p.poll ? p.poll->connection : (p.webhook ? p.webhook->connection : "");
          auto c = config_.connections.find(source);
          if (c != config_.connections.end()) preset = c->second.plugin + "/" + preset;
        }
        auto found = mapping::find_preset(preset, dirs);
        if (!found) {
          problem(extra.preset_mark,
                  "no preset " + (extra.preset_shown.empty() ? q(preset) : extra.preset_shown) +
                      "; a preset is named <plugin>/<name> and read from <dir>/<plugin>/<name>.yaml"
                      " in " +
                      (dirs.empty() ? std::string("<plugin_dir>/presets") : detail::join(dirs)));
          continue;
        }
        preset_file = *found;
        file_ = preset_file;
        YAML::Node root;
        try {
          root = YAML::LoadFile(preset_file);
        } catch (const YAML::Exception &ex) {
          problem(ex.mark, "the preset is not valid YAML: " + ex.msg);
          continue;
        }
        if (!root.IsMap() || !root["fields"] || !root["fields"].IsMap()) {
          problem(root.Mark(), "a preset must hold a `fields:` mapping of target fields to rules");
          continue;
        }
        preset_fields.reset(root["fields"]);
        rapidjson::Document doc;
        const size_t before = problems_.size();
        detail::yaml_to_json(preset_fields, fs::path(preset_file).parent_path(), doc,
                             doc.GetAllocator(), [&](const YAML::Mark &mark, std::string message) {
                               problem(mark, std::move(message));
                             });
        if (problems_.size() != before) continue;
        p.map.fields_json = mapping::merge_fields(json::to_string(doc), p.map.fields_json);
      }
      mapping::Options options;
      options.copy_unmapped = p.map.copy_unmapped;
      options.default_country = p.map.default_country;
      std::vector<mapping::CompileProblem> rule_problems;
      (void)mapping::Mapping::compile(p.map.fields_json, options, rule_problems);
      for (const auto &rp : rule_problems) {
        const YAML::Node &written = extra.map_fields;
        const bool in_pipeline =
            written.IsDefined() && !rp.path.empty() && written[rp.path[0]].IsDefined();
        if (in_pipeline || preset_file.empty()) {
          file_ = extra.map_file;
          problem(extra.map_fields.IsDefined()
                      ? rule_mark(extra.map_fields, extra.map_fields.Mark(), rp)
                      : YAML::Mark(),
                  "map.fields." + detail::join(rp.path, ".") + ": " + rp.message);
        } else {
          file_ = preset_file;
          problem(rule_mark(preset_fields, preset_fields.Mark(), rp),
                  "preset " + q(p.map.preset) + " fields." + detail::join(rp.path, ".") + ": " +
                      rp.message);
        }
      }
    }
    file_ = saved_file;
  }

  void sink(const Entry &e, PipelineConfig &p, PipelineExtra &extra) {
    auto f = fields(e.value, e.key_mark(), e.ctx, {"push"});
    if (!require(f, "push")) return;
    const Entry &pe = *f.get("push");
    p.sink.where = location(file_, pe.key_mark());
    auto pf = fields(pe.value, pe.key_mark(), pe.ctx,
                     {"connection", "object", "mode", "match_on", "match_normalize", "conflict",
                      "conflict_fields", "on_delete"});
    extra.push = reference(pf, p.sink.connection);
    if (require(pf, "object"))
      if (auto s = name_value(*pf.get("object"))) {
        p.sink.object = s->text;
        if (extra.push) {
          extra.push->object_at = location(file_, pf.get("object")->value_mark());
          extra.push->object_shown = s->shown();
        }
      }
    if (auto *v = pf.get("mode"))
      if (auto s = enum_value(*v, kPushModes)) {
        p.sink.mode = *parse_push_mode(*s);
        extra.mode_at = location(file_, v->value_mark());
      }
    if (auto *v = pf.get("match_on"))
      if (auto s = string_value(*v)) p.sink.match_on = *s;
    if (auto *v = pf.get("match_normalize")) match_normalize(*v, p.sink);
    if (auto *v = pf.get("on_delete")) {
      if (auto s = enum_value(*v, kDeletePolicies)) p.sink.on_delete = *parse_delete_policy(*s);
      extra.on_delete_at = location(file_, v->value_mark());
    }
    if (auto *v = pf.get("conflict_fields")) conflict_fields(*v, p.sink);
    if (auto *v = pf.get("conflict")) {
      if (auto s = enum_value(*v, kConflicts)) p.sink.conflict = *parse_conflict_policy(*s);
      extra.conflict_at = location(file_, v->value_mark());
    } else if (p.sink.object == "deal") {
      p.sink.conflict =
          ConflictPolicy::fill_empty;  // deals: the conservative merge unless told otherwise
    }
  }

  // A list of steps (trim, lower); an empty list or `none` compares keys exactly.
  void match_normalize(const Entry &e, PushSink &sink) {
    std::vector<Entry> items;
    if (e.value.IsSequence()) {
      for (const auto &item : e.value) items.push_back(Entry{e.key, item, e.ctx});
    } else if (e.value.IsScalar() && e.value.Scalar() == "none") {
      sink.match_normalize.clear();
      return;
    } else {
      problem(e.value_mark(), e.ctx.name() + " must be a list of trim and lower, or none" +
                                  (e.value.IsMap() ? ", not a mapping" : ""));
      return;
    }
    std::vector<std::string> steps;
    for (const auto &item : items)
      if (auto s = enum_value(item, kKeySteps))
        if (std::find(steps.begin(), steps.end(), *s) == steps.end()) steps.push_back(*s);
    sink.match_normalize = steps;
  }

  // Target field -> conflict policy, for the fields that differ when two records first link.
  void conflict_fields(const Entry &e, PushSink &sink) {
    if (!e.value.IsMap()) {
      problem(e.value_mark(), e.ctx.name() + " must map target field names to conflict policies");
      return;
    }
    for (const auto &item : e.value) {
      if (!item.first.IsScalar()) continue;
      const Entry field{item.first, item.second, e.ctx.child(item.first.Scalar())};
      if (auto s = enum_value(field, kConflicts)) {
        const auto policy = *parse_conflict_policy(*s);
        if (policy == ConflictPolicy::fill_empty) {
          problem(field.value_mark(), field.ctx.name() +
                                          " must be source_wins, target_wins or newest_wins "
                                          "(fill_empty applies to whole records)");
          continue;
        }
        sink.conflict_fields[item.first.Scalar()] = policy;
      }
    }
  }

  void retry(const Entry &e, PipelineConfig &p) {
    auto f = fields(e.value, e.key_mark(), e.ctx, {"attempts", "backoff"});
    if (auto *v = f.get("attempts"))
      if (auto n = uint_value(*v, 1, 100)) p.retry.attempts = *n;
    if (auto *v = f.get("backoff")) {
      const std::string expected = "a range such as 1s..5m (or one duration such as 30s)";
      auto s = scalar(*v, expected);
      if (!s) return;
      const size_t dots = s->text.find("..");
      auto low = parse_duration(s->text.substr(0, dots));
      auto high = dots == std::string::npos ? low : parse_duration(s->text.substr(dots + 2));
      if (!low || !high || low->count() == 0) {
        problem(v->value_mark(), v->ctx.name() + " must be " + expected + got(*v, &*s));
      } else if (*low > *high) {
        problem(v->value_mark(), v->ctx.name() + " must not start above where it ends");
      } else {
        p.retry.backoff_min = *low;
        p.retry.backoff_max = *high;
      }
    }
  }

  // ---- across files ----

  static std::string format(const SourceLocation &where) {
    return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
  }

  std::vector<const PipelineConfig *> pipelines_in_file_order() const {
    std::vector<const PipelineConfig *> out;
    for (const auto &[name, p] : config_.pipelines) out.push_back(&p);
    std::stable_sort(out.begin(), out.end(), [&](const auto *a, const auto *b) {
      const int ra = rank(a->where.file), rb = rank(b->where.file);
      if (ra != rb) return ra < rb;
      return std::pair(a->where.line, a->where.column) < std::pair(b->where.line, b->where.column);
    });
    return out;
  }

  void cross_check() {
    std::vector<std::string> names;
    for (const auto &[name, c] : config_.connections) names.push_back(name);
    std::multimap<std::string, const PipelineConfig *> paths;
    for (const auto *p : pipelines_in_file_order()) {
      const auto &extra = pipeline_extra_.at(p->name);
      for (const auto *ref : {&extra.webhook, &extra.poll, &extra.push}) {
        if (!*ref || config_.connections.count((*ref)->connection)) continue;
        problem(
            (*ref)->connection_at,
            "pipeline " + q(p->name) + " names unknown connection " + (*ref)->connection_shown +
                ((*ref)->connection_substituted ? ""
                                                : detail::did_you_mean((*ref)->connection, names)));
      }
      if (extra.normalized_path.empty()) continue;
      // A path may serve several pipelines of one connection, each taking its own object.
      auto [first, last] = paths.equal_range(extra.normalized_path);
      for (auto it = first; it != last; ++it) {
        const PipelineConfig &other = *it->second;
        const std::string where = " (" + format(pipeline_extra_.at(other.name).path_at) + ")";
        if (other.webhook->connection != p->webhook->connection)
          problem(extra.path_at, "webhook path " + extra.path_shown +
                                     " is already used by pipeline " + q(other.name) +
                                     " of another connection" + where);
        else if (webhook_object(other) == webhook_object(*p))
          problem(extra.path_at, "webhook path " + extra.path_shown +
                                     " is already used by pipeline " + q(other.name) +
                                     " for the same object " + q(webhook_object(*p)) + where +
                                     "; set source.webhook.object to tell them apart");
      }
      paths.emplace(extra.normalized_path, p);
    }
  }

  // ---- plugins ----

  std::string unknown_plugin_hint(const std::string &id, bool suggest) const {
    std::vector<std::string> ids;
    for (const auto &plugin : registry_->plugins()) ids.push_back(plugin->id());
    std::string hint = suggest ? detail::did_you_mean(id, ids) : "";
    if (hint.empty())
      hint = ids.empty() ? " (no plugins are loaded: check plugin_dir)"
                         : " (loaded plugins: " + detail::join(ids) + ")";
    size_t refused_files = 0;
    for (const auto &refusal : registry_->refusals()) {
      if (refusal.missing_directory)
        hint += "; the plugin directory " + refusal.path.string() + " " + refusal.reason;
      else
        ++refused_files;
    }
    if (refused_files)
      hint += "; " + std::to_string(refused_files) +
              " plugin file(s) were refused, see `crmhost plugins`";
    return hint;
  }

  // A setting whose schema says "x-crmhost-needs-state": true (Odoo's reconcile interval, say)
  // makes the plugin keep state in the store, encrypted: without a key every such call fails at
  // run time, so validation says so now. An absent setting counts as its schema's "default" on
  // a connection that a pipeline polls (Odoo reconciles hourly unless told otherwise, while it
  // polls; a connection only pushed to or receiving webhooks keeps nothing).
  void needs_state_check(const std::string &name, const std::string &schema_json,
                         const rapidjson::Document &instance, const ConnectionExtra &extra) {
    if (const char *key = std::getenv("CRMHOST_SECRET_KEY"); key && *key) return;
    if (!instance.IsObject()) return;
    rapidjson::Document schema;
    if (json::try_parse(schema_json, schema, "settings schema") || !schema.IsObject()) return;
    const auto properties = schema.FindMember("properties");
    if (properties == schema.MemberEnd() || !properties->value.IsObject()) return;
    for (const auto &property : properties->value.GetObject()) {
      const auto flag = property.value.IsObject()
                            ? property.value.FindMember("x-crmhost-needs-state")
                            : property.value.MemberEnd();
      if (!property.value.IsObject() || flag == property.value.MemberEnd() || !flag->value.IsTrue())
        continue;
      const auto set = instance.FindMember(property.name);
      const auto fallback = property.value.FindMember("default");
      const bool absent = set == instance.MemberEnd();
      std::string poller;
      if (absent) {
        for (const auto *p : pipelines_in_file_order())
          if (p->poll && p->poll->connection == name) {
            poller = p->name;
            break;
          }
        if (fallback == property.value.MemberEnd() || poller.empty()) continue;
      }
      const rapidjson::Value &value = absent ? fallback->value : set->value;
      if (value.IsNull() || value.IsFalse() || (value.IsNumber() && value.GetDouble() == 0) ||
          (value.IsString() && value.GetStringLength() == 0))
        continue;
      const std::string setting = property.name.GetString();
      YAML::Mark mark = extra.settings_mark;
      if (extra.settings.IsMap() && extra.settings[setting])
        mark = detail::mark_of(extra.settings[setting], mark);
      problems_.push_back(
          {location(extra.file, mark),
           "settings." + setting + " of connection " + q(name) +
               (absent ? " (not set: its default is " + json::to_string(value) + ", and pipeline " +
                             q(poller) + " polls it)"
                       : "") +
               " makes the plugin keep state in the store, which is encrypted with "
               "CRMHOST_SECRET_KEY: it is not set (set it in the service's environment, e.g. "
               "/etc/crmhost/crmhost.env; `openssl rand -hex 32` makes one)"});
    }
  }

  void plugin_check() {
    for (const auto &[name, c] : config_.connections) {
      const auto &extra = connection_extra_.at(name);
      if (c.plugin.empty()) continue;
      auto plugin = registry_->find(c.plugin);
      if (!plugin) {
        problem(extra.plugin_at, "connection " + q(name) + " uses unknown plugin " +
                                     extra.plugin_shown +
                                     unknown_plugin_hint(c.plugin, !extra.plugin_substituted));
        continue;
      }
      if (!extra.settings_ok) continue;
      rapidjson::Document instance;
      instance.Parse(c.settings_json.c_str());
      const std::string file = extra.file;
      detail::check_settings_schema(
          plugin->description().settings_schema_json, instance, extra.settings, extra.settings_mark,
          "connection " + q(name), [&](const YAML::Mark &mark, std::string message) {
            problems_.push_back({location(file, mark), std::move(message)});
          });
      needs_state_check(name, plugin->description().settings_schema_json, instance, extra);
    }
    for (const auto *p : pipelines_in_file_order()) {
      const auto &extra = pipeline_extra_.at(p->name);
      capability(*p, extra.webhook, "webhook", "receives webhooks from", "");
      capability(*p, extra.poll, "poll", "polls", p->poll ? p->poll->object : "");
      if (auto *d = capability(*p, extra.push, "push", "pushes to", p->sink.object)) {
        if (!d->push_modes.empty() && !extra.mode_at.file.empty() &&
            std::find(d->push_modes.begin(), d->push_modes.end(), to_string(p->sink.mode)) ==
                d->push_modes.end())
          problem(extra.mode_at, "plugin " + q(d->name) + " of connection " +
                                     q(p->sink.connection) + " does not support push mode " +
                                     q(to_string(p->sink.mode)) + " (it supports " +
                                     detail::join(d->push_modes) + ")");
        for (const auto &step :
             p->sink.match_on ? p->sink.match_normalize : std::vector<std::string>{})
          if (std::find(d->match_normalize.begin(), d->match_normalize.end(), step) ==
              d->match_normalize.end()) {
            plugin_warnings_.push_back(
                {p->sink.where, "pipeline " + q(p->name) + ": plugin " + q(d->name) +
                                    " does not declare match_normalize " + q(step) +
                                    ", so its lookups may miss keys that differ only in " +
                                    (step == "lower" ? "case" : "surrounding spaces") +
                                    " and create duplicates"});
            break;
          }
        if (p->sink.on_delete == DeletePolicy::archive &&
            std::find(d->push_modes.begin(), d->push_modes.end(), "archive") == d->push_modes.end())
          problem(extra.on_delete_at,
                  "plugin " + q(d->name) + " of connection " + q(p->sink.connection) +
                      " cannot archive (its push modes are " + detail::join(d->push_modes) +
                      "); choose on_delete keep_edited or propagate");
        if (p->sink.conflict == ConflictPolicy::fill_empty && !d->has_capability("fetch"))
          problem(extra.conflict_at.file.empty() ? extra.push->connection_at : extra.conflict_at,
                  "pipeline " + q(p->name) + " uses conflict fill_empty" +
                      (extra.conflict_at.file.empty() ? " (the default for deals)" : "") +
                      ", which reads the target records, but plugin " +
                      q(config_.connections.at(p->sink.connection).plugin) + " of connection " +
                      q(p->sink.connection) +
                      " lacks the \"fetch\" capability; choose another conflict policy");
      }
    }
  }

  // Checks one end of a pipeline; returns the plugin's description when it may be checked further.
  const plugins::PluginDescription *capability(const PipelineConfig &p,
                                               const std::optional<Ref> &ref,
                                               const std::string &needed, const std::string &verb,
                                               const std::string &object) {
    if (!ref) return nullptr;
    auto c = config_.connections.find(ref->connection);
    if (c == config_.connections.end() || c->second.plugin.empty()) return nullptr;
    auto plugin = registry_->find(c->second.plugin);
    if (!plugin) return nullptr;
    const auto &d = plugin->description();
    if (!d.has_capability(needed)) {
      problem(ref->connection_at, "pipeline " + q(p.name) + " " + verb + " connection " +
                                      q(ref->connection) + ", but its plugin " + q(plugin->id()) +
                                      " lacks the " + q(needed) + " capability");
      return nullptr;
    }
    if (!object.empty() && !ref->object_at.file.empty() && !d.has_object(object)) {
      std::vector<std::string> objects;
      for (const auto &o : d.objects) objects.push_back(o.name);
      problem(ref->object_at, "plugin " + q(plugin->id()) + " of connection " + q(ref->connection) +
                                  " has no object " + ref->object_shown + " (it has " +
                                  detail::join(objects) + ")");
    }
    return &d;
  }

  const plugins::PluginRegistry *registry_;
  Config config_;
  std::vector<Problem> problems_;
  std::vector<Problem> inline_secrets_;
  std::vector<std::string> files_;
  std::string file_;
  fs::path base_dir_;
  std::map<std::string, SourceLocation> top_seen_;
  std::map<std::string, ConnectionExtra> connection_extra_;
  std::map<std::string, PipelineExtra> pipeline_extra_;
  std::vector<std::pair<std::string, std::string>> substituted_;  // value, as written
};

}  // namespace

LoadResult load(const std::vector<std::filesystem::path> &paths,
                const plugins::PluginRegistry *registry, LoadOptions options) {
  detail::UnsetVariablesEmpty lenient(options.unset_variables_empty);
  return Loader(registry).run(paths);
}

std::string plugin_dir_of(const std::vector<std::filesystem::path> &paths) {
  std::vector<fs::path> files;
  for (const auto &path : paths) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      for (const auto &item : fs::directory_iterator(path, ec))
        if (item.path().extension() == ".yaml" || item.path().extension() == ".yml")
          files.push_back(item.path());
    } else {
      files.push_back(path);
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto &file : files) {
    std::error_code ec;
    if (const auto size = fs::file_size(file, ec); ec || size > detail::kMaxConfigFileBytes)
      continue;  // load() reports it
    try {
      const YAML::Node root = YAML::LoadFile(file.string());
      if (!root.IsMap() || !root["plugin_dir"] || !root["plugin_dir"].IsScalar()) continue;
      std::vector<std::string> errors;
      auto value = detail::interpolate(root["plugin_dir"].Scalar(), file.parent_path(), errors);
      if (!value || value->text.empty()) return "";
      const fs::path dir(value->text);
      return dir.is_absolute() ? dir.string()
                               : (file.parent_path() / dir).lexically_normal().string();
    } catch (const YAML::Exception &) {
      continue;
    }
  }
  return "";
}

}  // namespace crmhost::config
