/*
 * stage_sdk.c - the SDK runtime compiled into every stage: the if_* calls a
 * stage makes, the isoflow_* exports the host calls (the ABI described at
 * the end of isoflow/stage.h), and the libc-free helpers of isoflow/json.h.
 *
 * Two builds of the same file:
 *  - wasm32 (__wasm__), freestanding: no C library.  The if_* calls are
 *    imports from module "isoflow"; the exports carry export_name
 *    attributes; the SDK owns the heap from __heap_base, where the message
 *    buffer (isoflow_buffer) lives and grows in place up to 1 MiB.  The
 *    module imports nothing but "isoflow".  It is built with -mbulk-memory,
 *    so memcpy/memset below compile to memory.copy/memory.fill.
 *  - native (.so): the if_* calls go through the if_host_api table given to
 *    isoflow_bind.  The host loads one private copy of the .so per
 *    instance, so the globals below are per instance in both builds.
 * The helpers (formatting, JSON, random, math) are the same code in both
 * builds and use only IEEE double arithmetic, so outputs are identical.
 */
#include "isoflow/json.h"
#include "isoflow/stage.h"

/* The stage's functions, all optional: weak references let the SDK see
 * which ones the stage defines (isoflow_caps) without requiring them. */
#if defined(__wasm__)
#define IF__WEAK __attribute__((weak))
#define IF__EXPORT(name) __attribute__((export_name(name)))
#else
#define IF__WEAK __attribute__((weak, visibility("hidden")))
#define IF__EXPORT(name) __attribute__((visibility("default")))
#endif

extern int stage_init(const char *config, size_t len) IF__WEAK;
extern int stage_process(const uint8_t *msg, size_t len) IF__WEAK;
extern int stage_produce(void) IF__WEAK;
extern int stage_actuation(const uint8_t *msg, size_t len) IF__WEAK;
extern int stage_migrate(int32_t from_version) IF__WEAK;

/* ======================================================================== */
/* Platform part 1: wasm32.                                                 */
#if defined(__wasm__)

#define IF__IMPORT(name)                                                     \
    __attribute__((import_module("isoflow"), import_name(name)))

IF__IMPORT("emit")
int32_t if__h_emit(const char *topic, size_t topic_len, const void *data,
                   size_t len);
IF__IMPORT("actuate") int32_t if__h_actuate(const void *data, size_t len);
IF__IMPORT("log") void if__h_log(int32_t level, const char *text, size_t len);
IF__IMPORT("now_ns") int64_t if__h_now_ns(void);
IF__IMPORT("meta") int64_t if__h_meta(int32_t field);
IF__IMPORT("meta_str")
int32_t if__h_meta_str(int32_t field, char *buf, size_t cap);
IF__IMPORT("kv_get")
int32_t if__h_kv_get(const char *key, size_t key_len, void *buf, size_t cap);
IF__IMPORT("kv_set")
int32_t if__h_kv_set(const char *key, size_t key_len, const void *val,
                     size_t len);
IF__IMPORT("kv_del") int32_t if__h_kv_del(const char *key, size_t key_len);

/* The compiler emits calls to these; there is no libc to provide them. */
__attribute__((weak)) void *memcpy(void *dst, const void *src, size_t n)
{
#if defined(__wasm_bulk_memory__)
    return __builtin_memcpy(dst, src, n);
#else
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
#endif
}

__attribute__((weak)) void *memmove(void *dst, const void *src, size_t n)
{
#if defined(__wasm_bulk_memory__)
    return __builtin_memmove(dst, src, n);
#else
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return dst;
#endif
}

__attribute__((weak)) void *memset(void *dst, int c, size_t n)
{
#if defined(__wasm_bulk_memory__)
    return __builtin_memset(dst, c, n);
#else
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
#endif
}

__attribute__((weak)) int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

__attribute__((weak)) size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* The message buffer: one region at the start of the heap, grown in place
 * (it is the only heap user), never above IF__BUFFER_MAX. */
#define IF__BUFFER_MAX (1024u * 1024u)
#define IF__PAGE 65536u
extern unsigned char __heap_base;
static uintptr_t if__buf;     /* 0 until first asked */
static size_t if__buf_cap;

IF__EXPORT("isoflow_buffer") void *isoflow_buffer(size_t len)
{
    if (len <= if__buf_cap && if__buf)
        return (void *)if__buf;
    if (len > IF__BUFFER_MAX)
        return 0;
    uintptr_t start = ((uintptr_t)&__heap_base + 15u) & ~(uintptr_t)15u;
    size_t want = (len + 4095u) & ~(size_t)4095u;
    if (want == 0)
        want = 4096u;
    uintptr_t end = start + want;
    uintptr_t have = (uintptr_t)__builtin_wasm_memory_size(0) * IF__PAGE;
    if (end > have) {
        size_t pages = (size_t)((end - have + IF__PAGE - 1) / IF__PAGE);
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1)
            return 0;
    }
    if__buf = start;
    if__buf_cap = want;
    return (void *)start;
}

