/*
 * stage_util.h - helpers shared by the home example's stages in stages/, on
 * top of the SDK's isoflow/json.h (random numbers, strings): a one-pass
 * JSON object reader that also converts numbers to fixed point, a cursor
 * writer for JSON text (digit-pair table, no per-byte calls), fixed-point
 * parsing, `key=value` config lookup and a string hash.
 *
 * Why not the SDK's double-based JSON helpers: the stages do integer
 * fixed-point arithmetic only (exact, identical on wasm and native by
 * construction), and every instruction on the per-message path counts when
 * the stage runs interpreted (see README.md, "Per-message cost").  The
 * small hot helpers are `static inline` here because each stage is linked
 * from separate objects without LTO: a call across objects is a real Wasm
 * call.  No libc.
 */
#ifndef ISOFLOW_STAGE_UTIL_H
#define ISOFLOW_STAGE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <isoflow/json.h>

/* ---- Writing: a cursor over a caller buffer ------------------------------
 * Each su_w_* function writes at w and returns the position after what it
 * wrote.  There are no bounds checks: the caller sizes the buffer for the
 * worst case, using the maximum each function documents. */

/* "00" "01" ... "99": two digits per lookup (defined in stage_util.c). */
extern const char su_digits2[200];

/* Appends the literal string s (a string literal: its size is known). */
#define SU_W_LIT(w, s) \
    (__builtin_memcpy((w), (s), sizeof(s) - 1), (w) + (sizeof(s) - 1))

/* Number of decimal digits of v (1..10). */
static inline unsigned su_ndigits32(uint32_t v)
{
    if (v < 100000u)
        return v < 100u ? (v < 10u ? 1u : 2u)
                        : (v < 1000u ? 3u : (v < 10000u ? 4u : 5u));
    return v < 10000000u ? (v < 1000000u ? 6u : 7u)
                         : (v < 100000000u ? 8u : (v < 1000000000u ? 9u : 10u));
}

/* Writes the n lowest decimal digits of v ending just before `end`
 * (v < 10^n; leading zeros when v has fewer digits). */
static inline void su_w_digits_back(char *end, uint32_t v, unsigned n)
{
    while (n >= 2) {
        uint32_t q = v / 100u, r = v - q * 100u;
        end -= 2;
        end[0] = su_digits2[2u * r];
        end[1] = su_digits2[2u * r + 1u];
        v = q;
        n -= 2;
    }
    if (n)
        end[-1] = (char)('0' + v);
}

/* Writes v in decimal; at most 10 bytes. */
static inline char *su_w_u32(char *w, uint32_t v)
{
    unsigned n = su_ndigits32(v);
    su_w_digits_back(w + n, v, n);
    return w + n;
}

/* Writes v in decimal; at most 20 bytes. */
char *su_w_u64(char *w, uint64_t v);

/* Writes v in decimal (with '-' when negative); at most 20 bytes. */
static inline char *su_w_i64(char *w, int64_t v)
{
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        *w++ = '-';
        u = 0u - u;
    }
    return u <= 0xffffffffu ? su_w_u32(w, (uint32_t)u) : su_w_u64(w, u);
}

/* Writes v / 10^decimals with exactly `decimals` (0..9) digits after the
 * point: su_w_fixed(w, -8125, 1) writes "-812.5"; at most 22 bytes. */
char *su_w_fixed_slow(char *w, uint64_t u, unsigned decimals);
static inline char *su_w_fixed(char *w, int64_t v, unsigned decimals)
{
    uint64_t u = (uint64_t)v;
    unsigned n;
    if (v < 0) {
        *w++ = '-';
        u = 0u - u;
    }
    if (u > 0xffffffffu || decimals > 9u)
        return su_w_fixed_slow(w, u, decimals);
    /* All digits at once, at least decimals + 1 of them, then move the
     * last `decimals` one place right for the point. */
    n = su_ndigits32((uint32_t)u);
    if (n <= decimals)
        n = decimals + 1u;
    su_w_digits_back(w + n, (uint32_t)u, n);
    if (decimals == 0u)
        return w + n;
    for (unsigned i = 0; i < decimals; i++)
        w[n - i] = w[n - i - 1u];
    w[n - decimals] = '.';
    return w + n + 1u;
}

