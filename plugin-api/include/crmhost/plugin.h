/*
 * crmhost plugin ABI, version 1.
 *
 * The only contract between the crmhost host and a provider plugin. Plain C11, depends on
 * <stdint.h> and <stddef.h> alone. The JSON documents that cross it are described in
 * plugin-api/README.md.
 *
 * Rules that hold for every declaration below:
 *  - Every struct that crosses starts with `struct_size` (sizeof as compiled by its creator), grows
 *    only at the end, and holds only fixed-width integers, pointers and crm_str. A reader copies
 *    min(struct_size, sizeof) into a zeroed struct and checks that an optional field lies inside
 *    struct_size (CRM_HAS_FIELD) before using it.
 *  - Memory is never freed by the side that did not allocate it. Inputs are lent for the duration
 *    of the call. Outputs leave through a crm_sink owned by the receiver, which copies at once.
 *  - Strings are UTF-8 and length-delimited (crm_str); they need not be NUL-terminated unless the
 *    declaration says `const char *` (then NUL-terminated, static storage unless stated).
 *  - Thread tags:
 *      [control]             called from the host's one control thread (the thread that starts,
 *                            reloads and stops the host's pipelines and creates and destroys
 *                            connectors; a host without one, such as a CLI command, calls from
 *                            its main thread), never concurrently with any other call into the
 *                            same plugin. `destroy` runs there too, wherever the host released
 *                            the connector's last reference.
 *      [instance-serialized] never two at once on one connector instance; calls on different
 *                            instances may run in parallel, on any thread of the host's blocking
 *                            pool (never on its network threads, so blocking is allowed).
 *      [thread-safe]         any thread, any time, concurrently with anything.
 */
#ifndef CRMHOST_PLUGIN_H
#define CRMHOST_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CRM_EXPORT __declspec(dllexport)
#else
#define CRM_EXPORT __attribute__((visibility("default")))
#endif

/* ---- Versions ---------------------------------------------------------------------------- */

/* Major in bits 22-31, minor in 12-21, patch in 0-11, as Vulkan's VK_MAKE_VERSION. */
#define CRM_MAKE_VERSION(maj, min, pat) \
  ((((uint32_t)(maj)) << 22) | (((uint32_t)(min)) << 12) | ((uint32_t)(pat)))
#define CRM_VERSION_MAJOR(v) (((uint32_t)(v)) >> 22)
#define CRM_VERSION_MINOR(v) ((((uint32_t)(v)) >> 12) & 0x3FFu)
#define CRM_VERSION_PATCH(v) (((uint32_t)(v)) & 0xFFFu)

/* The ABI this header describes. Majors must match exactly; minors are negotiated. */
#define CRM_ABI_VERSION CRM_MAKE_VERSION(1, 0, 0)

/* The name of the one exported entry function. */
#define CRM_ENTRY_SYMBOL "crm_plugin_get_entry"

/* True when a struct of the given (received) size contains the whole of `field`. */
#define CRM_HAS_FIELD(ptr, type, field) \
  ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* ---- Status codes -------------------------------------------------------------------------- */

/* 0 ok, >0 a non-error status, <0 an error. A reader maps unknown negative codes to
 * CRM_ERR_INTERNAL and unknown positive codes to CRM_OK. */
typedef int32_t crm_status;
#define CRM_OK 0
#define CRM_MORE 1                 /* poll: this page is complete and more pages follow */
#define CRM_ERR_INVALID_INPUT (-1) /* the request (or a webhook) is malformed: permanent */
#define CRM_ERR_UNAUTHORIZED (-2)  /* credentials refused, or a webhook signature is wrong */
#define CRM_ERR_RATE_LIMITED (-3)  /* retry after crm_error.retry_after_ms */
#define CRM_ERR_TRANSPORT (-4)     /* network failure or timeout: retryable */
#define CRM_ERR_REMOTE (-5)        /* the provider answered an error; see http_status */
#define CRM_ERR_UNSUPPORTED (-6)   /* this operation, object or mode is not supported */
#define CRM_ERR_CANCELLED (-7)     /* cancel() was called while the operation ran */
#define CRM_ERR_INCOMPATIBLE (-8)  /* ABI versions cannot be reconciled */
#define CRM_ERR_INTERNAL (-9)      /* a bug or an unexpected state inside the plugin */
#define CRM_ERR_NOT_FOUND (-10)    /* a requested record or state key does not exist */