int if_emit(const void *data, size_t len)
{
    return if__h_emit(0, 0, data, len);
}

int if_emit_topic(const char *topic, const void *data, size_t len)
{
    return if__h_emit(topic, topic ? if_strlen(topic) : 0, data, len);
}

int if_actuate(const void *data, size_t len)
{
    return if__h_actuate(data, len);
}

static void if__log_text(int level, const char *text, size_t len)
{
    if__h_log(level, text, len);
}

int64_t if_now_ns(void) { return if__h_now_ns(); }
int64_t if_meta(int field) { return if__h_meta(field); }

int if_meta_str(int field, char *buf, size_t cap)
{
    return if__h_meta_str(field, buf, cap);
}

int if_kv_get(const char *key, void *buf, size_t cap)
{
    return if__h_kv_get(key, if_strlen(key), buf, cap);
}

int if_kv_set(const char *key, const void *val, size_t len)
{
    return if__h_kv_set(key, if_strlen(key), val, len);
}

int if_kv_del(const char *key)
{
    return if__h_kv_del(key, if_strlen(key));
}

/* ======================================================================== */
/* Platform part 2: native shared object.                                   */
#else

static const if_host_api *if__api; /* borrowed from the host (isoflow_bind) */
static void *if__ctx;

/* Binds the host's table; called once before isoflow_init.  The table and
 * ctx must outlive the instance. */
IF__EXPORT("isoflow_bind")
void isoflow_bind(const if_host_api *api, void *ctx)
{
    if__api = api;
    if__ctx = ctx;
}

int if_emit(const void *data, size_t len)
{
    if (!if__api)
        return IF_EINVAL;
    return if__api->emit(if__ctx, 0, 0, data, len);
}

int if_emit_topic(const char *topic, const void *data, size_t len)
{
    if (!if__api)
        return IF_EINVAL;
    return if__api->emit(if__ctx, topic, topic ? if_strlen(topic) : 0, data,
                         len);
}

int if_actuate(const void *data, size_t len)
{
    if (!if__api)
        return IF_EINVAL;
    return if__api->actuate(if__ctx, data, len);
}

static void if__log_text(int level, const char *text, size_t len)
{
    if (if__api)
        if__api->log(if__ctx, level, text, len);
}

int64_t if_now_ns(void) { return if__api ? if__api->now_ns(if__ctx) : 0; }

int64_t if_meta(int field)
{
    return if__api ? if__api->meta(if__ctx, field) : IF_ENOTFOUND;
}

int if_meta_str(int field, char *buf, size_t cap)
{
    if (!if__api)
        return IF_EINVAL;
    return if__api->meta_str(if__ctx, field, buf, cap);
}

int if_kv_get(const char *key, void *buf, size_t cap)
{
    if (!if__api)
        return IF_EINVAL;
    return if__api->kv_get(if__ctx, key, if_strlen(key), buf, cap);
}

int if_kv_set(const char *key, const void *val, size_t len)
{
    if (!if__api)
        return IF_EINVAL;
    return if__api->kv_set(if__ctx, key, if_strlen(key), val, len);
}

int if_kv_del(const char *key)
{
    if (!if__api)
        return IF_EINVAL;
    return if__api->kv_del(if__ctx, key, if_strlen(key));
}

#endif /* platform parts */

/* ======================================================================== */
/* The ABI exports (both builds).                                           */

IF__EXPORT("isoflow_abi") int32_t isoflow_abi(void) { return IF_ABI_VERSION; }

/* Which stage_* functions the stage defines (IF_CAP_* bits). */
IF__EXPORT("isoflow_caps") int32_t isoflow_caps(void)
{
    int32_t caps = 0;
    if (stage_process)
        caps |= IF_CAP_PROCESS;
    if (stage_produce)
        caps |= IF_CAP_PRODUCE;
    if (stage_actuation)
        caps |= IF_CAP_ACTUATION;
    if (stage_migrate)
        caps |= IF_CAP_MIGRATE;
    return caps;
}

IF__EXPORT("isoflow_init") int32_t isoflow_init(const char *cfg, size_t len)
{
    return stage_init ? stage_init(cfg, len) : 0;
}

IF__EXPORT("isoflow_process")
int32_t isoflow_process(const uint8_t *msg, size_t len)
{
    return stage_process ? stage_process(msg, len) : IF_EINVAL;
}

IF__EXPORT("isoflow_produce") int32_t isoflow_produce(void)
{
    return stage_produce ? stage_produce() : IF_EINVAL;
}

