/*
 * memory-connector.c: a complete crmhost connector in plain C11, against plugin.h alone.
 *
 * It keeps contacts, companies and deals in memory, one store per connection, and implements
 * every call of crm.connector.v1: poll with a cursor (a modification sequence number), fetch by
 * id, push (upsert on a match key, optionally trimmed and lower-cased; every mode of the README,
 * where archive is a delete as this store keeps no archive), a webhook that accepts a JSON array
 * of records behind a shared-secret header, and check. Copy it as the template of a new connector;
 * the JSON shapes are those of plugin-api/README.md.
 */
#include <crmhost/plugin.h>

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyjson.h"

#define MEMORY_MAX_BATCH 100

static const crm_host_api *g_host; /* set by init, cleared by deinit; [control] */

typedef struct mem_record {
  char *object;
  char *id;
  char *data;             /* the record's fields, a JSON object as text */
  unsigned long long seq; /* bumped on every change; the poll cursor */
  long long modified_ms;
  int deleted;
} mem_record;

struct crm_connector {
  crm_host_instance *instance;
  char *webhook_secret;
  mem_record *records;
  size_t count, capacity;
  /* (object, id) -> index + 1 in records, open addressing; records are never removed (a deletion
   * is a flag), so the index only grows. Keeps webhooks and fetches O(1) at any size. */
  size_t *slots;
  size_t slot_count; /* a power of two, or 0 */
  unsigned long long last_seq, last_id;
  atomic_int cancel_requested;
};

static const char *const k_objects[] = {"contact", "company", "deal"};

/* ---- helpers ---- */

static crm_status fail(crm_error *err, crm_status code, const char *fmt, ...) {
  if (err && err->struct_size >= offsetof(crm_error, message) + sizeof err->message) {
    va_list args;
    err->code = code;
    err->retryable = 0;
    va_start(args, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, args);
    va_end(args);
  }
  return code;
}

static char *dup_n(const char *s, size_t n) {
  char *copy = (char *)malloc(n + 1);
  if (copy) {
    memcpy(copy, s, n);
    copy[n] = '\0';
  }
  return copy;
}

static int known_object(const char *object) {
  size_t i;
  for (i = 0; object && i < sizeof k_objects / sizeof k_objects[0]; ++i)
    if (strcmp(object, k_objects[i]) == 0) return 1;
  return 0;
}

static long long now_ms(void) {
  return g_host && g_host->now_ms ? (long long)g_host->now_ms(g_host) : 0;
}

/* Formats Unix ms as ISO 8601 UTC without gmtime(), which is not thread-safe. */
static void format_iso8601(long long ms, char out[32]) {
  long long days = ms / 86400000LL, rem = ms % 86400000LL, era, yoe, doy, mp, y, m, d;
  if (rem < 0) {
    rem += 86400000LL;
    --days;
  }
  days += 719468; /* civil-from-days, after Howard Hinnant */
  era = (days >= 0 ? days : days - 146096) / 146097;
  yoe = days - era * 146097;
  y = (yoe - yoe / 1460 + yoe / 36524 - yoe / 146096) / 365;
  doy = yoe - (365 * y + y / 4 - y / 100);
  mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += era * 400 + (m <= 2);
  snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)(y % 10000), (int)m, (int)d,
           (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
           (int)(rem % 1000));
}

static crm_status emit(crm_sink *out, tj_buf *b, crm_status status, crm_error *err) {
  crm_str data;
  crm_status emitted;
  if (b->failed) {
    tj_buf_free(b);
    return fail(err, CRM_ERR_INTERNAL, "out of memory");
  }
  data.ptr = b->data;
  data.len = b->len;
  emitted = out->emit(out, data);
  tj_buf_free(b);
  return emitted < 0 ? emitted : status;
}

static void write_record(tj_buf *b, const mem_record *r) {
  char when[32];
  format_iso8601(r->modified_ms, when);
  tj_buf_str(b, "{\"id\":");
  tj_buf_quoted(b, r->id, strlen(r->id));
  tj_buf_str(b, r->deleted ? ",\"event\":\"delete\",\"modified_at\":\""
                           : ",\"event\":\"upsert\",\"modified_at\":\"");
  tj_buf_str(b, when);
  tj_buf_str(b, "\",\"data\":");
  tj_buf_str(b, r->data);
  tj_buf_str(b, "}");
}

