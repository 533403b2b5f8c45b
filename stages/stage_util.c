/*
 * stage_util.c - the out-of-line helpers of stage_util.h, compiled into
 * each home-example stage: the one-pass JSON object reader, the rarer
 * number formats, fixed-point parsing, config lookup and seeding.  Integer
 * arithmetic only, no libc.
 */
#include "stage_util.h"

const char su_digits2[200] = {
    '0','0','0','1','0','2','0','3','0','4','0','5','0','6','0','7','0','8','0','9',
    '1','0','1','1','1','2','1','3','1','4','1','5','1','6','1','7','1','8','1','9',
    '2','0','2','1','2','2','2','3','2','4','2','5','2','6','2','7','2','8','2','9',
    '3','0','3','1','3','2','3','3','3','4','3','5','3','6','3','7','3','8','3','9',
    '4','0','4','1','4','2','4','3','4','4','4','5','4','6','4','7','4','8','4','9',
    '5','0','5','1','5','2','5','3','5','4','5','5','5','6','5','7','5','8','5','9',
    '6','0','6','1','6','2','6','3','6','4','6','5','6','6','6','7','6','8','6','9',
    '7','0','7','1','7','2','7','3','7','4','7','5','7','6','7','7','7','8','7','9',
    '8','0','8','1','8','2','8','3','8','4','8','5','8','6','8','7','8','8','8','9',
    '9','0','9','1','9','2','9','3','9','4','9','5','9','6','9','7','9','8','9','9'};

/* Numbers above 32 bits: split off base-10^9 limbs (at most two, which
 * leaves at most 18), one 64-bit division per limb, then 32-bit digit
 * pairs. */
char *su_w_u64(char *w, uint64_t v)
{
    uint32_t limb[3];
    int n = 0;
    if (v <= 0xffffffffu)
        return su_w_u32(w, (uint32_t)v);
    while (v > 0xffffffffu && n < 2) {
        uint64_t q = v / 1000000000u;
        limb[n++] = (uint32_t)(v - q * 1000000000u);
        v = q;
    }
    w = su_w_u32(w, (uint32_t)v); /* below 2^64 / 10^18 here */
    while (n > 0) {
        su_w_digits_back(w + 9, limb[--n], 9);
        w += 9;
    }
    return w;
}

char *su_w_fixed_slow(char *w, uint64_t u, unsigned decimals)
{
    static const uint32_t pow10[10] = {1u, 10u, 100u, 1000u, 10000u,
                                       100000u, 1000000u, 10000000u,
                                       100000000u, 1000000000u};
    uint64_t q;
    if (decimals > 9u)
        decimals = 9u;
    q = u / pow10[decimals];
    w = su_w_u64(w, q);
    if (decimals > 0u) {
        *w++ = '.';
        su_w_digits_back(w + decimals, (uint32_t)(u - q * pow10[decimals]),
                         decimals);
        w += decimals;
    }
    return w;
}

char *su_w_jstr(char *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    *w++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20u && c != '"' && c != '\\') {
            *w++ = (char)c;
        } else if (c >= 0x20u) {
            w[0] = '\\';
            w[1] = (char)c;
            w += 2;
        } else {
            w[0] = '\\';
            w[1] = 'u';
            w[2] = '0';
            w[3] = '0';
            w[4] = hex[c >> 4];
            w[5] = hex[c & 15u];
            w += 6;
        }
    }
    *w++ = '"';
    return w;
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


/* ---- The one-pass reader ------------------------------------------------
 * su_json_read first finds the object's closing brace (the last byte but
 * trailing whitespace) and then scans with that brace as a sentinel: every
 * loop stops on it (it is neither a digit, nor whitespace, nor a hex digit,
 * and strings check for it), so the scanning loops need no bounds checks.
 * Only nested arrays/objects and literals go through the bounded validator
 * above. */

/* 1 for the bytes that end the fast scan of a string: '"', '\\', '}' (the
 * sentinel: inside a string only if it is not the last byte) and the
 * control bytes (an error inside a string). */
const unsigned char su_str_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, /* '}' */
};