/* Returns 1 ("pass": forward unchanged) when the stage does not handle
 * actuations. */
IF__EXPORT("isoflow_actuation")
int32_t isoflow_actuation(const uint8_t *msg, size_t len)
{
    return stage_actuation ? stage_actuation(msg, len) : 1;
}

IF__EXPORT("isoflow_migrate") int32_t isoflow_migrate(int32_t from)
{
    return stage_migrate ? stage_migrate(from) : 0;
}

/* ======================================================================== */
/* Logging.                                                                 */

void if_log(int level, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = if_vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 1;
    if__log_text(level, line, len);
}

/* ======================================================================== */
/* Strings.                                                                 */

size_t if_strlen(const char *s)
{
    size_t n = 0;
    if (!s)
        return 0;
    while (s[n])
        n++;
    return n;
}

int if_streq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

int if_memeq(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return 0;
    return 1;
}

size_t if_strlcpy(char *dst, const char *src, size_t cap)
{
    size_t n = if_strlen(src);
    if (cap > 0) {
        size_t c = n < cap - 1 ? n : cap - 1;
        for (size_t i = 0; i < c; i++)
            dst[i] = src[i];
        dst[c] = '\0';
    }
    return n;
}

size_t if_parse_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t v = 0;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    size_t digits = i;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10u)
            return 0; /* overflow */
        v = v * 10u + d;
        i++;
    }
    if (i == digits)
        return 0;
    if ((!neg && v > (uint64_t)INT64_MAX) ||
        (neg && v > (uint64_t)INT64_MAX + 1u))
        return 0;
    if (out)
        *out = neg ? (int64_t)(0u - v) : (int64_t)v;
    return i;
}

/* Exact powers of ten (all representable in a double). */
static const double if__p10[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Builds a double from its bits (type punning through a union is defined
 * in C11). */
static double if__from_bits(uint64_t u)
{
    union {
        uint64_t u;
        double d;
    } v;
    v.u = u;
    return v.d;
}

static uint64_t if__bits(double d)
{
    union {
        uint64_t u;
        double d;
    } v;
    v.d = d;
    return v.u;
}

#define IF__NAN if__from_bits(0x7ff8000000000000ull)
#define IF__INF if__from_bits(0x7ff0000000000000ull)

size_t if_parse_num(const char *s, size_t len, double *out)
{
    size_t i = 0;
    int neg = 0, ndig = 0;
    uint64_t mant = 0;
    int32_t exp10 = 0;
    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }
    size_t int_start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (ndig < 19) {
            mant = mant * 10u + (uint64_t)(s[i] - '0');
            if (mant)
                ndig++;
        } else {
            exp10++;
        }
        i++;
    }
    if (i == int_start)
        return 0;
    if (i < len && s[i] == '.') {
        size_t frac = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (ndig < 19) {
                mant = mant * 10u + (uint64_t)(s[i] - '0');
                if (mant)
                    ndig++;
                exp10--;
            }
            i++;
        }
        if (i == frac)
            return 0;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        int eneg = 0;
        int32_t e = 0;
        if (j < len && (s[j] == '+' || s[j] == '-'))
            eneg = s[j++] == '-';
        size_t ed = j;
        while (j < len && s[j] >= '0' && s[j] <= '9') {
            if (e < 100000)
                e = e * 10 + (s[j] - '0');
            j++;
        }
        if (j == ed)
            return 0;
        exp10 += eneg ? -e : e;
        i = j;
    }
    double v = (double)mant;
    if (mant != 0) {
        while (exp10 > 22 && v < 1e300) {
            v *= 1e22;
            exp10 -= 22;
        }
        while (exp10 < -22 && v > 1e-300) {
            v /= 1e22;
            exp10 += 22;
        }
        if (exp10 > 22)
            v = IF__INF;
        else if (exp10 < -22)
            v = 0.0;
        else if (exp10 >= 0)
            v *= if__p10[exp10];
        else
            v /= if__p10[-exp10];
    }
    if (out)
        *out = neg ? -v : v;
    return i;
}

/* ======================================================================== */
/* Number formatting.                                                       */

/* A bounded output: counts everything, stores what fits (cap-1 bytes). */
typedef struct if__out {
    char *buf;
    size_t cap;
    size_t n;
} if__out;

static void if__put(if__out *o, char c)
{
    if (o->n + 1 < o->cap)
        o->buf[o->n] = c;
    o->n++;
}

static void if__puts(if__out *o, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if__put(o, s[i]);
}

static void if__put_u64(if__out *o, uint64_t v, unsigned mindig)
{
    char tmp[24];
    unsigned n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n < mindig && n < sizeof tmp)
        tmp[n++] = '0';
    while (n)
        if__put(o, tmp[--n]);
}