static size_t hash_key(const char *object, const char *id) {
  unsigned long long h = 1469598103934665603ull; /* FNV-1a */
  for (; *object; ++object) h = (h ^ (unsigned char)*object) * 1099511628211ull;
  h = (h ^ 0xff) * 1099511628211ull;
  for (; *id; ++id) h = (h ^ (unsigned char)*id) * 1099511628211ull;
  return (size_t)h;
}

static void index_put(crm_connector *c, size_t record) {
  size_t at = hash_key(c->records[record].object, c->records[record].id) & (c->slot_count - 1);
  while (c->slots[at]) at = (at + 1) & (c->slot_count - 1);
  c->slots[at] = record + 1;
}

/* Makes room for one more record in the index; 0 when out of memory. */
static int index_reserve(crm_connector *c) {
  size_t i, *old = c->slots, old_count = c->slot_count;
  if ((c->count + 1) * 2 <= c->slot_count) return 1;
  c->slot_count = old_count ? old_count * 2 : 64;
  c->slots = (size_t *)calloc(c->slot_count, sizeof *c->slots);
  if (!c->slots) {
    c->slots = old;
    c->slot_count = old_count;
    return 0;
  }
  for (i = 0; i < c->count; ++i) index_put(c, i);
  free(old);
  return 1;
}

static mem_record *find_by_id(crm_connector *c, const char *object, const char *id) {
  size_t at;
  if (!c->slot_count) return NULL;
  at = hash_key(object, id) & (c->slot_count - 1);
  for (; c->slots[at]; at = (at + 1) & (c->slot_count - 1)) {
    mem_record *r = &c->records[c->slots[at] - 1];
    if (strcmp(r->object, object) == 0 && strcmp(r->id, id) == 0) return r;
  }
  return NULL;
}

/* The push request's "match_normalize" steps, as bits. */
#define NORMALIZE_TRIM 1u
#define NORMALIZE_LOWER 2u

static int is_ascii_space(char ch) {
  return ch == ' ' || (ch >= '\t' && ch <= '\r'); /* space, tab, LF, VT, FF, CR */
}

/* Whether two keys are equal once `normalize` applies to both; compares in place, no copy. */
static int keys_equal(const char *a, size_t a_len, const char *b, size_t b_len,
                      unsigned normalize) {
  size_t i;
  if (normalize & NORMALIZE_TRIM) {
    for (; a_len && is_ascii_space(*a); --a_len) ++a;
    while (a_len && is_ascii_space(a[a_len - 1])) --a_len;
    for (; b_len && is_ascii_space(*b); --b_len) ++b;
    while (b_len && is_ascii_space(b[b_len - 1])) --b_len;
  }
  if (a_len != b_len) return 0;
  for (i = 0; i < a_len; ++i) {
    char x = a[i], y = b[i];
    if (normalize & NORMALIZE_LOWER) {
      if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
      if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
    }
    if (x != y) return 0;
  }
  return 1;
}

/* Finds the oldest live record whose field `key` equals `wanted` (strings compared after
 * `normalize`, other types by value). */
static mem_record *find_by_field(crm_connector *c, const char *object, const char *key,
                                 const tj_value *wanted, unsigned normalize) {
  size_t i;
  for (i = 0; i < c->count; ++i) {
    mem_record *r = &c->records[i];
    tj_value data;
    char error[160];
    const tj_value *field;
    int same = 0;
    if (r->deleted || strcmp(r->object, object) != 0) continue;
    if (!tj_parse(r->data, strlen(r->data), &data, error, sizeof error)) continue;
    field = tj_get(&data, key);
    if (field && field->type == wanted->type) {
      if (field->type == TJ_STRING)
        same = keys_equal(field->str, field->str_len, wanted->str, wanted->str_len, normalize);
      else
        same = field->type != TJ_NULL && field->number == wanted->number;
    }
    tj_free(&data);
    if (same) return r;
  }
  return NULL;
}