/* Whitespace as JSON defines it. */
#define SU_WS(c) ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')
/* Skips whitespace (bounded by the closing brace). */
#define SU_SKIP_WS(p)                                                      \
    do {                                                                   \
        if ((unsigned char)*(p) <= ' ')                                    \
            while (SU_WS(*(p)))                                            \
                (p)++;                                                     \
    } while (0)
/* The digit value of byte c, or above 9. */
#define SU_DIGIT(c) ((unsigned)(unsigned char)(c) - (unsigned)'0')

/* Skips the rest of a string from p (past its opening quote) up to `last`
 * (the closing brace); escapes are checked as skip_string does.  Returns
 * the position after the closing quote, or NULL on an error. */
static const char *string_rest(const char *p, const char *last)
{
    for (;;) {
        while (!su_str_stop[(unsigned char)*p])
            p++;
        if (*p == '"')
            return p + 1;
        if (*p == '}') {
            if (p == last)
                return 0;
            p++;
            continue;
        }
        if ((unsigned char)*p < 0x20u)
            return 0;
        p++; /* after a backslash: at most `last` */
        if (*p == 'u') {
            for (int k = 0; k < 4; k++) {
                char h = *++p; /* the sentinel is no hex digit */
                if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                      (h >= 'A' && h <= 'F')))
                    return 0;
            }
        } else if (*p != '"' && *p != '\\' && *p != '/' && *p != 'b' &&
                   *p != 'f' && *p != 'n' && *p != 'r' && *p != 't') {
            return 0;
        }
        p++;
    }
}

void su_jkeys_prepare(su_jkey *keys, size_t nkeys)
{
    for (size_t k = 0; k < nkeys; k++) {
        unsigned char text[8] = {0}, mask[8] = {0};
        uint32_t n = keys[k].len;
        keys[k].mask = 0;
        if (n + 3u > 8u)
            continue;
        text[0] = '"';
        for (uint32_t i = 0; i < n; i++)
            text[1 + i] = (unsigned char)keys[k].name[i];
        text[n + 1u] = '"';
        text[n + 2u] = ':';
        for (uint32_t i = 0; i < n + 3u; i++)
            mask[i] = 0xffu;
        __builtin_memcpy(&keys[k].word, text, 8);
        __builtin_memcpy(&keys[k].mask, mask, 8);
    }
}

/* 10^0 .. 10^17 */
const uint64_t su_pow10[18] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
    10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
    100000000000ull, 1000000000000ull, 10000000000000ull,
    100000000000000ull, 1000000000000000ull, 10000000000000000ull,
    100000000000000000ull};

/* Sets kind SU_J_NONE in out[k] for the keys whose bit is clear in seen;
 * returns the number of keys found. */
static int mark_absent(su_jval *out, size_t nkeys, uint32_t seen)
{
    int found = 0;
    for (size_t k = 0; k < nkeys; k++) {
        if (seen & (1u << k))
            found++;
        else
            out[k].kind = SU_J_NONE;
    }
    return found;
}