/* The number format of if_json_add_num (see json.h). */
static void if__put_num(if__out *o, double v, int dec)
{
    if (dec < 0)
        dec = 0;
    if (dec > 9)
        dec = 9;
    if (v != v || v == IF__INF || v == -IF__INF) {
        if__puts(o, "null", 4);
        return;
    }
    int neg = v < 0;
    double av = neg ? -v : v;
    double scaled = av * if__p10[dec];
    if (av < 1e15 && scaled < 9.0e18) {
        uint64_t r = (uint64_t)(scaled + 0.5);
        uint64_t p = (uint64_t)if__p10[dec];
        if (neg && r != 0)
            if__put(o, '-');
        if__put_u64(o, r / p, 1);
        if (dec > 0) {
            if__put(o, '.');
            if__put_u64(o, r % p, (unsigned)dec);
        }
        return;
    }
    /* Exponent form: mantissa in [1, 10) with dec decimals. */
    int e = 0;
    double m = av;
    while (m >= 10.0) {
        m /= 10.0;
        e++;
    }
    uint64_t r = (uint64_t)(m * if__p10[dec] + 0.5);
    uint64_t p = (uint64_t)if__p10[dec];
    if (r >= 10u * p) { /* rounding reached 10.0 */
        r /= 10u;
        e++;
    }
    if (neg)
        if__put(o, '-');
    if__put_u64(o, r / p, 1);
    if (dec > 0) {
        if__put(o, '.');
        if__put_u64(o, r % p, (unsigned)dec);
    }
    if__put(o, 'e');
    if__put(o, '+');
    if__put_u64(o, (uint64_t)e, 2);
}

int if_fmt_num(char *buf, size_t cap, double value, int decimals)
{
    if__out o = {buf, cap, 0};
    if__put_num(&o, value, decimals);
    if (cap > 0)
        buf[o.n < cap ? o.n : cap - 1] = '\0';
    return (int)o.n;
}

/* ======================================================================== */
/* if_vsnprintf.                                                            */