/* Builds `old` overlaid with the members of `update` (a PATCH, as CRMs do). */
static char *merge_objects(const char *old_text, const char *update_text, size_t update_len) {
  tj_value old_v, new_v;
  char error[160];
  tj_buf b = {0};
  size_t i;
  int first = 1;
  if (!tj_parse(old_text, strlen(old_text), &old_v, error, sizeof error))
    return dup_n(update_text, update_len);
  if (!tj_parse(update_text, update_len, &new_v, error, sizeof error)) {
    tj_free(&old_v);
    return NULL;
  }
  tj_buf_str(&b, "{");
  for (i = 0; i < old_v.count; ++i) {
    const tj_value *m = &old_v.children[i];
    if (tj_get(&new_v, m->key)) continue;
    if (!first) tj_buf_str(&b, ",");
    tj_buf_quoted(&b, m->key, strlen(m->key));
    tj_buf_str(&b, ":");
    tj_buf_raw(&b, old_text + m->raw_begin, m->raw_end - m->raw_begin);
    first = 0;
  }
  for (i = 0; i < new_v.count; ++i) {
    const tj_value *m = &new_v.children[i];
    if (!first) tj_buf_str(&b, ",");
    tj_buf_quoted(&b, m->key, strlen(m->key));
    tj_buf_str(&b, ":");
    tj_buf_raw(&b, update_text + m->raw_begin, m->raw_end - m->raw_begin);
    first = 0;
  }
  tj_buf_str(&b, "}");
  tj_free(&old_v);
  tj_free(&new_v);
  if (b.failed) {
    tj_buf_free(&b);
    return NULL;
  }
  return b.data;
}

static mem_record *insert_record(crm_connector *c, const char *object, const char *id,
                                 const char *data, size_t data_len) {
  mem_record *r;
  char generated[24];
  if (!index_reserve(c)) return NULL;
  if (c->count == c->capacity) {
    size_t cap = c->capacity ? c->capacity * 2 : 16;
    mem_record *grown = (mem_record *)realloc(c->records, cap * sizeof *grown);
    if (!grown) return NULL;
    c->records = grown;
    c->capacity = cap;
  }
  if (!id) {
    snprintf(generated, sizeof generated, "%llu", ++c->last_id);
    id = generated;
  }
  r = &c->records[c->count];
  memset(r, 0, sizeof *r);
  r->object = dup_n(object, strlen(object));
  r->id = dup_n(id, strlen(id));
  r->data = dup_n(data, data_len);
  if (!r->object || !r->id || !r->data) {
    free(r->object);
    free(r->id);
    free(r->data);
    return NULL;
  }
  r->seq = ++c->last_seq;
  r->modified_ms = now_ms();
  index_put(c, c->count);
  ++c->count;
  return r;
}

static int update_record(crm_connector *c, mem_record *r, const char *data, size_t data_len) {
  char *merged = merge_objects(r->data, data, data_len);
  if (!merged) return 0;
  free(r->data);
  r->data = merged;
  r->deleted = 0;
  r->seq = ++c->last_seq;
  r->modified_ms = now_ms();
  return 1;
}

static void mark_deleted(crm_connector *c, mem_record *r) {
  r->deleted = 1;
  r->seq = ++c->last_seq;
  r->modified_ms = now_ms();
}

/* ---- crm.connector.v1 ---- */

static const char k_describe[] =
    "{\"name\":\"memory\",\"display_name\":\"In-memory CRM (example connector)\","
    "\"objects\":[{\"name\":\"contact\",\"id_field\":\"id\"},{\"name\":\"company\",\"id_field\":"
    "\"id\"},"
    "{\"name\":\"deal\",\"id_field\":\"id\"}],"
    "\"capabilities\":[\"check\",\"poll\",\"fetch\",\"push\",\"webhook\",\"cancel\"],"
    "\"push_modes\":[\"upsert\",\"create\",\"update\",\"delete\",\"archive\",\"match\"],"
    "\"match_normalize\":[\"trim\",\"lower\"],\"max_batch\":100,"
    "\"settings_schema\":{\"$schema\":\"http://json-schema.org/draft-04/"
    "schema#\",\"type\":\"object\","
    "\"additionalProperties\":false,\"required\":[\"webhook_secret\"],\"properties\":{"
    "\"webhook_secret\":{\"type\":\"string\",\"minLength\":8,\"description\":\"shared secret "
    "expected "
    "in the X-Memory-Secret header of webhook deliveries\"},"
    "\"seed\":{\"type\":\"array\",\"description\":\"records present at creation\",\"items\":{"
    "\"type\":\"object\",\"required\":[\"object\",\"data\"],\"properties\":{"
    "\"object\":{\"enum\":[\"contact\",\"company\",\"deal\"]},\"id\":{\"type\":\"string\"},"
    "\"data\":{\"type\":\"object\"},\"modified_ms\":{\"type\":\"number\",\"description\":"
    "\"when it was last modified (Unix ms; default: now)\"}}}}}}}";

