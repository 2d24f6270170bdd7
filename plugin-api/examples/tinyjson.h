/*
 * tinyjson.h: the small JSON reader and writer the plain-C example connector uses.
 *
 * C plugins have no RapidJSON, so the example carries this ~300-line helper: a recursive-descent
 * parser into a tree (with the raw text span of every value, so stored records can be echoed
 * verbatim) and a growable output buffer with JSON string escaping. Header-only: every function
 * is static. A real C connector may use any JSON library instead (cJSON, jansson, yyjson).
 */
#ifndef CRMHOST_EXAMPLE_TINYJSON_H
#define CRMHOST_EXAMPLE_TINYJSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TJ_NULL 0
#define TJ_FALSE 1
#define TJ_TRUE 2
#define TJ_NUMBER 3
#define TJ_STRING 4
#define TJ_ARRAY 5
#define TJ_OBJECT 6

typedef struct tj_value {
  int type;
  char *str; /* decoded string (TJ_STRING) or the key (object members); NUL-terminated */
  size_t str_len;
  double number;
  struct tj_value *children; /* array elements or object members (member key in child->key) */
  size_t count;
  char *key;        /* set on object members */
  size_t raw_begin; /* the value's span in the source text */
  size_t raw_end;
} tj_value;

typedef struct tj_parser {
  const char *text;
  size_t len;
  size_t pos;
  int depth;
  char error[160];
} tj_parser;

static inline void tj_free(tj_value *v) {
  size_t i;
  if (!v) return;
  for (i = 0; i < v->count; ++i) tj_free(&v->children[i]);
  free(v->children);
  free(v->str);
  free(v->key);
  memset(v, 0, sizeof *v);
}

static inline int tj_fail(tj_parser *p, const char *what) {
  if (!p->error[0]) snprintf(p->error, sizeof p->error, "%s at offset %zu", what, p->pos);
  return 0;
}

static inline void tj_skip_ws(tj_parser *p) {
  while (p->pos < p->len && (p->text[p->pos] == ' ' || p->text[p->pos] == '\t' ||
                             p->text[p->pos] == '\n' || p->text[p->pos] == '\r'))
    ++p->pos;
}

static inline int tj_hex4(tj_parser *p, unsigned *out) {
  unsigned v = 0;
  int i;
  if (p->pos + 4 > p->len) return tj_fail(p, "truncated \\u escape");
  for (i = 0; i < 4; ++i) {
    char c = p->text[p->pos++];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return tj_fail(p, "bad \\u escape");
  }
  *out = v;
  return 1;
}

