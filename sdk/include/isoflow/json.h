/*
 * isoflow/json.h - small, allocation-free helpers for stage code that runs
 * without a C library (freestanding wasm32): reading fields of a small JSON
 * object, writing one with a deterministic number format, a bounded
 * snprintf, a seeded random generator and the few math functions the
 * example stages need.
 *
 * Everything here is implemented in the SDK runtime (sdk/src/stage_sdk.c),
 * which the build helpers compile into every stage, with the same code on
 * wasm32 and native builds: the output of a stage built both ways is
 * byte-identical (no locale, no libc printf or libm differences).
 */
#ifndef ISOFLOW_JSON_H
#define ISOFLOW_JSON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Reading ------------------------------------------------------------
 * The readers look at the top-level members of the JSON object in
 * msg[0..len) (nested values are skipped, not searched).  `key` is a
 * NUL-terminated member name compared byte for byte (no escapes in keys).
 * They return 0 (IF_OK) on success, -1 (IF_ENOTFOUND) when the member is
 * absent, -4 (IF_EINVAL) when msg is not an object or the member has
 * another type. */

/* A number member: *out receives its value (parsed by the SDK's own
 * deterministic reader: exact for up to 19 significant digits and
 * exponents within +-22). */
int if_json_num(const void *msg, size_t len, const char *key, double *out);
/* A number member that is an integer (no fraction or exponent). */
int if_json_int(const void *msg, size_t len, const char *key, int64_t *out);
/* A string member, unescaped (\uXXXX as UTF-8) into buf, NUL-terminated
 * when cap > 0.  Returns the unescaped length (which may be >= cap: the
 * copy is then truncated) or a negative code as above. */
int if_json_str(const void *msg, size_t len, const char *key, char *buf,
                size_t cap);
/* A boolean member: *out is 0 or 1. */
int if_json_bool(const void *msg, size_t len, const char *key, int *out);

/* ---- Writing ------------------------------------------------------------
 * Builds one JSON object in a caller buffer:
 *
 *     char buf[128];
 *     if_json_writer w;
 *     if_json_begin(&w, buf, sizeof buf);
 *     if_json_add_str(&w, "room", "room-03");
 *     if_json_add_num(&w, "co2", 812.44, 1);
 *     int n = if_json_end(&w);   // {"room":"room-03","co2":812.4}, n = 30
 *
 * Overflow is sticky: once the buffer is too small every call does nothing
 * and if_json_end returns IF_ETOOBIG (-2).  Keys are written as given
 * (escaped like strings). */
typedef struct if_json_writer {
    char *buf;     /* borrowed caller buffer */
    size_t cap;    /* its size */
    size_t len;    /* bytes written so far */
    int count;     /* members written */
    int overflow;  /* 1 once something did not fit */
} if_json_writer;

void if_json_begin(if_json_writer *w, char *buf, size_t cap);
/* "key":value with exactly `decimals` digits after the point (0..9),
 * rounded half away from zero: 812.44 with 1 -> 812.4, -0.04 with 1 ->
 * 0.0 (never "-0"), 3 with 0 -> 3.  |value| >= 1e15 is written in
 * exponent form (1.5e+20); NaN and infinities as null. */
void if_json_add_num(if_json_writer *w, const char *key, double value,
                     int decimals);
void if_json_add_int(if_json_writer *w, const char *key, int64_t value);
void if_json_add_bool(if_json_writer *w, const char *key, int value);
/* A NUL-terminated string value, escaped ("\"", "\\", control bytes as
 * \u00XX; other bytes copied). */
void if_json_add_str(if_json_writer *w, const char *key, const char *value);
/* A value that is already JSON text (len bytes), copied unchanged. */
void if_json_add_raw(if_json_writer *w, const char *key, const char *json,
                     size_t len);
/* Closes the object; returns its length (the text is NUL-terminated when
 * it fits with one byte to spare) or IF_ETOOBIG. */
int if_json_end(if_json_writer *w);

/* Formats a number as if_json_add_num does into buf (NUL-terminated when
 * cap > 0); returns the length it needs (truncated when >= cap). */
int if_fmt_num(char *buf, size_t cap, double value, int decimals);

/* ---- Formatting ---------------------------------------------------------
 * A bounded snprintf for freestanding stages (what if_log uses).  Supports
 * %d %i %u %x %X %c %s %p %% with the length modifiers h hh l ll z j t,
 * flags '-' and '0', a width and a precision ('*' too) for strings, and %f
 * / %.Nf (default 6 decimals) with the number format above.  Returns the
 * length the full output needs (like C99 snprintf); buf gets at most
 * cap-1 bytes and a NUL when cap > 0. */
int if_snprintf(char *buf, size_t cap, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int if_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap);

/* ---- Deterministic random numbers ---------------------------------------
 * xorshift64* seeded by the caller: the same seed gives the same sequence
 * on every platform. */
typedef struct if_rand {
    uint64_t s; /* never 0 */
} if_rand;

void if_rand_seed(if_rand *r, uint64_t seed);
uint32_t if_rand_u32(if_rand *r);
uint64_t if_rand_u64(if_rand *r);
/* Uniform in [0, 1) with 53 random bits. */
double if_rand_unit(if_rand *r);
/* Uniform in [lo, hi). */
double if_rand_range(if_rand *r, double lo, double hi);
/* Approximately standard normal (mean 0, sd 1): the sum of 12 uniforms
 * minus 6 (Irwin-Hall), bounded to [-6, 6]. */
double if_rand_normal(if_rand *r);

/* ---- Math ---------------------------------------------------------------
 * Portable replacements for the libm functions the example stages need,
 * computed with the same operations on every platform (so results are
 * bit-identical on wasm and native; accurate to about 1e-15 relative, not
 * correctly rounded).  Stages may also use the compiler builtins that map
 * to single instructions (__builtin_sqrt, __builtin_fabs). */
double if_fabs(double x);
double if_sqrt(double x);
double if_floor(double x);
/* Rounds half away from zero. */
double if_round(double x);
double if_exp(double x);
/* Natural logarithm (if_log is the logging call); NaN for x < 0, -inf for 0. */
double if_ln(double x);
double if_sin(double x);
double if_cos(double x);
double if_pow(double x, double y); /* exp(y * ln(x)); x > 0, or integer y */

/* ---- Strings ------------------------------------------------------------
 * Stages built freestanding have no <string.h>; the SDK provides memcpy,
 * memmove, memset, memcmp and strlen under their usual names for wasm32
 * builds (the compiler emits calls to them), and these helpers for both. */
size_t if_strlen(const char *s);
int if_streq(const char *a, const char *b);
/* Compares n bytes; 1 when equal. */
int if_memeq(const void *a, const void *b, size_t n);
/* Copies at most cap-1 bytes of src and a NUL; returns strlen(src). */
size_t if_strlcpy(char *dst, const char *src, size_t cap);
/* Parses a decimal integer at the start of s[0..len) (optional sign);
 * returns the number of bytes used (0 when there is no number). */
size_t if_parse_int(const char *s, size_t len, int64_t *out);
/* Parses a JSON-style number at the start of s[0..len); returns the number
 * of bytes used (0 when there is no number). */
size_t if_parse_num(const char *s, size_t len, double *out);

#ifdef __cplusplus
}
#endif
#endif /* ISOFLOW_JSON_H */