/* Log levels for crm_host_api.log. */
#define CRM_LOG_TRACE 0
#define CRM_LOG_DEBUG 1
#define CRM_LOG_INFO 2
#define CRM_LOG_WARN 3
#define CRM_LOG_ERROR 4

/* ---- Basic types --------------------------------------------------------------------------- */

/* A borrowed UTF-8 (or, where stated, binary) buffer. Valid for the duration of the call that
 * passes it, owned by the caller. `ptr` may be NULL only when `len` is 0. */
typedef struct crm_str {
  const char *ptr;
  size_t len;
} crm_str;

/* Caller-owned error report. The caller zeroes it and sets struct_size; the callee fills what it
 * knows on failure. Reporting an error never allocates. */
typedef struct crm_error {
  uint32_t struct_size;
  crm_status code;        /* the same value the function returned */
  int32_t http_status;    /* the provider's HTTP status behind the error, 0 if none */
  int32_t retry_after_ms; /* >0: do not retry before this many ms; 0: caller decides */
  int32_t retryable;      /* 1 retry may succeed, 0 permanent, -1 derive from code */
  int32_t reserved;       /* zero */
  char message[512];      /* NUL-terminated, truncated to fit; never contains secrets */
} crm_error;

/* An output channel. Owned by the receiving side (the host for connector results, the plugin
 * for host-extension results). `emit` copies the buffer before it returns, so the emitter may
 * free or reuse it at once. Unless a function states otherwise it is called at most once per
 * call, with one complete JSON document. [called on the thread of the call it belongs to] */
typedef struct crm_sink {
  uint32_t struct_size;
  uint32_t reserved; /* zero */
  void *user_data;   /* owned by the sink's owner; opaque to the emitter */
  crm_status (*emit)(struct crm_sink *sink, crm_str data);
} crm_sink;

/* Opaque host-side handle for one connector instance (one configured connection). Passed to
 * create(); valid until destroy() of that instance returns. Host extensions take it so that rate
 * limits, state and log lines belong to the right connection. */
typedef struct crm_host_instance crm_host_instance;

/* ---- Services the host offers -------------------------------------------------------------- */

typedef struct crm_host_api {
  uint32_t struct_size;
  uint32_t abi_version; /* the version negotiated with this plugin */
  void *host_data;      /* owned by the host; opaque to the plugin */
  /* [thread-safe] Writes a log line. `instance` may be NULL (plugin-wide). The host prefixes the
   * plugin id and connection; the message should not contain secrets (the host redacts known
   * credential shapes anyway). */
  void (*log)(const struct crm_host_api *host, crm_host_instance *instance, int32_t level,
              crm_str message);
  /* [thread-safe] Returns the extension table for `id` (e.g. CRM_EXT_HTTP_V1), or NULL when the
   * host lacks it. The table is owned by the host and valid until deinit() returns. */
  const void *(*get_extension)(const struct crm_host_api *host, const char *id);
  /* [thread-safe] Wall-clock time as Unix milliseconds (the host may run a test clock). */
  int64_t (*now_ms)(const struct crm_host_api *host);
} crm_host_api;

/* Outbound HTTP through the host: TLS, keep-alive, timeouts, the connection's rate limit, retry of
 * 429/5xx with Retry-After and jittered backoff, metrics and credential redaction in logs. */
#define CRM_EXT_HTTP_V1 "crm.http.v1"

typedef struct crm_http_header {
  crm_str name;
  crm_str value;
} crm_http_header;

#define CRM_HTTP_NO_RETRY 0x1u /* the plugin handles 429/5xx itself: the host tries once */
/* The call is safe to repeat: lets the host retry a POST or PATCH (GET, HEAD, PUT, DELETE and
 * OPTIONS are retried without it). */
#define CRM_HTTP_IDEMPOTENT 0x2u

