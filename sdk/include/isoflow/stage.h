/*
 * isoflow/stage.h - the one header a stage author includes.
 *
 * A stage is a C file that defines some of the functions below (stage_init,
 * stage_process, stage_produce, stage_actuation, stage_migrate) and calls
 * the if_* functions to emit messages, send actuations back to the device
 * that caused the current message, log, read the time and message metadata,
 * and keep key-value state held by the host.  The same source builds to a
 * WebAssembly module (clang-19 --target=wasm32) and to a native shared
 * object with identical behaviour:
 *
 *     isoflow build my_stage.c -o my_stage.wasm
 *     isoflow build --native my_stage.c -o my_stage.so
 *
 * The SDK runtime (sdk/src/stage_sdk.c, compiled into every stage by the
 * build helpers) provides the ABI exports listed at the end of this file.
 *
 * Messages are byte strings (the home example uses small JSON objects; see
 * isoflow/json.h for a tiny allocation-free field reader).  A message handed
 * to stage_process is borrowed: it is valid until stage_process returns.
 */
#ifndef ISOFLOW_STAGE_H
#define ISOFLOW_STAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- What a stage may define (all optional except as the flow needs) ---- */

/* Called once per instance before any message, with the configuration string
 * of the stage's declaration (not NUL-terminated; len bytes).  Return 0 on
 * success; anything else fails the start (or the code swap) of the stage. */
int stage_init(const char *config, size_t len);

/* Called for every message arriving from upstream.  Emit zero or more
 * messages with if_emit().  Return 0; a negative value counts as an error
 * (the message goes to the dead-letter file). */
int stage_process(const uint8_t *msg, size_t len);

/* Sources only: called by the runtime according to the source's mode
 * (push: on its schedule; pull: when the consumer asks; demand: when credits
 * allow).  Emit the readings that are ready with if_emit(). */
int stage_produce(void);

/* Called when an actuation message travelling back upstream reaches this
 * stage.  Forward it further upstream with if_actuate() (possibly changed)
 * or drop it by not forwarding.  A stage that does not define
 * stage_actuation passes actuations through unchanged.  At the device end,
 * the actuation is delivered to the source's actuator stage (or the source
 * itself). */
int stage_actuation(const uint8_t *msg, size_t len);

/* Live update: called once on a new version's instance, after stage_init,
 * with the version number of the code it replaces (0 when unknown). */
int stage_migrate(int32_t from_version);

/* ---- What a stage may call ---------------------------------------------- */

/* Emits a message downstream; it inherits the current message's origin
 * device, sequence number and timestamp (a source's message gets new ones).
 * Returns 0, or a negative IF_E* code (e.g. too large, too many emits). */
int if_emit(const void *data, size_t len);
/* Same, with a topic (at most 31 bytes) instead of the stage's name. */
int if_emit_topic(const char *topic, const void *data, size_t len);
/* Sends an actuation back upstream to the device that originated the
 * current message. */
int if_actuate(const void *data, size_t len);