static crm_status memory_describe(crm_sink *out, crm_error *err) {
  crm_str data;
  crm_status emitted;
  data.ptr = k_describe;
  data.len = sizeof k_describe - 1;
  emitted = out->emit(out, data);
  return emitted < 0 ? fail(err, emitted, "the host refused the description") : CRM_OK;
}

static void memory_destroy(crm_connector *c) {
  size_t i;
  if (!c) return;
  for (i = 0; i < c->count; ++i) {
    free(c->records[i].object);
    free(c->records[i].id);
    free(c->records[i].data);
  }
  free(c->records);
  free(c->slots);
  free(c->webhook_secret);
  free(c);
}

static crm_status memory_create(crm_host_instance *instance, crm_str settings, crm_connector **out,
                                crm_error *err) {
  tj_value root;
  char error[160];
  const tj_value *seed;
  const char *secret;
  crm_connector *c;
  size_t i;
  if (!tj_parse(settings.ptr, settings.len, &root, error, sizeof error))
    return fail(err, CRM_ERR_INVALID_INPUT, "settings: %s", error);
  secret = tj_get_string(&root, "webhook_secret");
  if (!secret || strlen(secret) < 8) {
    tj_free(&root);
    return fail(err, CRM_ERR_INVALID_INPUT,
                "settings.webhook_secret: a string of 8 or more characters is required");
  }
  c = (crm_connector *)calloc(1, sizeof *c);
  if (!c || !(c->webhook_secret = dup_n(secret, strlen(secret)))) {
    free(c);
    tj_free(&root);
    return fail(err, CRM_ERR_INTERNAL, "out of memory");
  }
  c->instance = instance;
  atomic_init(&c->cancel_requested, 0);
  seed = tj_get(&root, "seed");
  for (i = 0; seed && seed->type == TJ_ARRAY && i < seed->count; ++i) {
    const tj_value *item = &seed->children[i];
    const char *object = tj_get_string(item, "object");
    const tj_value *data = tj_get(item, "data"), *modified = tj_get(item, "modified_ms");
    mem_record *r = NULL;
    if (!known_object(object) || !data || data->type != TJ_OBJECT ||
        !(r = insert_record(c, object, tj_get_string(item, "id"), settings.ptr + data->raw_begin,
                            data->raw_end - data->raw_begin))) {
      memory_destroy(c);
      tj_free(&root);
      return fail(err, CRM_ERR_INVALID_INPUT,
                  "settings.seed[%zu]: needs a known object and a data object", i);
    }
    /* A record as old as the test needs (first links compare modification times). */
    if (modified && modified->type == TJ_NUMBER) r->modified_ms = (long long)modified->number;
  }
  tj_free(&root);
  *out = c;
  return CRM_OK;
}

static crm_status memory_check(crm_connector *c, crm_sink *out, crm_error *err) {
  tj_buf b = {0};
  char line[96];
  snprintf(line, sizeof line, "{\"ok\":true,\"message\":\"in-memory store holding %zu records\"}",
           c->count);
  tj_buf_str(&b, line);
  return emit(out, &b, CRM_OK, err);
}

static int by_seq(const void *a, const void *b) {
  const mem_record *ra = *(const mem_record *const *)a, *rb = *(const mem_record *const *)b;
  return ra->seq < rb->seq ? -1 : ra->seq > rb->seq;
}

