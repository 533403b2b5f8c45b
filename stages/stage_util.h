/*
 * stage_util.h - helpers shared by the home example's stages in stages/, on
 * top of the SDK's isoflow/json.h (random numbers, strings): decimal
 * fixed-point numbers (formatting and parsing), a one-pass reader of several
 * JSON members, `key=value` config lookup and a string hash.  Why not the
 * SDK's double-based JSON readers: the stages do integer fixed-point
 * arithmetic only (exact, identical on wasm and native by construction),
 * and reading every member of a reading in one pass instead of one scan per
 * member matters on the per-message path.  No libc.
 */
#ifndef ISOFLOW_STAGE_UTIL_H
#define ISOFLOW_STAGE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <isoflow/json.h>

/* A text builder over a caller-owned buffer.  Appends that do not fit set
 * `overflow` and are dropped; the text is never NUL-terminated by the
 * builder (messages carry their length). */
typedef struct su_buf {
    char *p;      /* caller-owned storage */
    size_t len;   /* bytes written */
    size_t cap;   /* size of p */
    int overflow; /* 1 once an append did not fit */
} su_buf;

void su_init(su_buf *b, char *storage, size_t cap);
void su_putn(su_buf *b, const char *s, size_t n);
void su_put(su_buf *b, const char *s); /* s NUL-terminated */
void su_putc(su_buf *b, char c);
void su_put_int(su_buf *b, int64_t v);
/* Appends v / 10^decimals with exactly `decimals` digits after the point
 * (decimals 0..9): su_put_fixed(b, -8125, 1) appends "-812.5". */
void su_put_fixed(su_buf *b, int64_t v, int decimals);
/* Appends a JSON string literal (quotes, escapes for " \ and controls). */
void su_put_jstr(su_buf *b, const char *s, size_t n);

/* Parses a decimal number (optional sign, digits, optional fraction,
 * optional exponent: the JSON grammar) at s[0..n) into a fixed-point value
 * scaled by 10^decimals, rounding half away from zero.  Returns the number
 * of bytes consumed, or 0 when s does not start with a number or the value
 * does not fit in +-9.2e17. */
size_t su_parse_fixed(const char *s, size_t n, int decimals, int64_t *out);

/* Looks up `key` in a configuration string of space-separated key=value
 * pairs (len bytes, not NUL-terminated).  Sets *val and *vlen to the value (a
 * pointer into cfg) and returns 1, or returns 0 when the key is absent. */
int su_cfg_find(const char *cfg, size_t len, const char *key,
                const char **val, size_t *vlen);
/* su_cfg_find + su_parse_fixed of the whole value.  Returns 1 and sets *out
 * when present and valid, 0 when absent (*out untouched), -1 when present
 * but not a number. */
int su_cfg_fixed(const char *cfg, size_t len, const char *key, int decimals,
                 int64_t *out);

/* Seeds an SDK generator from two integers (splitmix-mixed, so nearby
 * streams diverge). */
void su_rng_seed(if_rand *r, uint64_t seed, uint64_t stream);
/* Uniform integer in [lo, hi] (hi >= lo). */
int64_t su_rng_range(if_rand *r, int64_t lo, int64_t hi);
/* 1 with probability per_mille / 1000. */
int su_rng_chance(if_rand *r, uint32_t per_mille);

/* JSON value kinds reported by su_json_get (0: member absent). */
enum { SU_J_NONE = 0, SU_J_STRING = 1, SU_J_NUMBER = 2, SU_J_OTHER = 3 };
typedef struct su_jval {
    int kind;      /* SU_J_* */
    const char *p; /* a string's bytes without quotes (escapes left as
                      they are), or the value's text; points into msg */
    size_t n;
} su_jval;
/* Looks up the top-level members keys[0..nkeys) of the JSON object
 * msg[0..len) in one pass, checking the whole object's syntax on the way
 * (strings, numbers, literals, nested arrays/objects up to depth 16).
 * Fills out[i] for each key (kind SU_J_NONE when absent; the first
 * occurrence wins).  Returns the number of keys found, or -1 when msg is not
 * one well-formed JSON object. */
int su_json_get(const char *msg, size_t len, const char *const *keys,
                size_t nkeys, su_jval *out);

/* FNV-1a 32-bit hash of s[0..n). */
uint32_t su_hash(const char *s, size_t n);
/* 1 when a[0..an) equals the NUL-terminated b. */
int su_eq(const char *a, size_t an, const char *b);
/* Copies at most cap-1 bytes of s[0..n) to dst and NUL-terminates it;
 * returns the bytes copied (if_strlcpy for a source that is not
 * NUL-terminated). */
size_t su_copy(char *dst, size_t cap, const char *s, size_t n);
/* Divides with rounding half away from zero (d > 0). */
int64_t su_div_round(int64_t v, int64_t d);

#endif /* ISOFLOW_STAGE_UTIL_H */
