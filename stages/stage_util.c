/*
 * stage_util.c - the helpers of stage_util.h, compiled into each
 * home-example stage: text building, fixed-point numbers, config lookup,
 * one-pass JSON member reading, seeding and hashing.  Integer arithmetic
 * only, no libc.
 */
#include "stage_util.h"

void su_init(su_buf *b, char *storage, size_t cap)
{
    b->p = storage;
    b->len = 0;
    b->cap = cap;
    b->overflow = 0;
}

void su_putn(su_buf *b, const char *s, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        b->overflow = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        b->p[b->len + i] = s[i];
    b->len += n;
}

void su_put(su_buf *b, const char *s)
{
    su_putn(b, s, if_strlen(s));
}

void su_putc(su_buf *b, char c)
{
    su_putn(b, &c, 1);
}

/* Appends the decimal digits of u (no sign), at least `min` digits. */
static void put_digits(su_buf *b, uint64_t u, int min)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10u));
        u /= 10u;
    } while (u != 0 && n < 24);
    while (n < min && n < 24)
        tmp[n++] = '0';
    while (n > 0)
        su_putc(b, tmp[--n]);
}

void su_put_int(su_buf *b, int64_t v)
{
    uint64_t u = (uint64_t)v;
    if (v < 0) {
        su_putc(b, '-');
        u = 0u - u;
    }
    put_digits(b, u, 1);
}

void su_put_fixed(su_buf *b, int64_t v, int decimals)
{
    uint64_t u = (uint64_t)v, scale = 1;
    if (decimals < 0)
        decimals = 0;
    if (decimals > 9)
        decimals = 9;
    for (int i = 0; i < decimals; i++)
        scale *= 10u;
    if (v < 0) {
        su_putc(b, '-');
        u = 0u - u;
    }
    put_digits(b, u / scale, 1);
    if (decimals > 0) {
        su_putc(b, '.');
        put_digits(b, u % scale, decimals);
    }
}

void su_put_jstr(su_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    su_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            su_putc(b, '\\');
            su_putc(b, (char)c);
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            su_putn(b, esc, 6);
        } else {
            su_putc(b, (char)c);
        }
    }
    su_putc(b, '"');
}

#define SU_LIMIT 922337203685477580LL /* |value| kept below INT64_MAX / 10 */

size_t su_parse_fixed(const char *s, size_t n, int decimals, int64_t *out)
{
    size_t i = 0;
    int neg = 0, exp = 0, exp_neg = 0, shift, digits = 0;
    uint64_t mant = 0;       /* significant digits, at most 18 */
    int frac_digits = 0;     /* digits of mant after the decimal point */
    int dropped = 0;         /* integer digits not kept in mant (scale up) */
    int round_digit = -1;    /* first digit not kept (for rounding), or -1 */

    if (i < n && (s[i] == '-' || s[i] == '+')) {
        neg = s[i] == '-';
        i++;
    }
    if (i >= n || s[i] < '0' || s[i] > '9')
        return 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (mant == 0 && s[i] == '0')
            continue;
        if (digits < 40 && mant < 100000000000000000ULL) {
            mant = mant * 10u + (uint64_t)(s[i] - '0');
        } else {
            if (round_digit < 0)
                round_digit = s[i] - '0';
            dropped++;
        }
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9')
            return 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (dropped == 0 && mant < 100000000000000000ULL) {
                mant = mant * 10u + (uint64_t)(s[i] - '0');
                frac_digits++;
            } else if (round_digit < 0) {
                round_digit = s[i] - '0';
            }
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+')) {
            exp_neg = s[i] == '-';
            i++;
        }
        if (i >= n || s[i] < '0' || s[i] > '9')
            return 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (exp < 1000)
                exp = exp * 10 + (s[i] - '0');
        if (exp_neg)
            exp = -exp;
    }
    /* value = mant * 10^(dropped - frac_digits + exp); wanted scaled by
     * 10^decimals. */
    shift = dropped - frac_digits + exp + decimals;
    if (mant == 0) {
        *out = 0;
        return i;
    }
    while (shift > 0) {
        if (mant > (uint64_t)SU_LIMIT)
            return 0;
        mant *= 10u;
        shift--;
        round_digit = -1;
    }
    while (shift < 0) {
        round_digit = (int)(mant % 10u);
        mant /= 10u;
        shift++;
    }
    if (round_digit >= 5)
        mant++;
    if (mant > (uint64_t)SU_LIMIT)
        return 0;
    *out = neg ? -(int64_t)mant : (int64_t)mant;
    return i;
}

int su_cfg_find(const char *cfg, size_t len, const char *key,
                const char **val, size_t *vlen)
{
    size_t klen = if_strlen(key), i = 0;
    while (i < len) {
        size_t start, eq, end;
        while (i < len && (cfg[i] == ' ' || cfg[i] == '\t' || cfg[i] == ','))
            i++;
        start = i;
        while (i < len && cfg[i] != ' ' && cfg[i] != '\t' && cfg[i] != ',')
            i++;
        end = i;
        for (eq = start; eq < end && cfg[eq] != '='; eq++)
            ;
        if (eq < end && eq - start == klen && su_eq(cfg + start, klen, key)) {
            *val = cfg + eq + 1;
            *vlen = end - eq - 1;
            return 1;
        }
    }
    return 0;
}

int su_cfg_fixed(const char *cfg, size_t len, const char *key, int decimals,
                 int64_t *out)
{
    const char *v;
    size_t vlen;
    int64_t x;
    if (!su_cfg_find(cfg, len, key, &v, &vlen))
        return 0;
    if (vlen == 0 || su_parse_fixed(v, vlen, decimals, &x) != vlen)
        return -1;
    *out = x;
    return 1;
}