static crm_status memory_poll(crm_connector *c, crm_str request, crm_sink *out, crm_error *err) {
  tj_value req;
  char error[160], cursor_text[24];
  const char *object, *cursor;
  const tj_value *limit_v;
  unsigned long long after = 0, next;
  size_t i, n = 0, limit = 100;
  mem_record **page;
  tj_buf b = {0};
  atomic_store(&c->cancel_requested, 0);
  if (!tj_parse(request.ptr, request.len, &req, error, sizeof error))
    return fail(err, CRM_ERR_INVALID_INPUT, "poll request: %s", error);
  object = tj_get_string(&req, "object");
  cursor = tj_get_string(&req, "cursor");
  limit_v = tj_get(&req, "limit");
  if (!known_object(object)) {
    tj_free(&req);
    return fail(err, CRM_ERR_UNSUPPORTED,
                "poll: unknown object; expected contact, company or deal");
  }
  if (cursor && *cursor) after = strtoull(cursor, NULL, 10);
  if (limit_v && limit_v->type == TJ_NUMBER && limit_v->number >= 1)
    limit = (size_t)limit_v->number;
  page = (mem_record **)malloc((c->count + 1) * sizeof *page);
  if (!page) {
    tj_free(&req);
    return fail(err, CRM_ERR_INTERNAL, "out of memory");
  }
  for (i = 0; i < c->count; ++i) {
    if (atomic_load(&c->cancel_requested)) {
      free(page);
      tj_free(&req);
      return fail(err, CRM_ERR_CANCELLED, "poll cancelled");
    }
    if (c->records[i].seq > after && strcmp(c->records[i].object, object) == 0)
      page[n++] = &c->records[i];
  }
  qsort(page, n, sizeof *page, by_seq);
  next = after;
  tj_buf_str(&b, "{\"records\":[");
  for (i = 0; i < n && i < limit; ++i) {
    if (i) tj_buf_str(&b, ",");
    write_record(&b, page[i]);
    next = page[i]->seq;
  }
  snprintf(cursor_text, sizeof cursor_text, "%llu", next);
  tj_buf_str(&b, "],\"next_cursor\":\"");
  tj_buf_str(&b, cursor_text);
  snprintf(cursor_text, sizeof cursor_text, "%zu", n > limit ? n - limit : 0);
  tj_buf_str(&b, "\",\"remaining\":"); /* lets the host show an ETA */
  tj_buf_str(&b, cursor_text);
  tj_buf_str(&b, "}");
  free(page);
  tj_free(&req);
  return emit(out, &b, n > limit ? CRM_MORE : CRM_OK, err);
}

static crm_status memory_fetch(crm_connector *c, crm_str request, crm_sink *out, crm_error *err) {
  tj_value req;
  char error[160];
  const char *object;
  const tj_value *ids;
  size_t i;
  int first = 1, first_missing = 1;
  tj_buf missing = {0}, b = {0};
  if (!tj_parse(request.ptr, request.len, &req, error, sizeof error))
    return fail(err, CRM_ERR_INVALID_INPUT, "fetch request: %s", error);
  object = tj_get_string(&req, "object");
  ids = tj_get(&req, "ids");
  if (!known_object(object) || !ids || ids->type != TJ_ARRAY) {
    tj_free(&req);
    return fail(err, CRM_ERR_INVALID_INPUT,
                "fetch request: needs a known \"object\" and an \"ids\" array");
  }
  tj_buf_str(&b, "{\"records\":[");
  for (i = 0; i < ids->count; ++i) {
    const tj_value *id = &ids->children[i];
    mem_record *r = id->type == TJ_STRING ? find_by_id(c, object, id->str) : NULL;
    if (r && !r->deleted) {
      if (!first) tj_buf_str(&b, ",");
      write_record(&b, r);
      first = 0;
    } else {
      if (!first_missing) tj_buf_str(&missing, ",");
      tj_buf_raw(&missing, request.ptr + id->raw_begin, id->raw_end - id->raw_begin);
      first_missing = 0;
    }
  }
  tj_buf_str(&b, "],\"missing\":[");
  if (missing.data) tj_buf_raw(&b, missing.data, missing.len);
  tj_buf_str(&b, "]}");
  b.failed |= missing.failed;
  tj_buf_free(&missing);
  tj_free(&req);
  return emit(out, &b, CRM_OK, err);
}

static void write_push_error(tj_buf *b, const char *ref, const char *code, const char *message) {
  tj_buf_str(b, "{\"ref\":");
  tj_buf_quoted(b, ref, strlen(ref));
  tj_buf_str(b, ",\"status\":\"error\",\"code\":\"");
  tj_buf_str(b, code);
  tj_buf_str(b, "\",\"retryable\":false,\"message\":");
  tj_buf_quoted(b, message, strlen(message));
  tj_buf_str(b, "}");
}