/* Writes s[0..n) as a JSON string literal (quotes; \" \\ and \u00XX for
 * control bytes); at most 2 + 6n bytes. */
char *su_w_jstr(char *w, const char *s, size_t n);

/* ---- Reading ------------------------------------------------------------ */

/* Parses a decimal number (optional sign, digits, optional fraction,
 * optional exponent: the JSON grammar) at s[0..n) into a fixed-point value
 * scaled by 10^decimals, rounding half away from zero.  Returns the number
 * of bytes consumed, or 0 when s does not start with a number or the value
 * does not fit in +-9.2e17. */
size_t su_parse_fixed(const char *s, size_t n, int decimals, int64_t *out);

/* A member su_json_read looks for.  `name` is plain text (no quote,
 * backslash, '}' or control byte), `len` its length; decimals >= 0 converts a
 * number value to fixed point (value * 10^decimals), -1 leaves it as text. */
typedef struct su_jkey {
    const char *name;
    uint32_t len;
    int decimals;
    uint64_t word, mask; /* set by su_jkeys_prepare: `"name":` as 8 bytes
                            and the mask of its len + 3 bytes; mask 0:
                            compared byte by byte */
} su_jkey;

/* A su_jkey initialiser for a string literal name. */
#define SU_JKEY(name, decimals) {(name), sizeof(name) - 1u, (decimals), 0, 0}

/* Fills word/mask of keys[0..nkeys) (once, e.g. in stage_init): names of
 * at most 5 bytes are then matched with one 8-byte comparison. */
void su_jkeys_prepare(su_jkey *keys, size_t nkeys);

/* JSON value kinds reported by su_json_read (0: member absent). */
enum { SU_J_NONE = 0, SU_J_STRING = 1, SU_J_NUMBER = 2, SU_J_OTHER = 3 };
typedef struct su_jval {
    int kind;      /* SU_J_* */
    int num_ok;    /* NUMBER with decimals >= 0: 1 when `num` holds the
                      value (su_parse_fixed accepts all of it), else 0 */
    const char *p; /* a string's bytes without quotes (escapes left as
                      they are), or the value's text; points into msg */
    size_t n;
    int64_t num;   /* the converted number when num_ok */
} su_jval;

/* Reads the top-level members keys[0..nkeys) of the JSON object
 * msg[0..len) in one pass, checking the whole object's syntax on the way
 * (strings, numbers, literals, nested arrays/objects up to depth 16) and
 * converting the wanted numbers as it goes.  Fills out[i] for each key
 * (kind SU_J_NONE when absent; the first occurrence wins).  Listing the keys
 * in the order the messages usually carry them (and su_jkeys_prepare) makes
 * each match one comparison.  At most 32 keys.  Returns the number of
 * keys found, or -1 when msg is not one well-formed JSON object (or nkeys
 * > 32; out is then unspecified). */
int su_json_read(const char *msg, size_t len, const su_jkey *keys,
                 size_t nkeys, su_jval *out);

/* ---- Reading, fast path ----------------------------------------------------
 * Inline pieces for a stage to read the exact layout its upstream writes
 * (members in order, no whitespace, no escapes) in straight-line code,
 * before falling back to su_json_read for anything else.  Each returns 0
 * as soon as the text is not as expected; what they accept, su_json_read
 * reads to the same values.  They scan up to a sentinel: the caller first
 * checks that msg[len-1] is the closing '}' and passes last = msg + len - 1.
 * The cursor *pp only moves on success. */

/* 1 for '"', '\\', '}' and control bytes (defined in stage_util.c). */
extern const unsigned char su_str_stop[256];

static inline uint64_t su_ld8(const char *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    return v;
}
static inline uint32_t su_ld4(const char *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}
static inline uint16_t su_ld2(const char *p)
{
    uint16_t v;
    __builtin_memcpy(&v, p, 2);
    return v;
}
/* p[0..n) == s[0..n) for n <= 8, as at most two (overlapping) loads per
 * side: with a literal s the compiler folds its side into constants. */