typedef struct crm_http_request {
  uint32_t struct_size;
  uint32_t flags;                 /* CRM_HTTP_* bits */
  crm_str method;                 /* "GET", "POST", ... */
  crm_str url;                    /* absolute, http or https */
  const crm_http_header *headers; /* lent for the call; may be NULL when header_count is 0 */
  uint32_t header_count;
  uint32_t timeout_ms;       /* whole exchange, 0 = host default */
  crm_str body;              /* binary allowed */
  crm_str rate_limit_bucket; /* empty = the connection's default bucket (e.g. "search") */
} crm_http_request;

typedef struct crm_http_response {
  uint32_t struct_size;
  int32_t status;                 /* HTTP status code */
  const crm_http_header *headers; /* lent for the callback */
  uint32_t header_count;
  uint32_t attempts; /* how many tries the host made */
  crm_str body;      /* lent for the callback; binary allowed */
} crm_http_response;

/* Plugin-owned receiver of a response; the host calls on_response once, before request()
 * returns, with buffers lent for the callback only. */
typedef struct crm_http_response_sink {
  uint32_t struct_size;
  uint32_t reserved;
  void *user_data; /* owned by the plugin */
  void (*on_response)(struct crm_http_response_sink *sink, const crm_http_response *response);
} crm_http_response_sink;

typedef struct crm_http_v1 {
  uint32_t struct_size;
  uint32_t reserved;
  /* [instance-serialized; call only from within a call on that instance] Performs the request,
   * blocking the calling thread. CRM_OK when any HTTP response arrived (whatever its status; it
   * is passed to `out`); an error status (CRM_ERR_TRANSPORT, CRM_ERR_RATE_LIMITED when the
   * connection's budget is exhausted beyond the wait the host allows, CRM_ERR_CANCELLED) with
   * `err` filled otherwise. */
  crm_status (*request)(crm_host_instance *instance, const crm_http_request *request,
                        crm_http_response_sink *out, crm_error *err);
} crm_http_v1;

/* Small per-connection key-value state, durable and encrypted at rest by the host: refreshed
 * OAuth tokens, webhook channel ids. Keys up to 256 bytes, values up to 64 KiB, binary allowed. */
#define CRM_EXT_STATE_V1 "crm.state.v1"

typedef struct crm_state_v1 {
  uint32_t struct_size;
  uint32_t reserved;
  /* [instance-serialized; within a call on that instance] CRM_OK with the value emitted once to
   * `out` (plugin-owned), or CRM_ERR_NOT_FOUND. */
  crm_status (*get)(crm_host_instance *instance, crm_str key, crm_sink *out, crm_error *err);
  /* [as get] Stores the value durably before returning CRM_OK. */
  crm_status (*put)(crm_host_instance *instance, crm_str key, crm_str value, crm_error *err);
  /* [as get] CRM_OK whether or not the key existed. */
  crm_status (*remove)(crm_host_instance *instance, crm_str key, crm_error *err);
} crm_state_v1;

/* ---- The connector interface ------------------------------------------------------------- */

#define CRM_CONNECTOR_V1 "crm.connector.v1"

/* Opaque plugin-side connector instance, created by create() and freed only by destroy(). */
typedef struct crm_connector crm_connector;

/* Every function writes exactly one JSON result to `out` on success (CRM_OK or CRM_MORE) and
 * nothing on failure, where it fills `err` instead. Request and result shapes: README.md. */