int if_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    if__out o = {buf, cap, 0};
    const char *f = fmt;
    while (*f) {
        if (*f != '%') {
            if__put(&o, *f++);
            continue;
        }
        f++;
        int left = 0, zero = 0, plus = 0;
        for (;; f++) {
            if (*f == '-')
                left = 1;
            else if (*f == '0')
                zero = 1;
            else if (*f == '+')
                plus = 1;
            else if (*f != ' ' && *f != '#')
                break;
        }
        int width = 0, prec = -1;
        if (*f == '*') {
            width = va_arg(ap, int);
            if (width < 0) {
                left = 1;
                width = -width;
            }
            f++;
        } else {
            while (*f >= '0' && *f <= '9')
                width = width * 10 + (*f++ - '0');
        }
        if (*f == '.') {
            f++;
            prec = 0;
            if (*f == '*') {
                prec = va_arg(ap, int);
                f++;
            } else {
                while (*f >= '0' && *f <= '9')
                    prec = prec * 10 + (*f++ - '0');
            }
        }
        int lng = 0; /* 0 int, 1 long, 2 long long, 3 size_t, 4 intmax,
                        5 ptrdiff; h/hh read int */
        if (*f == 'h') {
            f++;
            if (*f == 'h')
                f++;
        } else if (*f == 'l') {
            f++;
            lng = 1;
            if (*f == 'l') {
                f++;
                lng = 2;
            }
        } else if (*f == 'z') {
            f++;
            lng = 3;
        } else if (*f == 'j') {
            f++;
            lng = 4;
        } else if (*f == 't') {
            f++;
            lng = 5;
        }
        char conv = *f ? *f++ : '\0';
        char tmp[64];
        if__out t = {tmp, sizeof tmp, 0};
        const char *s = tmp;
        size_t slen;
        switch (conv) {
        case 'd':
        case 'i': {
            int64_t v;
            switch (lng) {
            case 1: v = va_arg(ap, long); break;
            case 2: v = va_arg(ap, long long); break;
            case 3: v = (int64_t)va_arg(ap, size_t); break;
            case 4: v = va_arg(ap, intmax_t); break;
            case 5: v = va_arg(ap, ptrdiff_t); break;
            default: v = va_arg(ap, int); break;
            }
            if (v < 0)
                if__put(&t, '-');
            else if (plus)
                if__put(&t, '+');
            if__put_u64(&t, v < 0 ? 0u - (uint64_t)v : (uint64_t)v, 1);
            break;
        }
        case 'u':
        case 'x':
        case 'X':
        case 'p': {
            uint64_t v;
            if (conv == 'p') {
                v = (uint64_t)(uintptr_t)va_arg(ap, void *);
                if__puts(&t, "0x", 2);
            } else {
                switch (lng) {
                case 1: v = va_arg(ap, unsigned long); break;
                case 2: v = va_arg(ap, unsigned long long); break;
                case 3: v = va_arg(ap, size_t); break;
                case 4: v = va_arg(ap, uintmax_t); break;
                case 5: v = (uint64_t)va_arg(ap, ptrdiff_t); break;
                default: v = va_arg(ap, unsigned); break;
                }
            }
            if (conv == 'u') {
                if__put_u64(&t, v, 1);
            } else {
                const char *dig = conv == 'X' ? "0123456789ABCDEF"
                                              : "0123456789abcdef";
                char h[16];
                int n = 0;
                do {
                    h[n++] = dig[v & 15u];
                    v >>= 4;
                } while (v);
                while (n)
                    if__put(&t, h[--n]);
            }
            break;
        }
        case 'c':
            if__put(&t, (char)va_arg(ap, int));
            break;
        case 's':
            s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            break;
        case 'f':
        case 'F':
        case 'e':
        case 'g':
        case 'G': {
            double v = va_arg(ap, double);
            if (plus && !(v < 0))
                if__put(&t, '+');
            if__put_num(&t, v, prec < 0 ? 6 : prec);
            if ((conv == 'g' || conv == 'G') && t.n < sizeof tmp) {
                size_t dot = 0;
                for (size_t i = 0; i < t.n; i++)
                    if (tmp[i] == '.')
                        dot = i;
                int has_e = 0;
                for (size_t i = 0; i < t.n; i++)
                    if (tmp[i] == 'e')
                        has_e = 1;
                if (dot && !has_e) {
                    while (t.n > dot + 1 && tmp[t.n - 1] == '0')
                        t.n--;
                    if (t.n == dot + 1)
                        t.n = dot;
                }
            }
            break;
        }
        case '%':
            if__put(&t, '%');
            break;
        default: /* unknown conversion: print it as written */
            if__put(&t, '%');
            if (conv)
                if__put(&t, conv);
            break;
        }
        if (conv == 's') {
            slen = 0;
            while (s[slen] && (prec < 0 || slen < (size_t)prec))
                slen++;
        } else {
            slen = t.n < sizeof tmp ? t.n : sizeof tmp - 1;
        }
        size_t pad = (size_t)width > slen ? (size_t)width - slen : 0;
        if (!left) {
            int z = zero && conv != 's' && conv != 'c';
            size_t k = 0;
            if (z && slen > 0 && (s[0] == '-' || s[0] == '+')) {
                if__put(&o, s[0]);
                k = 1;
            }
            while (pad--)
                if__put(&o, z ? '0' : ' ');
            if__puts(&o, s + k, slen - k);
        } else {
            if__puts(&o, s, slen);
            while (pad--)
                if__put(&o, ' ');
        }
    }
    if (cap > 0)
        buf[o.n < cap ? o.n : cap - 1] = '\0';
    return o.n > (size_t)INT32_MAX ? INT32_MAX : (int)o.n;
}

int if_snprintf(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = if_vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

/* ======================================================================== */
/* JSON reading.                                                            */

static const char *if__ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at '"': returns the byte after the closing quote, or NULL. */
static const char *if__skip_str(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return 0;
}

/* Skips one value (any type, nesting by counting brackets outside
 * strings); returns the byte after it, or NULL when it is cut short. */
static const char *if__skip_value(const char *p, const char *e)
{
    if (p >= e)
        return 0;
    if (*p == '"')
        return if__skip_str(p, e);
    if (*p == '{' || *p == '[') {
        uint32_t depth = 0;
        while (p < e) {
            if (*p == '"') {
                p = if__skip_str(p, e);
                if (!p)
                    return 0;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']') {
                if (--depth == 0)
                    return p + 1;
            }
            p++;
        }
        return 0;
    }
    const char *s = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
           *p != '\t' && *p != '\n' && *p != '\r')
        p++;
    return p > s ? p : 0;
}

/* Finds top-level member `key`: *val points at its value.  Returns 0,
 * IF_ENOTFOUND or IF_EINVAL. */