static inline int su_eq_small(const char *p, const char *s, size_t n)
{
    if (n == 8)
        return su_ld8(p) == su_ld8(s);
    if (n > 4)
        return ((su_ld4(p) ^ su_ld4(s)) |
                (su_ld4(p + n - 4) ^ su_ld4(s + n - 4))) == 0u;
    if (n == 4)
        return su_ld4(p) == su_ld4(s);
    if (n > 2)
        return ((su_ld2(p) ^ su_ld2(s)) |
                (su_ld2(p + n - 2) ^ su_ld2(s + n - 2))) == 0u;
    if (n == 2)
        return su_ld2(p) == su_ld2(s);
    return n == 0 || p[0] == s[0];
}
/* Matches the literal s (a string literal of at most 8 bytes, no '}') at
 * *pp and moves past it. */
#define SU_X_LIT(pp, last, s) su_x_lit((pp), (last), (s), sizeof(s) - 1u)
static inline int su_x_lit(const char **pp, const char *last, const char *s,
                           size_t n)
{
    if (last - *pp < (ptrdiff_t)n || !su_eq_small(*pp, s, n))
        return 0;
    *pp += n;
    return 1;
}
/* A string without escapes at *pp: *s, *n get its bytes (no quotes). */
static inline int su_x_str(const char **pp, const char **s, size_t *n)
{
    const char *p = *pp, *b;
    if (*p != '"')
        return 0;
    b = ++p;
    while (!su_str_stop[(unsigned char)*p])
        p++;
    if (*p != '"')
        return 0;
    *s = b;
    *n = (size_t)(p - b);
    *pp = p + 1;
    return 1;
}
/* A JSON number without exponent and with at most `decimals` (0..9)
 * digits after the point at *pp: *out gets value * 10^decimals (exact;
 * at most 17 digits scaled, else 0 is returned). */
extern const uint64_t su_pow10[18];
static inline int su_x_num(const char **pp, unsigned decimals, int64_t *out)
{
    const char *p = *pp, *ds;
    unsigned d, frac = 0;
    uint64_t mant;
    int neg = *p == '-';
    p += neg;
    ds = p;
    if ((d = (unsigned)(unsigned char)*p - '0') > 9u)
        return 0;
    mant = d;
    p++;
    if (d != 0u)
        while ((d = (unsigned)(unsigned char)*p - '0') <= 9u) {
            mant = mant * 10u + d;
            p++;
        }
    if (*p == '.') {
        const char *fs = ++p;
        if ((d = (unsigned)(unsigned char)*p - '0') > 9u)
            return 0;
        do {
            mant = mant * 10u + d;
            p++;
        } while ((d = (unsigned)(unsigned char)*p - '0') <= 9u);
        frac = (unsigned)(p - fs);
    }
    if (*p == 'e' || *p == 'E' || frac > decimals ||
        (size_t)(p - ds) + (decimals - frac) > 17u)
        return 0;
    mant *= su_pow10[decimals - frac];
    *out = neg ? -(int64_t)mant : (int64_t)mant;
    *pp = p;
    return 1;
}
/* A JSON integer (no fraction or exponent) at *pp, skipped. */
static inline int su_x_skip_int(const char **pp)
{
    const char *p = *pp;
    unsigned d;
    p += *p == '-';
    if ((d = (unsigned)(unsigned char)*p - '0') > 9u)
        return 0;
    p++;
    if (d != 0u)
        while ((unsigned)(unsigned char)*p - '0' <= 9u)
            p++;
    if (*p == '.' || *p == 'e' || *p == 'E')
        return 0;
    *pp = p;
    return 1;
}

/* A room reading as room_sensor.c writes it:
 *   {"room":"room-03","seq":17,"ts":1700000960000,"co2":812.5,
 *    "temp":21.37,"hum":44.1,"pres":1013.2} */
typedef struct su_reading {
    const char *room; /* the room's bytes (escapes as they are) */
    size_t room_n;
    int64_t ts;       /* milliseconds */
    int64_t v[4];     /* co2, temp, hum, pres in thousandths of the unit */
} su_reading;