enum { IF_LOG_DEBUG = 0, IF_LOG_INFO = 1, IF_LOG_WARN = 2, IF_LOG_ERROR = 3 };
/* Logs a line (printf-style, at most 255 bytes after formatting). */
void if_log(int level, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Wall-clock time in nanoseconds since the Unix epoch. */
int64_t if_now_ns(void);

/* Metadata of the message being processed (or of the source instance when
 * called from stage_produce / stage_init). */
enum {
    IF_META_SEQ = 0,     /* per-origin sequence number (u64) */
    IF_META_TS = 1,      /* production time, ns since the epoch */
    IF_META_ORIGIN = 2,  /* origin device index (0-based) */
    IF_META_VERSION = 3  /* this stage's code version */
};
int64_t if_meta(int field);
enum {
    IF_META_ORIGIN_NAME = 0, /* origin device name, e.g. "room-03" */
    IF_META_TOPIC = 1,       /* topic of the current message */
    IF_META_STAGE = 2,       /* this stage's name */
    IF_META_INSTANCE = 3     /* this instance's device name, or the stage name */
};
/* Copies a metadata string into buf (NUL-terminated when cap > 0); returns
 * its full length, or a negative IF_E* code. */
int if_meta_str(int field, char *buf, size_t cap);

/* Key-value state held by the host for this stage instance: it survives a
 * trap-restart of the instance (and, later, code swaps and node restarts).
 * Keys at most 64 bytes, values at most 64 KiB.
 * if_kv_get copies at most cap bytes and returns the value's full length,
 * or IF_ENOTFOUND. */
int if_kv_get(const char *key, void *buf, size_t cap);
int if_kv_set(const char *key, const void *val, size_t len);
int if_kv_del(const char *key);

/* Error codes returned by the if_* functions. */
enum {
    IF_OK = 0,
    IF_ENOTFOUND = -1, /* kv key or metadata missing */
    IF_ETOOBIG = -2,   /* message, key or value too large */
    IF_EFULL = -3,     /* too many emits for one message, or state full */
    IF_EINVAL = -4,    /* bad argument (field, topic) */
    IF_ENOROUTE = -5   /* actuation without a way back (one-way link) */
};

/* ---- The ABI (implemented by the SDK runtime; stage code never calls) -----
 *
 * WebAssembly stages import these functions from module "isoflow" (all
 * pointers are offsets in the stage's memory 0, lengths are i32):
 *   emit(topic_ptr, topic_len, data_ptr, data_len) -> i32   topic_len 0: default
 *   actuate(data_ptr, data_len) -> i32
 *   log(level, ptr, len)
 *   now_ns() -> i64
 *   meta(field) -> i64
 *   meta_str(field, buf_ptr, cap) -> i32
 *   kv_get(key_ptr, key_len, buf_ptr, cap) -> i32
 *   kv_set(key_ptr, key_len, val_ptr, val_len) -> i32
 *   kv_del(key_ptr, key_len) -> i32
 * and export:
 *   isoflow_abi() -> i32             ABI version (1)
 *   isoflow_caps() -> i32            bit 0 process, 1 produce, 2 actuation,
 *                                    3 migrate (which stage_* are defined)
 *   isoflow_buffer(len) -> i32       a buffer of at least len bytes owned by
 *                                    the SDK, reused for every message (the
 *                                    allocation contract: the host writes the
 *                                    message or config there, then calls);
 *                                    0 when it cannot be had
 *   isoflow_init(ptr, len) -> i32
 *   isoflow_process(ptr, len) -> i32
 *   isoflow_produce() -> i32
 *   isoflow_actuation(ptr, len) -> i32
 *   isoflow_migrate(from) -> i32
 *   memory                           linear memory 0
 *
 * Native stages (.so) export `isoflow_bind(const if_host_api *api, void
 * *ctx)` plus the same isoflow_* functions with native pointers; the SDK
 * routes the if_* calls through the table given to isoflow_bind.
 */
#define IF_ABI_VERSION 1
enum { IF_CAP_PROCESS = 1, IF_CAP_PRODUCE = 2, IF_CAP_ACTUATION = 4,
       IF_CAP_MIGRATE = 8 };

typedef struct if_host_api {
    uint32_t abi;  /* IF_ABI_VERSION */
    int (*emit)(void *ctx, const char *topic, size_t topic_len,
                const void *data, size_t len);
    int (*actuate)(void *ctx, const void *data, size_t len);
    void (*log)(void *ctx, int level, const char *text, size_t len);
    int64_t (*now_ns)(void *ctx);
    int64_t (*meta)(void *ctx, int field);
    int (*meta_str)(void *ctx, int field, char *buf, size_t cap);
    int (*kv_get)(void *ctx, const char *key, size_t key_len, void *buf,
                  size_t cap);
    int (*kv_set)(void *ctx, const char *key, size_t key_len,
                  const void *val, size_t len);
    int (*kv_del)(void *ctx, const char *key, size_t key_len);
} if_host_api;

#ifdef __cplusplus
}
#endif
#endif /* ISOFLOW_STAGE_H */