static int if__json_find(const void *msg, size_t len, const char *key,
                         const char **val, const char **end)
{
    const char *p = msg, *e = p + len;
    size_t klen = if_strlen(key);
    p = if__ws(p, e);
    if (p >= e || *p != '{')
        return IF_EINVAL;
    p = if__ws(p + 1, e);
    if (p < e && *p == '}')
        return IF_ENOTFOUND;
    while (p < e) {
        if (*p != '"')
            return IF_EINVAL;
        const char *ks = p + 1;
        const char *ke = if__skip_str(p, e);
        if (!ke)
            return IF_EINVAL;
        int match = (size_t)(ke - 1 - ks) == klen && if_memeq(ks, key, klen);
        p = if__ws(ke, e);
        if (p >= e || *p != ':')
            return IF_EINVAL;
        p = if__ws(p + 1, e);
        if (match) {
            *val = p;
            *end = e;
            return p < e ? 0 : IF_EINVAL;
        }
        p = if__skip_value(p, e);
        if (!p)
            return IF_EINVAL;
        p = if__ws(p, e);
        if (p < e && *p == ',') {
            p = if__ws(p + 1, e);
            continue;
        }
        if (p < e && *p == '}')
            return IF_ENOTFOUND;
        return IF_EINVAL;
    }
    return IF_EINVAL;
}

int if_json_num(const void *msg, size_t len, const char *key, double *out)
{
    const char *v, *e;
    int rc = if__json_find(msg, len, key, &v, &e);
    if (rc)
        return rc;
    if (*v != '-' && !(*v >= '0' && *v <= '9'))
        return IF_EINVAL;
    if (if_parse_num(v, (size_t)(e - v), out) == 0)
        return IF_EINVAL;
    return 0;
}

int if_json_int(const void *msg, size_t len, const char *key, int64_t *out)
{
    const char *v, *e;
    int rc = if__json_find(msg, len, key, &v, &e);
    if (rc)
        return rc;
    int64_t x;
    size_t n = if_parse_int(v, (size_t)(e - v), &x);
    if (n == 0 || *v == '+')
        return IF_EINVAL;
    if (v + n < e && (v[n] == '.' || v[n] == 'e' || v[n] == 'E'))
        return IF_EINVAL;
    if (out)
        *out = x;
    return 0;
}

int if_json_bool(const void *msg, size_t len, const char *key, int *out)
{
    const char *v, *e;
    int rc = if__json_find(msg, len, key, &v, &e);
    if (rc)
        return rc;
    if (e - v >= 4 && if_memeq(v, "true", 4)) {
        if (out)
            *out = 1;
        return 0;
    }
    if (e - v >= 5 && if_memeq(v, "false", 5)) {
        if (out)
            *out = 0;
        return 0;
    }
    return IF_EINVAL;
}

static int if__hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int if__hex4(const char *p, const char *e, uint32_t *out)
{
    uint32_t v = 0;
    if (e - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int h = if__hex(p[i]);
        if (h < 0)
            return -1;
        v = v * 16u + (uint32_t)h;
    }
    *out = v;
    return 0;
}

int if_json_str(const void *msg, size_t len, const char *key, char *buf,
                size_t cap)
{
    const char *v, *e;
    int rc = if__json_find(msg, len, key, &v, &e);
    if (rc)
        return rc;
    if (*v != '"')
        return IF_EINVAL;
    if__out o = {buf, cap, 0};
    const char *p = v + 1;
    for (;;) {
        if (p >= e)
            return IF_EINVAL;
        char c = *p++;
        if (c == '"')
            break;
        if (c != '\\') {
            if__put(&o, c);
            continue;
        }
        if (p >= e)
            return IF_EINVAL;
        c = *p++;
        switch (c) {
        case 'b': if__put(&o, '\b'); break;
        case 'f': if__put(&o, '\f'); break;
        case 'n': if__put(&o, '\n'); break;
        case 'r': if__put(&o, '\r'); break;
        case 't': if__put(&o, '\t'); break;
        case 'u': {
            uint32_t cp, lo;
            if (if__hex4(p, e, &cp))
                return IF_EINVAL;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && e - p >= 6 && p[0] == '\\' &&
                p[1] == 'u' && if__hex4(p + 2, e, &lo) == 0 && lo >= 0xDC00 &&
                lo < 0xE000) {
                cp = 0x10000u + ((cp - 0xD800u) << 10) + (lo - 0xDC00u);
                p += 6;
            }
            if (cp < 0x80) {
                if__put(&o, (char)cp);
            } else if (cp < 0x800) {
                if__put(&o, (char)(0xC0 | (cp >> 6)));
                if__put(&o, (char)(0x80 | (cp & 0x3F)));
            } else if (cp < 0x10000) {
                if__put(&o, (char)(0xE0 | (cp >> 12)));
                if__put(&o, (char)(0x80 | ((cp >> 6) & 0x3F)));
                if__put(&o, (char)(0x80 | (cp & 0x3F)));
            } else {
                if__put(&o, (char)(0xF0 | (cp >> 18)));
                if__put(&o, (char)(0x80 | ((cp >> 12) & 0x3F)));
                if__put(&o, (char)(0x80 | ((cp >> 6) & 0x3F)));
                if__put(&o, (char)(0x80 | (cp & 0x3F)));
            }
            break;
        }
        default: /* \" \\ \/ and anything else: the character itself */
            if__put(&o, c);
            break;
        }
    }
    if (cap > 0)
        buf[o.n < cap ? o.n : cap - 1] = '\0';
    return (int)o.n;
}