static void write_push_ok(tj_buf *b, const char *ref, const mem_record *r, int created) {
  tj_buf_str(b, "{\"ref\":");
  tj_buf_quoted(b, ref, strlen(ref));
  tj_buf_str(b, ",\"status\":\"ok\",\"id\":");
  tj_buf_quoted(b, r->id, strlen(r->id));
  tj_buf_str(b, created ? ",\"created\":true}" : ",\"created\":false}");
}

/* Applies one push input; writes its result. */
static void push_one(crm_connector *c, const char *object, const char *mode, const char *match_on,
                     unsigned normalize, const tj_value *item, const char *text, tj_buf *b) {
  const char *ref = tj_get_string(item, "ref"), *id = tj_get_string(item, "id");
  const tj_value *data = tj_get(item, "data"), *key = NULL;
  /* delete, archive and match only name a record: they need no data */
  const int names_only =
      !strcmp(mode, "delete") || !strcmp(mode, "archive") || !strcmp(mode, "match");
  const int create = strcmp(mode, "create") == 0;
  mem_record *r = NULL;
  char message[200];
  if (!ref) ref = "";
  if (!names_only && (!data || data->type != TJ_OBJECT)) {
    write_push_error(b, ref, "invalid_input", "\"data\" must be an object");
    return;
  }
  /* A given id is the only lookup: a deleted or unknown record is not_found, never matched on
   * the key nor created again. */
  if (!create && id) {
    r = find_by_id(c, object, id);
    if (r && r->deleted) r = NULL;
  } else if (!create && match_on && data && data->type == TJ_OBJECT &&
             (key = tj_get(data, match_on)) && key->type != TJ_NULL) {
    r = find_by_field(c, object, match_on, key, normalize);
  }
  if (create || (!r && !id && strcmp(mode, "upsert") == 0)) {
    r = insert_record(c, object, NULL, text + data->raw_begin, data->raw_end - data->raw_begin);
    if (r)
      write_push_ok(b, ref, r, 1);
    else
      write_push_error(b, ref, "internal", "out of memory");
    return;
  }
  if (!r) {
    if (id)
      snprintf(message, sizeof message, "no %s has id %.64s", object, id);
    else if (match_on)
      snprintf(message, sizeof message, "no %s has this %.64s", object, match_on);
    else
      snprintf(message, sizeof message, "no id and no match_on to find the %s by", object);
    write_push_error(b, ref, "not_found", message);
    return;
  }
  if (strcmp(mode, "delete") == 0 || strcmp(mode, "archive") == 0) {
    mark_deleted(c, r); /* no archive here: an archive is a delete */
  } else if (strcmp(mode, "match") != 0 &&
             !update_record(c, r, text + data->raw_begin, data->raw_end - data->raw_begin)) {
    write_push_error(b, ref, "internal", "out of memory");
    return;
  }
  write_push_ok(b, ref, r, 0);
}

/* Reads "match_normalize" into NORMALIZE_* bits; 0 with `error` set for an unknown step. */
static int read_normalize(const tj_value *steps, unsigned *out, char *error, size_t error_size) {
  size_t i;
  *out = 0;
  if (!steps || steps->type == TJ_NULL) return 1;
  if (steps->type != TJ_ARRAY) {
    snprintf(error, error_size, "\"match_normalize\" must be an array of step names");
    return 0;
  }
  for (i = 0; i < steps->count; ++i) {
    const tj_value *step = &steps->children[i];
    if (step->type == TJ_STRING && strcmp(step->str, "trim") == 0) {
      *out |= NORMALIZE_TRIM;
    } else if (step->type == TJ_STRING && strcmp(step->str, "lower") == 0) {
      *out |= NORMALIZE_LOWER;
    } else {
      snprintf(error, error_size, "match_normalize step \"%.64s\" is unknown (known: trim, lower)",
               step->type == TJ_STRING ? step->str : "(not a string)");
      return 0;
    }
  }
  return 1;
}

