#include "util/redact.hpp"

#include <algorithm>
#include <array>
#include <initializer_list>

#include "util/text.hpp"

namespace crmhost::redaction {

namespace {

constexpr std::string_view kRedacted = "[redacted]";
constexpr std::string_view kEmail = "[email]";
constexpr std::string_view kCard = "[card]";
constexpr std::string_view kSsn = "[ssn]";

bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(unsigned char c) {
  return is_alpha(c) || is_digit(c);
}
// Characters of a key such as x-api-key, db_password or spring.datasource.password.
bool is_key_char(unsigned char c) {
  return is_alnum(c) || c == '_' || c == '-' || c == '.';
}
bool is_blank(unsigned char c) {
  return c == ' ' || c == '\t';
}
bool is_space(unsigned char c) {
  return is_blank(c) || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
// ASCII characters of an email's local part (the usual subset, as the old pattern had).
bool is_local_char(unsigned char c) {
  return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
bool is_token_char(unsigned char c) {
  return is_alnum(c) || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=' ||
         c == '-';
}
bool ends_bare_value(unsigned char c) {
  return is_space(c) || c == '"' || c == '\'' || c == ',' || c == '&' || c == ';' || c == '}' ||
         c == ']' || c == '\\';
}
char lower(unsigned char c) {
  return static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  return true;
}

// Code points beyond ASCII that may be part of a word (an email's local part or domain): not
// Latin-1 punctuation, general punctuation and symbols, CJK punctuation, private use,
// full-width punctuation, specials or emoji. No Unicode tables: close enough for masking.
bool letter_like(char32_t cp) {
  if (cp < 0xC0 || cp == 0xD7 || cp == 0xF7) return false;
  if (cp >= 0x2000 && cp < 0x2C00) return false;
  if (cp >= 0x3000 && cp < 0x3040) return false;
  if (cp >= 0xE000 && cp < 0xF900) return false;
  if (cp >= 0xFE30 && cp < 0xFE70) return false;
  if (cp >= 0xFF00 && cp < 0xFF10) return false;
  if (cp == 0xFEFF || cp >= 0xFFF0) return cp >= 0x20000 && cp < 0xF0000;  // CJK extensions
  return true;
}

// The UTF-8 sequence at text[i]: its length (0 when invalid) and whether it is letter-like.
struct Utf8 {
  size_t length = 0;
  bool letter = false;
};

Utf8 decode(std::string_view text, size_t i) {
  const text::Utf8Char c = text::decode_utf8(text, i);
  return {c.length, c.length > 1 && letter_like(c.code_point)};
}

bool secret_key(std::string_view word) {
  std::string squeezed;
  squeezed.reserve(word.size());
  for (const char c : word)
    if (c != '_' && c != '-' && c != '.') squeezed.push_back(lower(static_cast<unsigned char>(c)));
  for (const std::string_view name : {"password", "passwd", "pwd", "passphrase", "secret", "token",
                                      "apikey", "privatekey", "authorization"})
    if (squeezed.find(name) != std::string::npos) return true;
  return false;
}

enum class Scheme { none, bearer, basic, zoho };

Scheme scheme_of(std::string_view word) {
  if (iequals(word, "bearer")) return Scheme::bearer;
  if (iequals(word, "basic")) return Scheme::basic;
  if (iequals(word, "zoho-oauthtoken")) return Scheme::zoho;
  return Scheme::none;
}

// Base64 credentials have digits, padding or mixed case; "Basic plan" or "basic auth" do not.
bool looks_encoded(std::string_view token) {
  for (size_t i = 0; i < token.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(token[i]);
    if (is_digit(c) || c == '+' || c == '/' || c == '=' || (i > 0 && c >= 'A' && c <= 'Z'))
      return true;
  }
  return false;
}

bool luhn(const std::array<int, 19> &digits, int count) {
  int sum = 0;
  for (int k = 0; k < count; ++k) {
    int d = digits[static_cast<size_t>(count - 1 - k)];
    if (k % 2 == 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 == 0;
}

class Scanner {
 public:
  explicit Scanner(std::string_view in) : in_(in) { out_.reserve(in.size()); }

  std::string run() {
    while (i_ < in_.size()) {
      const unsigned char c = at(i_);
      if (c >= 0x80) {
        const Utf8 u = decode(in_, i_);
        const size_t length = u.length ? u.length : 1;
        out_.append(in_.substr(i_, length));
        i_ += length;
        if (!u.letter) restart_email();
        continue;
      }
      if ((is_alnum(c) || c == '_') && (i_ == 0 || !is_key_char(at(i_ - 1))) && word()) continue;
      if (is_digit(c) && number_may_start() && (ssn() || card())) continue;
      if (c == ':' && uri_password()) continue;
      if (c == '@' && email()) continue;
      if (c == '-' && private_key_block()) continue;
      out_.push_back(static_cast<char>(c));
      ++i_;
      if (!is_local_char(c)) restart_email();
    }
    return std::move(out_);
  }

 private:
  unsigned char at(size_t k) const { return static_cast<unsigned char>(in_[k]); }
  bool starts(size_t k, std::string_view s) const { return in_.substr(k, s.size()) == s; }

  // Copies in_[i_, to), appends `mask`, and continues at `next`.
  void replace(size_t to, std::string_view mask, size_t next) {
    out_.append(in_.substr(i_, to - i_));
    out_.append(mask);
    i_ = next;
    restart_email();
  }
  void restart_email() {
    local_in_ = i_;
    local_out_ = out_.size();
  }

  // At the start of a word: an authorization scheme and its credential, or a secret-like key
  // and its value. Each word is scanned once, so this stays linear.
  bool word() {
    size_t end = i_;
    while (end < in_.size() && is_key_char(at(end))) ++end;
    const std::string_view w = in_.substr(i_, end - i_);
    const bool forced = forced_scheme_;
    forced_scheme_ = false;
    if (const Scheme s = scheme_of(w); s != Scheme::none && credential(end, s, forced)) return true;
    return secret_key(w) && key_value(end);
  }

  bool credential(size_t end, Scheme scheme, bool forced) {
    size_t start = end;
    while (start < in_.size() && is_blank(at(start))) ++start;
    if (start == end) return false;
    size_t stop = start;
    while (stop < in_.size() && is_token_char(at(stop))) ++stop;
    if (stop == start) return false;
    if (scheme == Scheme::basic && !forced && !looks_encoded(in_.substr(start, stop - start)))
      return false;
    replace(start, kRedacted, stop);
    return true;
  }

  // After a secret-like key: optional closing quote, blanks, "=" or ":", blanks, the value.
  bool key_value(size_t end) {
    const size_t n = in_.size();
    size_t j = end;
    if (j < n && (at(j) == '"' || at(j) == '\'')) {
      ++j;
    } else if (starts(j, "\\\"")) {
      j += 2;
    }
    while (j < n && is_blank(at(j))) ++j;
    if (j >= n || (at(j) != '=' && at(j) != ':') || starts(j, "://")) return false;
    ++j;
    while (j < n && is_blank(at(j))) ++j;
    std::string_view close;
    if (j < n && (at(j) == '"' || at(j) == '\'')) {
      close = in_.substr(j++, 1);
    } else if (starts(j, "\\\"")) {
      close = in_.substr(j, 2);
      j += 2;
    }
    const size_t value = j;
    if (close.empty()) return bare_value(value);
    const size_t v = close.size() == 2 ? escaped_string_end(value) : string_end(value, close[0]);
    if (v == value) return false;
    const size_t next = starts(v, close) ? v + close.size() : v;
    replace(value, kRedacted, v);
    out_.append(in_.substr(v, next - v));
    i_ = next;
    restart_email();
    return true;
  }

  // The closing quote of a JSON ('"') or single-quoted string, or the end of the line.
  size_t string_end(size_t v, char quote) const {
    while (v < in_.size() && at(v) != '\n' && at(v) != '\r' && in_[v] != quote) {
      if (quote == '"' && at(v) == '\\') ++v;  // a JSON escape: the next character is content
      ++v;
    }
    return std::min(v, in_.size());
  }

  // The closing \" of a JSON string inside a JSON string (\\ and \" are its characters \ and ").
  size_t escaped_string_end(size_t v) const {
    bool escaped = false;  // the inner string's backslash before this character
    while (v < in_.size() && at(v) != '\n' && at(v) != '\r') {
      const bool pair = at(v) == '\\' && v + 1 < in_.size();
      const char inner = pair ? in_[v + 1] : in_[v];
      if (pair && inner == '"' && !escaped) break;
      escaped = inner == '\\' && pair && !escaped;
      v += pair ? 2 : 1;
    }
    return v;
  }

  bool bare_value(size_t value) {
    size_t v = value;
    while (v < in_.size() && !ends_bare_value(at(v))) ++v;
    const std::string_view bare = in_.substr(value, v - value);
    if (bare.empty() || bare == "null" || bare == "true" || bare == "false") return false;
    size_t word_end = value;
    while (word_end < in_.size() && is_key_char(at(word_end))) ++word_end;
    const bool scheme = scheme_of(in_.substr(value, word_end - value)) != Scheme::none &&
                        word_end < in_.size() && is_blank(at(word_end));
    if (scheme || starts(value, "-----BEGIN ")) {
      // "Authorization: Bearer x" or a PEM block: masked by their own rules, from the value on.
      out_.append(in_.substr(i_, value - i_));
      i_ = value;
      restart_email();
      forced_scheme_ = scheme;
      return true;
    }
    replace(value, kRedacted, v);
    return true;
  }

  bool uri_password() {
    if (i_ == 0 || !starts(i_, "://")) return false;
    const unsigned char before = at(i_ - 1);
    if (!is_alnum(before) && before != '+' && before != '.' && before != '-') return false;
    const auto userinfo_end = [&](unsigned char c, bool user) {
      return is_space(c) || c == '/' || c == '@' || c == '?' || c == '#' || (user && c == ':');
    };
    size_t user = i_ + 3;
    while (user < in_.size() && !userinfo_end(at(user), true)) ++user;
    if (user == i_ + 3 || user >= in_.size() || at(user) != ':') return false;
    size_t password = user + 1;
    while (password < in_.size() && !userinfo_end(at(password), false)) ++password;
    if (password == user + 1 || password >= in_.size() || at(password) != '@') return false;
    replace(user + 1, kRedacted, password);
    out_.push_back('@');
    ++i_;
    restart_email();
    return true;
  }

  // The end of the domain label at k (ASCII letters, digits, "-" and letters beyond ASCII).
  size_t label_end(size_t k) const {
    while (k < in_.size()) {
      const unsigned char c = at(k);
      if (is_alnum(c) || c == '-') {
        ++k;
      } else if (c >= 0x80) {
        const Utf8 u = decode(in_, k);
        if (!u.length || !u.letter) break;
        k += u.length;
      } else {
        break;
      }
    }
    return k;
  }

  // At "@": the local part is the run of local characters just copied (since restart_email).
  bool email() {
    if (local_in_ >= i_) return false;
    bool has_word_char = false;
    for (size_t k = local_out_; k < out_.size() && !has_word_char; ++k)
      has_word_char = is_alnum(static_cast<unsigned char>(out_[k])) ||
                      static_cast<unsigned char>(out_[k]) >= 0x80;
    if (!has_word_char) return false;
    size_t k = i_ + 1, labels = 0, last_start = 0, last_end = 0;
    while (true) {
      const size_t end = label_end(k);
      if (end == k) break;
      ++labels;
      last_start = k;
      last_end = end;
      if (end >= in_.size() || at(end) != '.') break;
      k = end + 1;
    }
    if (labels < 2 || last_end - last_start < 2) return false;
    const unsigned char tld = at(last_start);
    if (!is_alpha(tld) && tld < 0x80) return false;
    out_.resize(local_out_);
    out_.append(kEmail);
    i_ = last_end;
    restart_email();
    return true;
  }

  // Digits glued to letters, digits, "_" (an id), "." (a decimal) or "+" (a phone) are kept.
  bool number_may_start() const {
    if (i_ == 0) return true;
    const unsigned char c = at(i_ - 1);
    return !is_alnum(c) && c != '_' && c != '.' && c != '+';
  }
  bool number_ends_at(size_t k) const {
    if (k >= in_.size()) return true;
    const unsigned char c = at(k);
    if (is_alnum(c) || c == '_') return false;
    return !((c == '.' || c == '-') && k + 1 < in_.size() && is_digit(at(k + 1)));
  }

  bool ssn() {
    if (i_ + 11 > in_.size()) return false;
    const std::string_view s = in_.substr(i_, 11);
    for (size_t k = 0; k < 11; ++k) {
      const bool dash = k == 3 || k == 6;
      if (dash ? s[k] != '-' : !is_digit(static_cast<unsigned char>(s[k]))) return false;
    }
    if (!number_ends_at(i_ + 11)) return false;
    const std::string_view area = s.substr(0, 3), group = s.substr(4, 2), serial = s.substr(7);
    if (area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000")
      return false;
    replace(i_, kSsn, i_ + 11);
    return true;
  }

  // Up to 19 digits in groups of 3 to 6 (one space or dash between them); the longest prefix
  // that ends a group, has 13 to 19 digits and passes Luhn is a card. At most ~40 characters
  // are looked at.
  bool card() {
    std::array<int, 19> digits{};
    std::array<size_t, 20> group_end{};
    std::array<int, 20> count_at{};
    int count = 0, groups = 0;
    bool overflow = false;
    size_t k = i_;
    while (true) {
      while (k < in_.size() && is_digit(at(k)) && count <= 19) {
        if (count < 19) digits[static_cast<size_t>(count)] = at(k) - '0';
        ++count;
        ++k;
      }
      if (count > 19) {
        overflow = true;
        break;
      }
      group_end[static_cast<size_t>(groups)] = k;
      count_at[static_cast<size_t>(groups)] = count;
      ++groups;
      if (k + 1 < in_.size() && (at(k) == ' ' || at(k) == '-') && is_digit(at(k + 1))) {
        ++k;
        continue;
      }
      break;
    }
    if (digits[0] < 2 || digits[0] > 6) return false;
    for (int g = groups - 1; g >= 0; --g) {
      const int n = count_at[static_cast<size_t>(g)];
      const size_t end = group_end[static_cast<size_t>(g)];
      if (n < 13 || n > 19) continue;
      if (g == groups - 1 && !overflow && !number_ends_at(end)) continue;
      if (g > 0 && !groups_look_like_a_card(g, count_at)) continue;
      if (!luhn(digits, n)) continue;
      replace(i_, kCard, end);
      return true;
    }
    return false;
  }

  static bool groups_look_like_a_card(int last, const std::array<int, 20> &count_at) {
    for (int g = 0; g <= last; ++g) {
      const int length =
          count_at[static_cast<size_t>(g)] - (g ? count_at[static_cast<size_t>(g - 1)] : 0);
      if (length < 3 || length > 6) return false;
    }
    return true;
  }

  // "-----BEGIN <label>-----" where the label names a private key: masked to its END line (or to
  // the end of the text when it has none).
  bool private_key_block() {
    if (!starts(i_, "-----BEGIN ") || (i_ > 0 && at(i_ - 1) == '-')) return false;
    const size_t label = i_ + 11;
    const size_t label_stop = in_.substr(0, std::min(in_.size(), label + 64)).find("-----", label);
    if (label_stop == std::string_view::npos) return false;
    if (in_.substr(label, label_stop - label).find("PRIVATE KEY") == std::string_view::npos)
      return false;
    const size_t body = label_stop + 5;
    const size_t end = in_.find("-----END ", body);
    if (end == std::string_view::npos) {
      replace(body, kRedacted, in_.size());
      return true;
    }
    const size_t end_stop = in_.substr(0, std::min(in_.size(), end + 80)).find("-----", end + 9);
    const size_t next = end_stop == std::string_view::npos ? end + 9 : end_stop + 5;
    replace(body, kRedacted, end);
    out_.append(in_.substr(end, next - end));
    i_ = next;
    restart_email();
    return true;
  }

  std::string_view in_;
  std::string out_;
  size_t i_ = 0;
  size_t local_in_ = 0, local_out_ = 0;  // where the run of email-local characters began
  bool forced_scheme_ = false;           // the next word is the value of an authorization key
};

}  // namespace

std::string redact(std::string_view text) {
  return Scanner(text).run();
}

bool is_secret_key(std::string_view key) {
  return secret_key(key);
}

}  // namespace crmhost::redaction