typedef struct crm_connector_v1 {
  uint32_t struct_size;
  uint32_t reserved;
  /* [control] required. The plugin's description: objects, capabilities, settings schema. */
  crm_status (*describe)(crm_sink *out, crm_error *err);
  /* [control] required. Creates an instance from `settings` (JSON object, already validated
   * against the schema by the host). `instance` is host-owned and outlives the connector. */
  crm_status (*create)(crm_host_instance *instance, crm_str settings, crm_connector **out_connector,
                       crm_error *err);
  /* [control] required. Frees the connector; no other call on it is running or will follow. */
  void (*destroy)(crm_connector *connector);
  /* [instance-serialized] required. Health check against the provider. */
  crm_status (*check)(crm_connector *connector, crm_sink *out, crm_error *err);
  /* [instance-serialized] capability "poll". One page after a cursor; CRM_MORE when more follow. */
  crm_status (*poll)(crm_connector *connector, crm_str request, crm_sink *out, crm_error *err);
  /* [instance-serialized] capability "fetch". Full records by id. */
  crm_status (*fetch)(crm_connector *connector, crm_str request, crm_sink *out, crm_error *err);
  /* [instance-serialized] capability "push". One result per input record, in order. */
  crm_status (*push)(crm_connector *connector, crm_str request, crm_sink *out, crm_error *err);
  /* [instance-serialized] capability "webhook". Verifies and parses one inbound delivery:
   * `request` is JSON (method, url, headers, received_at_ms), `body` the raw bytes as received.
   * A wrong signature returns CRM_ERR_UNAUTHORIZED; a malformed delivery CRM_ERR_INVALID_INPUT. */
  crm_status (*webhook)(crm_connector *connector, crm_str request, crm_str body, crm_sink *out,
                        crm_error *err);
  /* [thread-safe] optional. Asks the call running on `connector`, if any, to stop soon with
   * CRM_ERR_CANCELLED. Never blocks; harmless when nothing runs. */
  void (*cancel)(crm_connector *connector);
} crm_connector_v1;

/* ---- Optional interfaces ------------------------------------------------------------------ */

/* Periodic upkeep of a connection that the provider needs kept alive: a notification channel
 * renewed before it expires, re-created when the provider lost it, stopped at shutdown. A plugin
 * offers it by returning this table from get_interface(CRM_MAINTENANCE_V1); the host then calls
 * `maintain` once after create, again when the plugin asks, and once at shutdown. */
#define CRM_MAINTENANCE_V1 "crm.maintenance.v1"

typedef struct crm_maintenance_v1 {
  uint32_t struct_size;
  uint32_t reserved;
  /* [instance-serialized] required in this table. `request` is JSON
   * {"reason": "start" | "periodic" | "shutdown"}. Writes
   * {"next_in_ms": N, "status": {...}}: N > 0 asks for the next call in N ms (the host waits at
   * least 1 s), 0 for none until the next start; `status` is a JSON object without secrets that
   * the host shows in `crmhost status` and the admin API. A failure fills `err`: the host logs it
   * and calls again with backoff, sooner when `err->retry_after_ms` says so. */
  crm_status (*maintain)(crm_connector *connector, crm_str request, crm_sink *out, crm_error *err);
} crm_maintenance_v1;

/* ---- The entry ----------------------------------------------------------------------------- */

typedef struct crm_plugin_entry {
  uint32_t struct_size;
  uint32_t abi_version; /* CRM_ABI_VERSION as the plugin was compiled */
  const char *id;       /* static; [a-z0-9][a-z0-9_.-]*, unique among loaded plugins */
  const char *version;  /* static; the plugin's own version, e.g. "1.4.2" */
  const char *vendor;   /* static; who ships it */
  /* [control] called first, before anything else. On entry *inout is the host's ABI version;
   * the plugin writes the version it will speak (same major, minor <= the host's) and returns
   * CRM_OK, or returns CRM_ERR_INCOMPATIBLE leaving in *inout the lowest version it needs. */
  crm_status (*negotiate)(uint32_t *inout_abi_version);
  /* [control] after negotiate. `host` is valid until deinit() returns. */
  crm_status (*init)(const crm_host_api *host, crm_error *err);
  /* [control] last call; every connector has been destroyed. */
  void (*deinit)(void);
  /* [thread-safe after init] The interface table for `id` (CRM_CONNECTOR_V1), or NULL.
   * Static storage, valid until the library is unloaded. */
  const void *(*get_interface)(const char *id);
} crm_plugin_entry;

/* The one exported function. Returns static storage; may be called before negotiate, from the
 * control thread, any number of times. */
typedef const crm_plugin_entry *(*crm_plugin_get_entry_fn)(void);
CRM_EXPORT const crm_plugin_entry *crm_plugin_get_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* CRMHOST_PLUGIN_H */