static crm_status memory_push(crm_connector *c, crm_str request, crm_sink *out, crm_error *err) {
  tj_value req;
  char error[160];
  const char *object, *mode, *match_on;
  const tj_value *records;
  unsigned normalize;
  size_t i;
  tj_buf b = {0};
  if (!tj_parse(request.ptr, request.len, &req, error, sizeof error))
    return fail(err, CRM_ERR_INVALID_INPUT, "push request: %s", error);
  object = tj_get_string(&req, "object");
  mode = tj_get_string(&req, "mode");
  match_on = tj_get_string(&req, "match_on");
  records = tj_get(&req, "records");
  if (!mode) mode = "upsert";
  if (!known_object(object) || !records || records->type != TJ_ARRAY ||
      (strcmp(mode, "upsert") && strcmp(mode, "create") && strcmp(mode, "update") &&
       strcmp(mode, "delete") && strcmp(mode, "archive") && strcmp(mode, "match"))) {
    tj_free(&req);
    return fail(err, CRM_ERR_INVALID_INPUT,
                "push request: needs a known \"object\", a \"records\" array and a mode of upsert, "
                "create, update, delete, archive or match");
  }
  if (!read_normalize(tj_get(&req, "match_normalize"), &normalize, error, sizeof error)) {
    tj_free(&req);
    return fail(err, CRM_ERR_INVALID_INPUT, "push request: %s", error);
  }
  if (records->count > MEMORY_MAX_BATCH) {
    const size_t count = records->count; /* read before tj_free releases `records` */
    tj_free(&req);
    return fail(err, CRM_ERR_INVALID_INPUT, "push request: %zu records exceed max_batch %d", count,
                MEMORY_MAX_BATCH);
  }
  tj_buf_str(&b, "{\"results\":[");
  for (i = 0; i < records->count; ++i) {
    if (i) tj_buf_str(&b, ",");
    push_one(c, object, mode, match_on, normalize, &records->children[i], request.ptr, &b);
  }
  tj_buf_str(&b, "]}");
  tj_free(&req);
  return emit(out, &b, CRM_OK, err);
}

static int equals_ignore_case(const char *a, size_t a_len, const char *b) {
  size_t i;
  if (a_len != strlen(b)) return 0;
  for (i = 0; i < a_len; ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
    if (x != y) return 0;
  }
  return 1;
}

/* Compares in time independent of where the first difference is. */
static int constant_time_equals(const char *a, size_t a_len, const char *b, size_t b_len) {
  size_t i;
  unsigned char diff = (unsigned char)(a_len != b_len);
  for (i = 0; i < a_len && i < b_len; ++i) diff |= (unsigned char)(a[i] ^ b[i]);
  return diff == 0;
}