void su_rng_seed(if_rand *r, uint64_t seed, uint64_t stream)
{
    if_rand mix;
    if_rand_seed(&mix, stream);
    if_rand_seed(r, seed ^ if_rand_u64(&mix));
}

int64_t su_rng_range(if_rand *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo) + 1u;
    uint64_t x = if_rand_u64(r) >> 11; /* 53 well-mixed bits */
    if (span == 0)
        return lo;
    return lo + (int64_t)(x % span);
}

int su_rng_chance(if_rand *r, uint32_t per_mille)
{
    return su_rng_range(r, 0, 999) < (int64_t)per_mille;
}

uint32_t su_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

int su_eq(const char *a, size_t an, const char *b)
{
    size_t i;
    for (i = 0; i < an; i++)
        if (b[i] == '\0' || b[i] != a[i])
            return 0;
    return b[i] == '\0';
}

size_t su_copy(char *dst, size_t cap, const char *s, size_t n)
{
    size_t i;
    if (cap == 0)
        return 0;
    for (i = 0; i < n && i + 1 < cap; i++)
        dst[i] = s[i];
    dst[i] = '\0';
    return i;
}

int64_t su_div_round(int64_t v, int64_t d)
{
    if (v >= 0)
        return (v + d / 2) / d;
    return -((-v + d / 2) / d);
}

/* ---- A validating scan of one JSON object --------------------------------
 * The scanner works on [p, end) and returns the position after the value it
 * skipped, or NULL on a syntax error. */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *skip_string(const char *p, const char *end)
{
    if (p >= end || *p != '"')
        return 0;
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            p++;
            if (p >= end)
                return 0;
            if (*p == 'u') {
                for (int k = 0; k < 4; k++) {
                    char h;
                    p++;
                    if (p >= end)
                        return 0;
                    h = *p;
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                          (h >= 'A' && h <= 'F')))
                        return 0;
                }
            } else if (*p != '"' && *p != '\\' && *p != '/' && *p != 'b' &&
                       *p != 'f' && *p != 'n' && *p != 'r' && *p != 't') {
                return 0;
            }
        }
    }
    return 0;
}

static const char *skip_number(const char *p, const char *end)
{
    const char *q = p;
    if (q < end && *q == '-')
        q++;
    if (q >= end || *q < '0' || *q > '9')
        return 0;
    if (*q == '0')
        q++;
    else
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    if (q < end && *q == '.') {
        q++;
        if (q >= end || *q < '0' || *q > '9')
            return 0;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || *q < '0' || *q > '9')
            return 0;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    return q;
}

static const char *skip_literal(const char *p, const char *end, const char *w)
{
    size_t n = if_strlen(w);
    if ((size_t)(end - p) < n || !su_eq(p, n, w))
        return 0;
    return p + n;
}

static const char *skip_value(const char *p, const char *end, int depth);

/* Skips an object or array body after its opening bracket. */
static const char *skip_container(const char *p, const char *end, int depth,
                                  char close, int keyed)
{
    p = skip_ws(p, end);
    if (p < end && *p == close)
        return p + 1;
    for (;;) {
        if (keyed) {
            p = skip_string(skip_ws(p, end), end);
            if (!p)
                return 0;
            p = skip_ws(p, end);
            if (p >= end || *p != ':')
                return 0;
            p++;
        }
        p = skip_value(skip_ws(p, end), end, depth + 1);
        if (!p)
            return 0;
        p = skip_ws(p, end);
        if (p >= end)
            return 0;
        if (*p == close)
            return p + 1;
        if (*p != ',')
            return 0;
        p++;
    }
}

static const char *skip_value(const char *p, const char *end, int depth)
{
    if (p >= end || depth > 16)
        return 0;
    switch (*p) {
    case '"': return skip_string(p, end);
    case '{': return skip_container(p + 1, end, depth, '}', 1);
    case '[': return skip_container(p + 1, end, depth, ']', 0);
    case 't': return skip_literal(p, end, "true");
    case 'f': return skip_literal(p, end, "false");
    case 'n': return skip_literal(p, end, "null");
    default: return skip_number(p, end);
    }
}

int su_json_get(const char *msg, size_t len, const char *const *keys,
                size_t nkeys, su_jval *out)
{
    const char *p = msg, *end = msg + len;
    int found = 0;

    for (size_t k = 0; k < nkeys; k++)
        out[k].kind = SU_J_NONE;
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return -1;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return skip_ws(p + 1, end) == end ? 0 : -1;
    for (;;) {
        const char *ks = skip_ws(p, end), *ke, *vs, *ve;
        size_t klen;
        ke = skip_string(ks, end);
        if (!ke)
            return -1;
        klen = (size_t)(ke - ks - 2);
        p = skip_ws(ke, end);
        if (p >= end || *p != ':')
            return -1;
        vs = skip_ws(p + 1, end);
        ve = skip_value(vs, end, 1);
        if (!ve)
            return -1;
        for (size_t k = 0; k < nkeys; k++) {
            su_jval *o = &out[k];
            if (o->kind != SU_J_NONE || !su_eq(ks + 1, klen, keys[k]))
                continue;
            if (*vs == '"') {
                o->kind = SU_J_STRING;
                o->p = vs + 1;
                o->n = (size_t)(ve - vs - 2);
            } else {
                o->kind = (*vs == '-' || (*vs >= '0' && *vs <= '9'))
                              ? SU_J_NUMBER : SU_J_OTHER;
                o->p = vs;
                o->n = (size_t)(ve - vs);
            }
            found++;
            break;
        }
        p = skip_ws(ve, end);
        if (p >= end)
            return -1;
        if (*p == '}')
            break;
        if (*p != ',')
            return -1;
        p++;
    }
    if (skip_ws(p + 1, end) != end)
        return -1;
    return found;
}
