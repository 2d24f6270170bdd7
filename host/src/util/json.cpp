#include "util/json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include <rapidjson/error/en.h>
#include <rapidjson/internal/dtoa.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace crmhost::json {

std::optional<size_t> nesting_exceeds(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return i;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

namespace {

// Builds the Document from RapidJSON's reader, but converts numbers itself: the reader's default
// conversion can be an ulp off (a value written and read back is then another value), and its
// full-precision mode has undefined behaviour on a zero mantissa with an exponent ("0e400").
// std::from_chars rounds correctly.
class ExactNumbers {
 public:
  explicit ExactNumbers(rapidjson::Document &doc) : doc_(doc) {}
  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned i) { return doc_.Uint(i); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t i) { return doc_.Uint64(i); }
  bool Double(double d) { return doc_.Double(d); }
  bool String(const char *s, rapidjson::SizeType n, bool copy) { return doc_.String(s, n, copy); }
  bool Key(const char *s, rapidjson::SizeType n, bool copy) { return doc_.Key(s, n, copy); }
  bool StartObject() { return doc_.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { return doc_.EndObject(n); }
  bool StartArray() { return doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return doc_.EndArray(n); }

  // The reader has checked the grammar: -?digits(.digits)?([eE][+-]?digits)?
  bool RawNumber(const char *s, rapidjson::SizeType n, bool) {
    const char *end = s + n;
    const bool integral =
        std::find_if(s, end, [](char c) { return c == '.' || c == 'e' || c == 'E'; }) == end;
    if (integral) {
      if (*s == '-') {
        int64_t i = 0;
        if (auto r = std::from_chars(s, end, i); r.ec == std::errc() && r.ptr == end)
          return doc_.Int64(i);
      } else {
        uint64_t u = 0;
        if (auto r = std::from_chars(s, end, u); r.ec == std::errc() && r.ptr == end)
          return doc_.Uint64(u);
      }
    }
    double d = 0;
    const auto r = std::from_chars(s, end, d);
    if (r.ec == std::errc() && r.ptr == end) return doc_.Double(d);
    if (r.ec != std::errc::result_out_of_range) return false;
    if (overflows(s, end)) {
      number_too_big_ = true;
      return false;
    }
    return doc_.Double(*s == '-' ? -0.0 : 0.0);  // below the smallest double: zero, as RapidJSON
  }

  bool number_too_big() const { return number_too_big_; }

 private:
  // Out of range either way: too big when the decimal point sits right of the first digit.
  static bool overflows(const char *s, const char *end) {
    if (*s == '-') ++s;
    const char *exp_at = std::find_if(s, end, [](char c) { return c == 'e' || c == 'E'; });
    long long position = 0;  // the power of ten of the first nonzero digit, plus one
    bool seen_nonzero = false, after_point = false;
    for (const char *p = s; p < exp_at; ++p) {
      if (*p == '.') {
        after_point = true;
      } else if (!seen_nonzero && *p != '0') {
        seen_nonzero = true;
        if (!after_point) ++position;
      } else if (seen_nonzero && !after_point) {
        ++position;
      } else if (!seen_nonzero && after_point) {
        --position;
      }
    }
    if (!seen_nonzero) return false;  // a zero with any exponent is zero
    long long exponent = 0;
    if (exp_at != end) {
      const char *digits = exp_at + 1;
      const bool negative = digits < end && *digits == '-';
      if (digits < end && (*digits == '-' || *digits == '+')) ++digits;
      for (; digits < end && exponent < 1'000'000; ++digits)
        exponent = exponent * 10 + (*digits - '0');
      if (negative) exponent = -exponent;
    }
    return position + exponent > 0;
  }

  rapidjson::Document &doc_;
  bool number_too_big_ = false;
};

}  // namespace

std::optional<std::string> try_parse(std::string_view text, rapidjson::Document &out,
                                     std::string_view what) {
  if (auto at = nesting_exceeds(text, kMaxJsonDepth)) {
    out.SetNull();
    return std::string(what) + " nests deeper than " + std::to_string(kMaxJsonDepth) +
           " levels (at offset " + std::to_string(*at) + ")";
  }
  // Iterative: no recursion, whatever the input (the depth above bounds what follows it).
  constexpr unsigned kFlags =
      rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag;
  rapidjson::MemoryStream stream(text.data(), text.size());
  rapidjson::Reader reader;
  ExactNumbers handler(out);
  rapidjson::ParseResult result;
  auto generate = [&](rapidjson::Document &) {
    result = reader.Parse<kFlags>(stream, handler);
    return !result.IsError();
  };
  out.Populate(generate);
  if (!result.IsError()) return std::nullopt;
  out.SetNull();
  return std::string(what) + " is not valid JSON at offset " + std::to_string(result.Offset()) +
         ": " +
         (handler.number_too_big() ? "Number too big to be stored in double."
                                   : rapidjson::GetParseError_En(result.Code()));
}

rapidjson::Document parse(std::string_view text, std::string_view what) {
  rapidjson::Document doc;
  if (auto error = try_parse(text, doc, what)) throw ParseError(*error);
  return doc;
}

const rapidjson::Value *member(const rapidjson::Value &value, const char *key) {
  if (!value.IsObject()) return nullptr;
  const auto it = value.FindMember(key);
  return it == value.MemberEnd() ? nullptr : &it->value;
}

std::string to_string(const rapidjson::Value &value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

namespace {

// What RapidJSON's Writer writes for each byte inside a string: 0 (itself), 'u' (\u00XX), or
// the letter after the backslash.
struct EscapeTable {
  char code[256] = {};
  constexpr EscapeTable() {
    for (int c = 0; c < 0x20; ++c) code[c] = 'u';
    code[static_cast<unsigned char>('\b')] = 'b';
    code[static_cast<unsigned char>('\t')] = 't';
    code[static_cast<unsigned char>('\n')] = 'n';
    code[static_cast<unsigned char>('\f')] = 'f';
    code[static_cast<unsigned char>('\r')] = 'r';
    code[static_cast<unsigned char>('"')] = '"';
    code[static_cast<unsigned char>('\\')] = '\\';
  }
};
constexpr EscapeTable kEscape;

// Writes into `out` through a raw pointer, growing it ahead of each value: per-byte push_back
// was the cost of serialising.
class CompactWriter {
 public:
  explicit CompactWriter(std::string &out) : out_(out), at_(out.size()) {}
  ~CompactWriter() { out_.resize(at_); }

  void value(const rapidjson::Value &v) {
    switch (v.GetType()) {
      case rapidjson::kNullType:
        return literal("null", 4);
      case rapidjson::kFalseType:
        return literal("false", 5);
      case rapidjson::kTrueType:
        return literal("true", 4);
      case rapidjson::kStringType:
        return string(v.GetString(), v.GetStringLength());
      case rapidjson::kNumberType: {
        char *w = room(32);
        char *end = w;
        if (v.IsInt64())
          end = std::to_chars(w, w + 32, v.GetInt64()).ptr;
        else if (v.IsUint64())
          end = std::to_chars(w, w + 32, v.GetUint64()).ptr;
        else if (!std::isfinite(v.GetDouble()))
          end = std::copy_n("null", 4, w);
        else
          end = rapidjson::internal::dtoa(v.GetDouble(), w);  // the form Writer writes
        at_ = static_cast<size_t>(end - out_.data());
        return;
      }
      case rapidjson::kObjectType: {
        literal("{", 1);
        bool first = true;
        for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
          if (!first) literal(",", 1);
          first = false;
          string(it->name.GetString(), it->name.GetStringLength());
          literal(":", 1);
          value(it->value);
        }
        return literal("}", 1);
      }
      case rapidjson::kArrayType: {
        literal("[", 1);
        bool first = true;
        for (const auto &item : v.GetArray()) {
          if (!first) literal(",", 1);
          first = false;
          value(item);
        }
        return literal("]", 1);
      }
    }
  }

 private:
  char *room(size_t n) {
    if (at_ + n > out_.size()) out_.resize(std::max(out_.size() * 2, at_ + n + 256));
    return out_.data() + at_;
  }
  void literal(const char *s, size_t n) {
    std::memcpy(room(n), s, n);
    at_ += n;
  }
  void string(const char *s, size_t n) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    char *w = room(2 + 6 * n);
    *w++ = '"';
    for (size_t i = 0; i < n; ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      const char code = kEscape.code[c];
      if (code == 0) {
        *w++ = static_cast<char>(c);
        continue;
      }
      *w++ = '\\';
      *w++ = code;
      if (code == 'u') {
        *w++ = '0';
        *w++ = '0';
        *w++ = kHex[c >> 4];
        *w++ = kHex[c & 15];
      }
    }
    *w++ = '"';
    at_ = static_cast<size_t>(w - out_.data());
  }

  std::string &out_;
  size_t at_;
};

}  // namespace

void append_compact(const rapidjson::Value &value, std::string &out) {
  CompactWriter(out).value(value);
}

std::string to_pretty_string(const rapidjson::Value &value) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
  writer.SetIndent(' ', 2);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::optional<std::string> get_string(const rapidjson::Value &object, const char *key) {
  if (!object.IsObject()) return std::nullopt;
  auto it = object.FindMember(key);
  if (it == object.MemberEnd() || !it->value.IsString()) return std::nullopt;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

std::string quote(std::string_view text) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace crmhost::json