/* ======================================================================== */
/* JSON writing.                                                            */

static void if__w_put(if_json_writer *w, const char *s, size_t n)
{
    if (w->overflow)
        return;
    if (n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        w->buf[w->len + i] = s[i];
    w->len += n;
}

static void if__w_escaped(if_json_writer *w, const char *s, size_t n)
{
    if__w_put(w, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            if__w_put(w, esc, 2);
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            if__w_put(w, esc, 6);
        } else {
            if__w_put(w, (const char *)&s[i], 1);
        }
    }
    if__w_put(w, "\"", 1);
}

static void if__w_key(if_json_writer *w, const char *key)
{
    if (w->count++ > 0)
        if__w_put(w, ",", 1);
    if__w_escaped(w, key, if_strlen(key));
    if__w_put(w, ":", 1);
}

void if_json_begin(if_json_writer *w, char *buf, size_t cap)
{
    w->buf = buf;
    w->cap = buf ? cap : 0;
    w->len = 0;
    w->count = 0;
    w->overflow = 0;
    if__w_put(w, "{", 1);
}

void if_json_add_num(if_json_writer *w, const char *key, double value,
                     int decimals)
{
    char tmp[48];
    if__out o = {tmp, sizeof tmp, 0};
    if__put_num(&o, value, decimals);
    if__w_key(w, key);
    if__w_put(w, tmp, o.n < sizeof tmp ? o.n : sizeof tmp - 1);
}

void if_json_add_int(if_json_writer *w, const char *key, int64_t value)
{
    char tmp[24];
    if__out o = {tmp, sizeof tmp, 0};
    if (value < 0)
        if__put(&o, '-');
    if__put_u64(&o, value < 0 ? 0u - (uint64_t)value : (uint64_t)value, 1);
    if__w_key(w, key);
    if__w_put(w, tmp, o.n);
}

void if_json_add_bool(if_json_writer *w, const char *key, int value)
{
    if__w_key(w, key);
    if (value)
        if__w_put(w, "true", 4);
    else
        if__w_put(w, "false", 5);
}

void if_json_add_str(if_json_writer *w, const char *key, const char *value)
{
    if__w_key(w, key);
    if (value)
        if__w_escaped(w, value, if_strlen(value));
    else
        if__w_put(w, "null", 4);
}

void if_json_add_raw(if_json_writer *w, const char *key, const char *json,
                     size_t len)
{
    if__w_key(w, key);
    if__w_put(w, json, len);
}

int if_json_end(if_json_writer *w)
{
    if__w_put(w, "}", 1);
    if (w->overflow || w->len >= w->cap) {
        w->overflow = 1;
        return IF_ETOOBIG;
    }
    w->buf[w->len] = '\0';
    return (int)w->len;
}

/* ======================================================================== */
/* Random numbers.                                                          */

void if_rand_seed(if_rand *r, uint64_t seed)
{
    /* One splitmix64 step spreads small seeds over all bits. */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    r->s = z ? z : 0x2545F4914F6CDD1Dull;
}