int su_json_read(const char *msg, size_t len, const su_jkey *keys,
                 size_t nkeys, su_jval *out)
{
    const char *p = msg, *last = msg + len;
    size_t hint = 0; /* the key expected next (members keep their order) */

    /* Which keys were found: bit k of `seen` (the absent ones get their
     * kind at the end, so a message with every key stores nothing more). */
    uint32_t seen = 0;

    if (nkeys > 32u)
        return -1;
    /* The closing brace: the last byte but whitespace. */
    while (last > msg && SU_WS(last[-1]))
        last--;
    if (last == msg || *--last != '}')
        return -1;
    SU_SKIP_WS(p);
    if (*p != '{')
        return -1;
    p++;
    SU_SKIP_WS(p);
    if (*p == '}')
        return p == last ? mark_absent(out, nkeys, 0) : -1;
    for (;;) {
        const char *vs;
        su_jval *o = 0;
        int dec = -1;
        uint64_t w;

        /* The key: first as the expected one ("name": in one 8-byte
         * comparison), else scanned and looked up. */
        if (*p != '"')
            return -1;
        if (hint < nkeys && keys[hint].mask != 0 && last - p >= 7 &&
            (__builtin_memcpy(&w, p, 8), (w & keys[hint].mask) ==
                                             keys[hint].word)) {
            p += keys[hint].len + 3u;
            if (!(seen & (1u << hint))) {
                seen |= 1u << hint;
                o = &out[hint];
                dec = keys[hint].decimals;
            }
            hint++;
        } else {
            const char *ks = p + 1;
            size_t klen;
            p = string_rest(ks, last);
            if (!p)
                return -1;
            klen = (size_t)(p - 1 - ks);
            for (size_t k = 0; k < nkeys; k++) {
                if (keys[k].len != klen || (seen & (1u << k)) ||
                    !su_memeq(ks, keys[k].name, klen))
                    continue;
                seen |= 1u << k;
                o = &out[k];
                dec = keys[k].decimals;
                hint = k + 1;
                break;
            }
            SU_SKIP_WS(p);
            if (*p != ':')
                return -1;
            p++;
        }
        SU_SKIP_WS(p);
        vs = p;
        if (*p == '"') {
            p = string_rest(p + 1, last);
            if (!p)
                return -1;
            if (o) {
                o->kind = SU_J_STRING;
                o->p = vs + 1;
                o->n = (size_t)(p - vs - 2);
            }
        } else if (*p == '-' || SU_DIGIT(*p) <= 9u) {
            /* A number, checked against the JSON grammar; its digits are
             * gathered only when it is to be converted. */
            const char *ds;
            uint64_t mant = 0;
            unsigned d, frac = 0;
            int slow = 0;
            if (*p == '-')
                p++;
            ds = p;
            d = SU_DIGIT(*p);
            if (d > 9u)
                return -1;
            p++;
            if (dec < 0) {
                if (d != 0u)
                    while (SU_DIGIT(*p) <= 9u)
                        p++;
                if (*p == '.') {
                    if (SU_DIGIT(*++p) > 9u)
                        return -1;
                    while (SU_DIGIT(*++p) <= 9u)
                        ;
                }
            } else {
                mant = d;
                if (d != 0u)
                    while ((d = SU_DIGIT(*p)) <= 9u) {
                        mant = mant * 10u + d;
                        p++;
                    }
                if (*p == '.') {
                    const char *fs = ++p;
                    if ((d = SU_DIGIT(*p)) > 9u)
                        return -1;
                    do {
                        mant = mant * 10u + d;
                        p++;
                    } while ((d = SU_DIGIT(*p)) <= 9u);
                    frac = (unsigned)(p - fs);
                }
            }
            if (*p == 'e' || *p == 'E') {
                slow = 1;
                p++;
                if (*p == '+' || *p == '-')
                    p++;
                if (SU_DIGIT(*p) > 9u)
                    return -1;
                while (SU_DIGIT(*++p) <= 9u)
                    ;
            }
            if (o) {
                o->kind = SU_J_NUMBER;
                o->p = vs;
                o->n = (size_t)(p - vs);
                o->num_ok = 0;
                if (dec >= 0) {
                    /* Exact without rounding when it has no more decimals
                     * than wanted and at most 17 digits scaled (p - ds
                     * counts the point too); su_parse_fixed otherwise
                     * (exponents, rounding, long numbers). */
                    if (!slow && frac <= (unsigned)dec &&
                        (size_t)(p - ds) + ((unsigned)dec - frac) <= 17u) {
                        uint64_t v = mant * su_pow10[(unsigned)dec - frac];
                        o->num = *vs == '-' ? -(int64_t)v : (int64_t)v;
                        o->num_ok = 1;
                    } else {
                        o->num_ok = su_parse_fixed(vs, o->n, dec, &o->num) ==
                                    o->n;
                    }
                }
            }
        } else {
            /* Literals and nested values: the bounded validator (which may
             * consume the sentinel brace: then the object is unclosed). */
            p = skip_value(p, last + 1, 1);
            if (!p || p > last)
                return -1;
            if (o) {
                o->kind = SU_J_OTHER;
                o->p = vs;
                o->n = (size_t)(p - vs);
            }
        }
        SU_SKIP_WS(p);
        if (*p == ',') {
            p++;
            SU_SKIP_WS(p);
            continue;
        }
        if (*p == '}' && p == last)
            return mark_absent(out, nkeys, seen);
        return -1;
    }
}