/* Reads msg[0..len) when it has exactly the sensor's layout (members in
 * that order, no whitespace, no escapes in "room", integer seq and ts, at
 * most 3 decimals); returns 1, or 0 when it does not (the stage then reads
 * it with su_json_read, which gives the same values for what this
 * accepts). */
static inline int su_read_reading(const char *msg, size_t len,
                                  su_reading *r)
{
    const char *p = msg, *last;
    if (len < 2 || msg[len - 1] != '}')
        return 0;
    last = msg + len - 1;
    if (!SU_X_LIT(&p, last, "{\"room\":") ||
        !su_x_str(&p, &r->room, &r->room_n) ||
        !SU_X_LIT(&p, last, ",\"seq\":") || !su_x_skip_int(&p) ||
        !SU_X_LIT(&p, last, ",\"ts\":") || !su_x_num(&p, 0, &r->ts) ||
        !SU_X_LIT(&p, last, ",\"co2\":") ||
        !su_x_num(&p, 3, &r->v[0]) || !SU_X_LIT(&p, last, ",\"temp\":") ||
        !su_x_num(&p, 3, &r->v[1]) || !SU_X_LIT(&p, last, ",\"hum\":") ||
        !su_x_num(&p, 3, &r->v[2]) || !SU_X_LIT(&p, last, ",\"pres\":") ||
        !su_x_num(&p, 3, &r->v[3]))
        return 0;
    return p == last;
}

/* ---- Configuration ------------------------------------------------------ */

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

/* ---- Random numbers ----------------------------------------------------- */

/* Seeds an SDK generator from two integers (splitmix-mixed, so nearby
 * streams diverge). */
void su_rng_seed(if_rand *r, uint64_t seed, uint64_t stream);
/* Uniform integer in [lo, hi] (hi >= lo): lo + (53 high bits of one
 * su_rand_u64 draw) mod (hi - lo + 1). */
/* if_rand_u64 inline: the same xorshift64* step on the same state (the
 * SDK documents the generator), without a call per draw. */
static inline uint64_t su_rand_u64(if_rand *r)
{
    uint64_t x = r->s ? r->s : 0x2545F4914F6CDD1Dull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}
static inline int64_t su_rng_range(if_rand *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1u;
    uint64_t x = su_rand_u64(r) >> 11; /* 53 well-mixed bits */
    if (span == 0)
        return lo;
    return lo + (int64_t)(x % span);
}
/* 1 with probability per_mille / 1000 (one su_rng_range(r, 0, 999) draw). */
static inline int su_rng_chance(if_rand *r, uint32_t per_mille)
{
    return su_rng_range(r, 0, 999) < (int64_t)per_mille;
}

/* ---- Small things ------------------------------------------------------- */

/* FNV-1a 32-bit hash of s[0..n). */
static inline uint32_t su_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}
/* 1 when a[0..n) equals b[0..n). */
static inline int su_memeq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}
/* 1 when a[0..an) equals the NUL-terminated b. */
int su_eq(const char *a, size_t an, const char *b);
/* Copies at most cap-1 bytes of s[0..n) to dst and NUL-terminates it;
 * returns the bytes copied (if_strlcpy for a source that is not
 * NUL-terminated). */
size_t su_copy(char *dst, size_t cap, const char *s, size_t n);
/* Divides with rounding half away from zero (d > 0); 32-bit arithmetic
 * when both fit. */
static inline int64_t su_div_round(int64_t v, int64_t d)
{
    uint64_t u = v >= 0 ? (uint64_t)v : 0u - (uint64_t)v, q;
    uint64_t h = (uint64_t)d / 2u;
    if (u + h <= 0xffffffffu && (uint64_t)d <= 0xffffffffu)
        q = (uint32_t)(u + h) / (uint32_t)d;
    else
        q = (u + h) / (uint64_t)d;
    return v >= 0 ? (int64_t)q : -(int64_t)q;
}

#endif /* ISOFLOW_STAGE_UTIL_H */