uint64_t if_rand_u64(if_rand *r)
{
    uint64_t x = r->s ? r->s : 0x2545F4914F6CDD1Dull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint32_t if_rand_u32(if_rand *r) { return (uint32_t)(if_rand_u64(r) >> 32); }

double if_rand_unit(if_rand *r)
{
    return (double)(if_rand_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double if_rand_range(if_rand *r, double lo, double hi)
{
    return lo + (hi - lo) * if_rand_unit(r);
}

double if_rand_normal(if_rand *r)
{
    double s = 0.0;
    for (int i = 0; i < 12; i++)
        s += if_rand_unit(r);
    return s - 6.0;
}

/* ======================================================================== */
/* Math.                                                                    */

double if_fabs(double x) { return __builtin_fabs(x); }
double if_sqrt(double x) { return __builtin_sqrt(x); }

double if_floor(double x)
{
    if (!(if_fabs(x) < 4503599627370496.0)) /* >= 2^52, inf or NaN */
        return x;
    double t = (double)(int64_t)x;
    if (t > x)
        t -= 1.0;
    if (t == 0.0 && x < 0.0)
        return -0.0;
    return t;
}

double if_round(double x)
{
    if (!(if_fabs(x) < 4503599627370496.0))
        return x;
    return x < 0 ? -if_floor(-x + 0.5) : if_floor(x + 0.5);
}

/* ln 2 split so that k * LN2_HI is exact for |k| < 2^11. */
#define IF__LN2_HI 6.93147180369123816490e-01
#define IF__LN2_LO 1.90821492927058770002e-10
#define IF__LN2 0.69314718055994530942

/* 2^k for -1074 <= k <= 1023 (0 or inf beyond). */
static double if__pow2(int k)
{
    if (k > 1023)
        return IF__INF;
    if (k >= -1022)
        return if__from_bits((uint64_t)(k + 1023) << 52);
    if (k >= -1074)
        return if__from_bits(1ull << (k + 1074));
    return 0.0;
}

double if_exp(double x)
{
    if (x != x)
        return x;
    if (x > 709.782712893384)
        return IF__INF;
    if (x < -745.1332191019412)
        return 0.0;
    int k = (int)if_round(x / IF__LN2);
    double r = (x - k * IF__LN2_HI) - k * IF__LN2_LO;
    /* Taylor series of e^r for |r| <= 0.35, Horner form to r^14. */
    double s = 1.0;
    for (int i = 14; i >= 1; i--)
        s = 1.0 + s * r / i;
    if (k < -1000) /* avoid an intermediate underflow to 0 */
        return s * if__pow2(k + 200) * if__pow2(-200);
    if (k > 1000)
        return s * if__pow2(k - 200) * if__pow2(200);
    return s * if__pow2(k);
}

double if_ln(double x)
{
    if (x != x)
        return x;
    if (x < 0)
        return IF__NAN;
    if (x == 0)
        return -IF__INF;
    if (x == IF__INF)
        return x;
    int e = 0;
    if (x < 2.2250738585072014e-308) { /* subnormal: scale up by 2^54 */
        x *= 18014398509481984.0;
        e -= 54;
    }
    uint64_t b = if__bits(x);
    e += (int)((b >> 52) & 0x7FF) - 1023;
    double m = if__from_bits((b & 0x000FFFFFFFFFFFFFull) |
                             0x3FF0000000000000ull); /* [1, 2) */
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double f = (m - 1.0) / (m + 1.0), f2 = f * f;
    double s = 0.0;
    for (int i = 23; i >= 3; i -= 2)
        s = (s + 1.0 / i) * f2;
    double lm = 2.0 * f * (1.0 + s);
    return (e * IF__LN2_HI + lm) + e * IF__LN2_LO;
}

/* pi/2 in three parts (Cody-Waite reduction). */
#define IF__PIO2_1 1.57079632673412561417e+00
#define IF__PIO2_2 6.07710050650619224932e-11
#define IF__PIO2_3 2.02226624879595063154e-21

static double if__sin_poly(double r)
{
    double r2 = r * r, s = 1.0;
    for (int i = 19; i >= 3; i -= 2)
        s = 1.0 - s * r2 / ((double)i * (i - 1));
    return r * s;
}

static double if__cos_poly(double r)
{
    double r2 = r * r, s = 1.0;
    for (int i = 20; i >= 2; i -= 2)
        s = 1.0 - s * r2 / ((double)i * (i - 1));
    return s;
}

/* Reduces x to r in [-pi/4, pi/4] and returns the quadrant (0..3). */
static int if__reduce(double x, double *r)
{
    double k = if_round(x * 0.63661977236758134308);
    *r = ((x - k * IF__PIO2_1) - k * IF__PIO2_2) - k * IF__PIO2_3;
    int64_t q = (int64_t)k;
    return (int)(q & 3);
}

double if_sin(double x)
{
    if (!(if_fabs(x) < 1e15))
        return IF__NAN;
    double r;
    switch (if__reduce(x, &r)) {
    case 0: return if__sin_poly(r);
    case 1: return if__cos_poly(r);
    case 2: return -if__sin_poly(r);
    default: return -if__cos_poly(r);
    }
}

double if_cos(double x)
{
    if (!(if_fabs(x) < 1e15))
        return IF__NAN;
    double r;
    switch (if__reduce(x, &r)) {
    case 0: return if__cos_poly(r);
    case 1: return -if__sin_poly(r);
    case 2: return -if__cos_poly(r);
    default: return if__sin_poly(r);
    }
}

double if_pow(double x, double y)
{
    if (y == 0.0)
        return 1.0;
    if (x != x || y != y)
        return IF__NAN;
    if (y == if_floor(y) && if_fabs(y) <= 1024.0) {
        int64_t n = (int64_t)(y < 0 ? -y : y);
        double b = x, acc = 1.0;
        while (n) {
            if (n & 1)
                acc *= b;
            b *= b;
            n >>= 1;
        }
        return y < 0 ? 1.0 / acc : acc;
    }
    if (x < 0)
        return IF__NAN;
    if (x == 0)
        return y > 0 ? 0.0 : IF__INF;
    return if_exp(y * if_ln(x));
}