static crm_status memory_webhook(crm_connector *c, crm_str request, crm_str body, crm_sink *out,
                                 crm_error *err) {
  tj_value req, records;
  char error[160];
  const tj_value *headers, *secret = NULL;
  size_t i;
  tj_buf b = {0};
  if (!tj_parse(request.ptr, request.len, &req, error, sizeof error))
    return fail(err, CRM_ERR_INVALID_INPUT, "webhook request: %s", error);
  headers = tj_get(&req, "headers");
  for (i = 0; headers && headers->type == TJ_ARRAY && i < headers->count; ++i) {
    const tj_value *pair = &headers->children[i];
    if (pair->type == TJ_ARRAY && pair->count == 2 && pair->children[0].type == TJ_STRING &&
        pair->children[1].type == TJ_STRING &&
        equals_ignore_case(pair->children[0].str, pair->children[0].str_len, "x-memory-secret"))
      secret = &pair->children[1];
  }
  if (!secret || !constant_time_equals(secret->str, secret->str_len, c->webhook_secret,
                                       strlen(c->webhook_secret))) {
    tj_free(&req);
    return fail(err, CRM_ERR_UNAUTHORIZED, "webhook: missing or wrong X-Memory-Secret");
  }
  tj_free(&req);
  if (!tj_parse(body.ptr, body.len, &records, error, sizeof error))
    return fail(err, CRM_ERR_INVALID_INPUT, "webhook body: %s", error);
  if (records.type != TJ_ARRAY) {
    tj_free(&records);
    return fail(err, CRM_ERR_INVALID_INPUT, "webhook body: expected a JSON array of records");
  }
  for (i = 0; i < records.count; ++i) { /* validate all before changing anything */
    const tj_value *item = &records.children[i], *data = tj_get(item, "data");
    const tj_value *deleted = tj_get(item, "deleted");
    int is_delete = deleted && deleted->type == TJ_TRUE;
    if (!known_object(tj_get_string(item, "object")) || (is_delete && !tj_get_string(item, "id")) ||
        (!is_delete && (!data || data->type != TJ_OBJECT))) {
      tj_free(&records);
      return fail(err, CRM_ERR_INVALID_INPUT,
                  "webhook body[%zu]: needs a known object and a data object (or an id and "
                  "\"deleted\":true)",
                  i);
    }
  }
  tj_buf_str(&b, "{\"events\":[");
  for (i = 0; i < records.count; ++i) {
    const tj_value *item = &records.children[i], *data = tj_get(item, "data");
    const tj_value *deleted = tj_get(item, "deleted");
    const char *object = tj_get_string(item, "object"), *id = tj_get_string(item, "id");
    mem_record *r = id ? find_by_id(c, object, id) : NULL;
    if (deleted && deleted->type == TJ_TRUE) {
      if (r) mark_deleted(c, r);
      if (i) tj_buf_str(&b, ",");
      tj_buf_str(&b, "{\"object\":");
      tj_buf_quoted(&b, object, strlen(object));
      tj_buf_str(&b, ",\"id\":");
      tj_buf_quoted(&b, id, strlen(id));
      tj_buf_str(&b, ",\"event\":\"delete\"}");
      continue;
    }
    if (r)
      update_record(c, r, body.ptr + data->raw_begin, data->raw_end - data->raw_begin);
    else
      r = insert_record(c, object, id, body.ptr + data->raw_begin, data->raw_end - data->raw_begin);
    if (!r) {
      b.failed = 1;
      break;
    }
    if (i) tj_buf_str(&b, ",");
    tj_buf_str(&b, "{\"object\":");
    tj_buf_quoted(&b, object, strlen(object));
    tj_buf_str(&b, ",\"id\":");
    tj_buf_quoted(&b, r->id, strlen(r->id));
    tj_buf_str(&b, ",\"event\":\"upsert\",\"data\":");
    tj_buf_str(&b, r->data);
    tj_buf_str(&b, "}");
  }
  tj_buf_str(&b, "]}");
  tj_free(&records);
  return emit(out, &b, CRM_OK, err);
}

static void memory_cancel(crm_connector *c) {
  atomic_store(&c->cancel_requested, 1);
}

/* ---- the entry ---- */

static const crm_connector_v1 k_connector = {sizeof(crm_connector_v1),
                                             0,
                                             memory_describe,
                                             memory_create,
                                             memory_destroy,
                                             memory_check,
                                             memory_poll,
                                             memory_fetch,
                                             memory_push,
                                             memory_webhook,
                                             memory_cancel};

static crm_status memory_negotiate(uint32_t *inout_abi_version) {
  if (CRM_VERSION_MAJOR(*inout_abi_version) != CRM_VERSION_MAJOR(CRM_ABI_VERSION)) {
    *inout_abi_version = CRM_ABI_VERSION;
    return CRM_ERR_INCOMPATIBLE;
  }
  if (*inout_abi_version > CRM_ABI_VERSION) *inout_abi_version = CRM_ABI_VERSION;
  return CRM_OK;
}

static crm_status memory_init(const crm_host_api *host, crm_error *err) {
  (void)err;
  g_host = host;
  return CRM_OK;
}

static void memory_deinit(void) {
  g_host = NULL;
}

static const void *memory_get_interface(const char *id) {
  return id && strcmp(id, CRM_CONNECTOR_V1) == 0 ? &k_connector : NULL;
}

#ifndef MEMORY_PLUGIN_ID /* fixtures rebuild this file under another id */
#define MEMORY_PLUGIN_ID "memory"
#endif

CRM_EXPORT const crm_plugin_entry *crm_plugin_get_entry(void) {
  static const crm_plugin_entry entry = {
      sizeof(crm_plugin_entry), CRM_ABI_VERSION,  MEMORY_PLUGIN_ID, "1.0.0",
      "crmhost examples",       memory_negotiate, memory_init,      memory_deinit,
      memory_get_interface};
  return &entry;
}