static inline size_t tj_put_utf8(char *dst, unsigned cp) {
  if (cp < 0x80) {
    dst[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    dst[0] = (char)(0xC0 | (cp >> 6));
    dst[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    dst[0] = (char)(0xE0 | (cp >> 12));
    dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  dst[0] = (char)(0xF0 | (cp >> 18));
  dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  dst[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Parses a string starting at the opening quote into a malloc'd, NUL-terminated buffer. */
static inline int tj_parse_string(tj_parser *p, char **out, size_t *out_len) {
  /* Decoded text is never longer than the source span, so one allocation of the span suffices.
   * The span is found first: allocating the rest of the whole text for each string made a
   * 600 KB body with many strings peak near 1 GB. */
  size_t start = ++p->pos, n = 0, end = start;
  char *buf;
  while (end < p->len && p->text[end] != '"') end += p->text[end] == '\\' ? 2 : 1;
  if (end > p->len) end = p->len;
  buf = (char *)malloc(end - start + 1);
  if (!buf) return tj_fail(p, "out of memory");
  while (p->pos < p->len) {
    char c = p->text[p->pos++];
    if (c == '"') {
      buf[n] = '\0';
      *out = buf;
      *out_len = n;
      return 1;
    }
    if ((unsigned char)c < 0x20) {
      free(buf);
      return tj_fail(p, "control character in string");
    }
    if (c != '\\') {
      buf[n++] = c;
      continue;
    }
    if (p->pos >= p->len) break;
    c = p->text[p->pos++];
    switch (c) {
      case '"':
        buf[n++] = '"';
        break;
      case '\\':
        buf[n++] = '\\';
        break;
      case '/':
        buf[n++] = '/';
        break;
      case 'b':
        buf[n++] = '\b';
        break;
      case 'f':
        buf[n++] = '\f';
        break;
      case 'n':
        buf[n++] = '\n';
        break;
      case 'r':
        buf[n++] = '\r';
        break;
      case 't':
        buf[n++] = '\t';
        break;
      case 'u': {
        unsigned cp, lo;
        if (!tj_hex4(p, &cp)) {
          free(buf);
          return 0;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (p->pos + 6 > p->len || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') {
            free(buf);
            return tj_fail(p, "lone surrogate");
          }
          p->pos += 2;
          if (!tj_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
            free(buf);
            return tj_fail(p, "bad surrogate pair");
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        n += tj_put_utf8(buf + n, cp);
        break;
      }
      default:
        free(buf);
        return tj_fail(p, "bad escape");
    }
  }
  free(buf);
  return tj_fail(p, "unterminated string");
}

static inline int tj_parse_value(tj_parser *p, tj_value *v);

static inline int tj_append_child(tj_parser *p, tj_value *parent, size_t *capacity,
                                  tj_value **slot) {
  if (parent->count == *capacity) {
    size_t cap = *capacity ? *capacity * 2 : 4;
    tj_value *grown = (tj_value *)realloc(parent->children, cap * sizeof *grown);
    if (!grown) return tj_fail(p, "out of memory");
    parent->children = grown;
    *capacity = cap;
  }
  *slot = &parent->children[parent->count];
  memset(*slot, 0, sizeof **slot);
  return 1;
}

static inline int tj_parse_container(tj_parser *p, tj_value *v, char close) {
  size_t capacity = 0;
  ++p->pos;
  if (++p->depth > 64) return tj_fail(p, "nesting too deep");
  tj_skip_ws(p);
  if (p->pos < p->len && p->text[p->pos] == close) {
    ++p->pos;
    --p->depth;
    return 1;
  }
  for (;;) {
    tj_value *child;
    char *key = NULL;
    size_t key_len = 0;
    tj_skip_ws(p);
    if (close == '}') {
      if (p->pos >= p->len || p->text[p->pos] != '"') return tj_fail(p, "expected a member name");
      if (!tj_parse_string(p, &key, &key_len)) return 0;
      tj_skip_ws(p);
      if (p->pos >= p->len || p->text[p->pos] != ':') {
        free(key);
        return tj_fail(p, "expected ':'");
      }
      ++p->pos;
    }
    if (!tj_append_child(p, v, &capacity, &child)) {
      free(key);
      return 0;
    }
    child->key = key;
    ++v->count; /* counted before parsing so tj_free releases a half-parsed child */
    if (!tj_parse_value(p, child)) return 0;
    tj_skip_ws(p);
    if (p->pos < p->len && p->text[p->pos] == ',') {
      ++p->pos;
      continue;
    }
    if (p->pos < p->len && p->text[p->pos] == close) {
      ++p->pos;
      --p->depth;
      return 1;
    }
    return tj_fail(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static inline int tj_parse_literal(tj_parser *p, const char *word, int type, tj_value *v) {
  size_t n = strlen(word);
  if (p->pos + n > p->len || memcmp(p->text + p->pos, word, n) != 0)
    return tj_fail(p, "unexpected token");
  p->pos += n;
  v->type = type;
  return 1;
}

static inline size_t tj_digits(const tj_parser *p, size_t at) {
  size_t n = 0;
  while (at + n < p->len && p->text[at + n] >= '0' && p->text[at + n] <= '9') ++n;
  return n;
}

/* JSON's number grammar exactly, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, and well inside
 * a double's range: the raw text of values is echoed into results, so a number the host's JSON
 * parser (RapidJSON) would refuse (01, 1., +1, .5, 1e999, 0e400, 400 integer digits) must be
 * refused here, as the sender's fault. RapidJSON refuses more than 308 integer digits or a
 * positive exponent above 308 whatever the value, and a value beyond DBL_MAX; the bounds here
 * are those or tighter. */
static inline int tj_parse_number(tj_parser *p, tj_value *v) {
  size_t n = p->pos, digits, i;
  unsigned exponent = 0;
  int exponent_minus = 0;
  char small[64], *text = small;
  if (n < p->len && p->text[n] == '-') ++n;
  digits = tj_digits(p, n);
  if (digits == 0) return tj_fail(p, n == p->pos ? "unexpected character" : "bad number");
  if (p->text[n] == '0' && digits > 1) return tj_fail(p, "bad number (leading zero)");
  if (digits > 308) return tj_fail(p, "number out of range");
  n += digits;
  if (n < p->len && p->text[n] == '.') {
    digits = tj_digits(p, ++n);
    if (digits == 0) return tj_fail(p, "bad number");
    n += digits;
  }
  if (n < p->len && (p->text[n] == 'e' || p->text[n] == 'E')) {
    ++n;
    if (n < p->len && (p->text[n] == '+' || p->text[n] == '-'))
      exponent_minus = p->text[n++] == '-';
    digits = tj_digits(p, n);
    if (digits == 0) return tj_fail(p, "bad number");
    for (i = 0; i < digits && exponent <= 308; ++i)
      exponent = exponent * 10 + (unsigned)(p->text[n + i] - '0');
    if (!exponent_minus && exponent > 308) return tj_fail(p, "number out of range");
    n += digits;
  }
  n -= p->pos;
  if (n >= sizeof small && !(text = (char *)malloc(n + 1))) return tj_fail(p, "out of memory");
  memcpy(text, p->text + p->pos, n);
  text[n] = '\0';
  v->number = strtod(text, NULL);
  if (text != small) free(text);
  if (v->number > 1e308 || v->number < -1e308) return tj_fail(p, "number out of range");
  v->type = TJ_NUMBER;
  p->pos += n;
  return 1;
}

static inline int tj_parse_value(tj_parser *p, tj_value *v) {
  int ok;
  tj_skip_ws(p);
  v->raw_begin = p->pos;
  if (p->pos >= p->len) return tj_fail(p, "unexpected end of input");
  switch (p->text[p->pos]) {
    case '{':
      v->type = TJ_OBJECT;
      ok = tj_parse_container(p, v, '}');
      break;
    case '[':
      v->type = TJ_ARRAY;
      ok = tj_parse_container(p, v, ']');
      break;
    case '"':
      v->type = TJ_STRING;
      ok = tj_parse_string(p, &v->str, &v->str_len);
      break;
    case 't':
      ok = tj_parse_literal(p, "true", TJ_TRUE, v);
      break;
    case 'f':
      ok = tj_parse_literal(p, "false", TJ_FALSE, v);
      break;
    case 'n':
      ok = tj_parse_literal(p, "null", TJ_NULL, v);
      break;
    default:
      ok = tj_parse_number(p, v);
  }
  v->raw_end = p->pos;
  return ok;
}

/* Parses a whole document. On failure returns 0 with a message in `error`. */
static inline int tj_parse(const char *text, size_t len, tj_value *out, char *error,
                           size_t error_size) {
  tj_parser p;
  memset(&p, 0, sizeof p);
  memset(out, 0, sizeof *out);
  p.text = text ? text : "";
  p.len = text ? len : 0;
  if (tj_parse_value(&p, out)) {
    tj_skip_ws(&p);
    if (p.pos == p.len) return 1;
    tj_fail(&p, "trailing characters");
  }
  snprintf(error, error_size, "%s", p.error);
  tj_free(out);
  return 0;
}

static inline const tj_value *tj_get(const tj_value *object, const char *key) {
  size_t i;
  if (!object || object->type != TJ_OBJECT) return NULL;
  for (i = 0; i < object->count; ++i)
    if (strcmp(object->children[i].key, key) == 0) return &object->children[i];
  return NULL;
}

static inline const char *tj_get_string(const tj_value *object, const char *key) {
  const tj_value *v = tj_get(object, key);
  return v && v->type == TJ_STRING ? v->str : NULL;
}

/* ---- Output buffer ---- */

typedef struct tj_buf {
  char *data;
  size_t len, cap;
  int failed;
} tj_buf;

static inline void tj_buf_raw(tj_buf *b, const char *s, size_t n) {
  if (b->failed) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *grown;
    while (cap < b->len + n + 1) cap *= 2;
    grown = (char *)realloc(b->data, cap);
    if (!grown) {
      b->failed = 1;
      return;
    }
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

static inline void tj_buf_str(tj_buf *b, const char *s) {
  tj_buf_raw(b, s, strlen(s));
}

static inline void tj_buf_quoted(tj_buf *b, const char *s, size_t n) {
  size_t i;
  tj_buf_raw(b, "\"", 1);
  for (i = 0; i < n; ++i) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"')
      tj_buf_raw(b, "\\\"", 2);
    else if (c == '\\')
      tj_buf_raw(b, "\\\\", 2);
    else if (c == '\n')
      tj_buf_raw(b, "\\n", 2);
    else if (c == '\r')
      tj_buf_raw(b, "\\r", 2);
    else if (c == '\t')
      tj_buf_raw(b, "\\t", 2);
    else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      tj_buf_raw(b, esc, 6);
    } else
      tj_buf_raw(b, (const char *)&s[i], 1);
  }
  tj_buf_raw(b, "\"", 1);
}

static inline void tj_buf_free(tj_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

#endif /* CRMHOST_EXAMPLE_TINYJSON_H */
