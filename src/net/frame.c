/*
 * frame.c - the frame codec of the network layer (net.h "Frames"): finding
 * frames in a byte stream, decoding and encoding every payload type, the
 * status texts and CRC-32.  Input is untrusted: every length is checked
 * against the bytes that remain, and every rejection names what was wrong.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "net_int.h"

/* ------------------------------------------------------------------------ */
/* Status texts and small helpers.                                          */

static const char *const status_msgs[] = {
#define NT__S(name, msg) msg,
    NT_STATUS_MAP(NT__S)
#undef NT__S
};

const char *nt_status_msg(nt_status s)
{
    unsigned u = (unsigned)s;
    return u < (unsigned)NT_STATUS_COUNT ? status_msgs[u] : "unknown status";
}

static const char *const type_names[] = {
    "?",    "HELLO", "WELCOME", "REFUSE", "DATA", "ACK",
    "CREDIT", "PULL", "PING",  "PONG",   "BYE",  "CTL", "CTL_REPLY",
};

const char *nt__frame_type_name(unsigned type)
{
    return type >= 1 && type <= NT_CTL_REPLY ? type_names[type] : "?";
}

/* Writes a message into err (when err is non-NULL and errlen > 0). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
void nt__errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* Length of the valid UTF-8 prefix of s[0..n) that ends on a character
 * boundary: n when the whole text is valid (Unicode 15, table 3-7: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_valid_prefix(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint8_t lo = 0x80, hi = 0xBF;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            k = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return i;
        }
        if (n - i <= k)
            return i;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return i;
        i += k + 1;
    }
    return n;
}

/* 0 when s[0..n) is valid UTF-8 without NUL bytes, 1 when it is not UTF-8,
 * 2 when it contains a NUL. */
static int text_check(const uint8_t *s, size_t n)
{
    if (n > 0 && utf8_valid_prefix(s, n) != n)
        return 1;
    if (n > 0 && memchr(s, 0, n) != NULL)
        return 2;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, initial value and
 * final xor 0xFFFFFFFF), "slicing by 8": eight 256-entry tables, 8 bytes
 * per step (a single table, one byte per step, is about 4x slower and CRC
 * is on every frame's path twice).  crc_tab[0][i] is i shifted right
 * through the polynomial 8 times; crc_tab[k][i] extends crc_tab[k-1][i]
 * by one zero byte.  The tables are filled once (pthread_once); test_frame.c
 * checks the result against the bitwise definition. */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (uint32_t i = 0; i < 256; i++)
            crc_tab[k][i] = (crc_tab[k - 1][i] >> 8) ^
                            crc_tab[0][crc_tab[k - 1][i] & 0xFFu];
}

/* The CRC register c (pre-inverted) run over len bytes. */
static uint32_t crc_run(uint32_t c, const void *data, size_t len)
{
    const uint8_t *p = data;

    (void)pthread_once(&crc_once, crc_init);
    for (; len >= 8; len -= 8, p += 8) {
        uint32_t a = rd32(p) ^ c, b = rd32(p + 4);
        c = crc_tab[7][a & 0xFFu] ^ crc_tab[6][(a >> 8) & 0xFFu] ^
            crc_tab[5][(a >> 16) & 0xFFu] ^ crc_tab[4][a >> 24] ^
            crc_tab[3][b & 0xFFu] ^ crc_tab[2][(b >> 8) & 0xFFu] ^
            crc_tab[1][(b >> 16) & 0xFFu] ^ crc_tab[0][b >> 24];
    }
    for (; len > 0; len--, p++)
        c = crc_tab[0][(c ^ *p) & 0xFFu] ^ (c >> 8);
    return c;
}

uint32_t nt_crc32(const void *data, size_t len)
{
    return crc_run(0xFFFFFFFFu, data, len) ^ 0xFFFFFFFFu;
}

/* ------------------------------------------------------------------------ */
/* Finding frames.                                                          */

#define HELLO_FIXED 18u /* role, name_len, flow_hash, last_seq_seen */
#define MSG_FIXED 36u   /* a DATA message without topic and data */

/* The payload lengths a frame type allows: [*lo, *hi]. */
static void type_len_range(unsigned type, uint32_t *lo, uint32_t *hi)
{
    switch (type) {
    case NT_HELLO:
    case NT_WELCOME:
        *lo = HELLO_FIXED + 1;
        *hi = HELLO_FIXED + NT_MAX_NAME;
        break;
    case NT_REFUSE:
        *lo = 1;
        *hi = 1 + 255;
        break;
    case NT_DATA:
        *lo = 4;
        *hi = NT_MAX_PAYLOAD;
        break;
    case NT_ACK:
    case NT_CREDIT:
    case NT_PING:
    case NT_PONG:
        *lo = *hi = 8;
        break;
    case NT_PULL:
        *lo = *hi = 4;
        break;
    case NT_CTL:
    case NT_CTL_REPLY:
        *lo = 8;
        *hi = NT_MAX_PAYLOAD;
        break;
    default: /* NT_BYE */
        *lo = *hi = 0;
        break;
    }
}

/* Checks the header fields as soon as their bytes are there, so that a
 * garbled stream is refused before a large payload is waited for.  Order:
 * magic, version, type, payload length (global bound, then the type's
 * bound), then, once the payload is complete, its CRC. */
nt_status nt_frame_parse(const uint8_t *buf, size_t avail, nt_frame *frame,
                         size_t *frame_len, char *err, size_t errlen)
{
    uint32_t len, lo, hi;

    if (frame == NULL || frame_len == NULL || (buf == NULL && avail > 0)) {
        nt__errf(err, errlen, "nt_frame_parse: NULL argument");
        return NT_EARG;
    }
    if (avail >= 2 && (buf[0] != 'I' || buf[1] != 'F')) {
        nt__errf(err, errlen, "bad magic 0x%02x%02x", (unsigned)buf[0],
             (unsigned)buf[1]);
        return NT_EFRAME;
    }
    if (avail >= 3 && buf[2] != NT_VERSION) {
        nt__errf(err, errlen, "unsupported version %u", (unsigned)buf[2]);
        return NT_EFRAME;
    }
    if (avail >= 4 && (buf[3] < NT_HELLO || buf[3] > NT_CTL_REPLY)) {
        nt__errf(err, errlen, "unknown frame type %u", (unsigned)buf[3]);
        return NT_EFRAME;
    }
    if (avail < 8)
        return NT_AGAIN;
    len = rd32(buf + 4);
    if (len > NT_MAX_PAYLOAD) {
        nt__errf(err, errlen, "payload length %lu exceeds %u", (unsigned long)len,
             NT_MAX_PAYLOAD);
        return NT_EFRAME;
    }
    type_len_range(buf[3], &lo, &hi);
    if (len < lo || len > hi) {
        if (lo == hi)
            nt__errf(err, errlen, "%s payload length %lu, expected %lu",
                 nt__frame_type_name(buf[3]), (unsigned long)len,
                 (unsigned long)lo);
        else
            nt__errf(err, errlen, "%s payload length %lu outside %lu..%lu",
                 nt__frame_type_name(buf[3]), (unsigned long)len,
                 (unsigned long)lo, (unsigned long)hi);
        return NT_EFRAME;
    }
    if (avail < NT_HEADER || avail - NT_HEADER < len)
        return NT_AGAIN;
    if (nt_crc32(buf + NT_HEADER, len) != rd32(buf + 8)) {
        nt__errf(err, errlen, "CRC mismatch");
        return NT_EFRAME;
    }
    frame->type = buf[3];
    frame->len = len;
    frame->payload = buf + NT_HEADER;
    *frame_len = NT_HEADER + (size_t)len;
    return NT_OK;
}

/* ------------------------------------------------------------------------ */
/* Payload decoders.  A cursor over the payload; `need` reports a truncated
 * field with its name and position. */

typedef struct cur {
    const uint8_t *p;
    size_t len, off;
    char *err;
    size_t errlen;
    const char *what; /* "HELLO", "DATA", ... */
    /* When set, the name is what_fmt with what_arg ("DATA message %lu"),
     * formatted only for an error message (decoding stays cheap). */
    const char *what_fmt;
    unsigned long what_arg;
    char what_buf[48];
} cur;

/* The name of what c decodes, for an error message. */
static const char *cur_what(cur *c)
{
    if (c->what_fmt == NULL)
        return c->what;
    snprintf(c->what_buf, sizeof c->what_buf, c->what_fmt, c->what_arg);
    return c->what_buf;
}

static int need(cur *c, size_t n, const char *field)
{
    if (c->len - c->off >= n)
        return 1;
    nt__errf(c->err, c->errlen, "%s: truncated at byte %lu: %s needs %lu byte%s, "
         "%lu left", cur_what(c), (unsigned long)c->off, field, (unsigned long)n,
         n == 1 ? "" : "s", (unsigned long)(c->len - c->off));
    return 0;
}

static int take8(cur *c, const char *field, uint8_t *v)
{
    if (!need(c, 1, field))
        return 0;
    *v = c->p[c->off++];
    return 1;
}

static int take16(cur *c, const char *field, uint16_t *v)
{
    if (!need(c, 2, field))
        return 0;
    *v = rd16(c->p + c->off);
    c->off += 2;
    return 1;
}

static int take32(cur *c, const char *field, uint32_t *v)
{
    if (!need(c, 4, field))
        return 0;
    *v = rd32(c->p + c->off);
    c->off += 4;
    return 1;
}

static int take64(cur *c, const char *field, uint64_t *v)
{
    if (!need(c, 8, field))
        return 0;
    *v = rd64(c->p + c->off);
    c->off += 8;
    return 1;
}

/* Fails when bytes remain after the last field `after`. */
static int at_end(cur *c, const char *after)
{
    if (c->off == c->len)
        return 1;
    nt__errf(c->err, c->errlen, "%s: %lu trailing byte%s after %s", cur_what(c),
         (unsigned long)(c->len - c->off), c->len - c->off == 1 ? "" : "s",
         after);
    return 0;
}

#define T(type) (1u << (type))

/* Starts a cursor on f's payload after checking that f's type is in `types`
 * (a mask of T(type) bits).  Returns NT_OK or NT_EARG. */
static nt_status cur_start(cur *c, const nt_frame *f, unsigned types,
                           const char *fn, char *err, size_t errlen)
{
    if (f == NULL || (f->payload == NULL && f->len > 0)) {
        nt__errf(err, errlen, "%s: NULL frame", fn);
        return NT_EARG;
    }
    if (f->type > NT_CTL_REPLY || !(types & T(f->type))) {
        nt__errf(err, errlen, "%s: cannot decode a %s frame", fn,
             nt__frame_type_name(f->type));
        return NT_EARG;
    }
    c->p = f->payload;
    c->len = f->len;
    c->off = 0;
    c->err = err;
    c->errlen = errlen;
    c->what = nt__frame_type_name(f->type);
    c->what_fmt = NULL;
    c->what_arg = 0;
    return NT_OK;
}

/* HELLO or WELCOME: a known role, a name of 1..NT_MAX_NAME bytes of UTF-8
 * without NUL (copied into out->name, NUL-terminated), the two counters,
 * nothing after them.  Any other frame type is a caller error (NT_EARG). */
nt_status nt_hello_decode(const nt_frame *f, nt_hello *out, char *err,
                          size_t errlen)
{
    cur c;
    nt_status st;
    uint8_t role, nlen;
    int bad;

    st = cur_start(&c, f, T(NT_HELLO) | T(NT_WELCOME),
                   "nt_hello_decode", err, errlen);
    if (st != NT_OK)
        return st;
    if (out == NULL) {
        nt__errf(err, errlen, "nt_hello_decode: NULL argument");
        return NT_EARG;
    }
    if (!take8(&c, "role", &role) || !take8(&c, "name_len", &nlen))
        return NT_EFRAME;
    if (role < NT_ROLE_DEVICE || role > NT_ROLE_OPERATOR) {
        nt__errf(err, errlen, "%s: unknown role %u", c.what, (unsigned)role);
        return NT_EFRAME;
    }
    if (nlen == 0) {
        nt__errf(err, errlen, "%s: empty name", c.what);
        return NT_EFRAME;
    }
    if (nlen > NT_MAX_NAME) {
        nt__errf(err, errlen, "%s: name length %u exceeds %u", c.what,
             (unsigned)nlen,
             NT_MAX_NAME);
        return NT_EFRAME;
    }
    if (!need(&c, nlen, "name"))
        return NT_EFRAME;
    bad = text_check(c.p + c.off, nlen);
    if (bad) {
        nt__errf(err, errlen, "%s: name %s", c.what,
             bad == 1 ? "is not UTF-8" : "contains a NUL byte");
        return NT_EFRAME;
    }
    memcpy(out->name, c.p + c.off, nlen);
    out->name[nlen] = '\0';
    c.off += nlen;
    if (!take64(&c, "flow_hash", &out->flow_hash) ||
        !take64(&c, "last_seq_seen", &out->last_seq_seen) ||
        !at_end(&c, "last_seq_seen"))
        return NT_EFRAME;
    out->role = role;
    return NT_OK;
}

/* ACK (seq), PING and PONG (nonce): exactly 8 bytes. */
nt_status nt_u64_decode(const nt_frame *f, uint64_t *out, char *err,
                        size_t errlen)
{
    cur c;
    nt_status st;
    const char *field;

    st = cur_start(&c, f, T(NT_ACK) | T(NT_PING) | T(NT_PONG),
                   "nt_u64_decode", err, errlen);
    if (st != NT_OK)
        return st;
    if (out == NULL) {
        nt__errf(err, errlen, "nt_u64_decode: NULL argument");
        return NT_EARG;
    }
    field = f->type == NT_ACK ? "seq" : "nonce";
    if (!take64(&c, field, out) || !at_end(&c, field))
        return NT_EFRAME;
    return NT_OK;
}

/* CREDIT: u32 stage, u32 credits, exactly 8 bytes. */
nt_status nt_credit_decode(const nt_frame *f, uint32_t *stage,
                           uint32_t *credits, char *err, size_t errlen)
{
    cur c;
    nt_status st;

    st = cur_start(&c, f, T(NT_CREDIT), "nt_credit_decode", err, errlen);
    if (st != NT_OK)
        return st;
    if (stage == NULL || credits == NULL) {
        nt__errf(err, errlen, "nt_credit_decode: NULL argument");
        return NT_EARG;
    }
    if (!take32(&c, "stage", stage) || !take32(&c, "credits", credits) ||
        !at_end(&c, "credits"))
        return NT_EFRAME;
    return NT_OK;
}

/* PULL: u32 stage, exactly 4 bytes. */
nt_status nt_pull_decode(const nt_frame *f, uint32_t *stage, char *err,
                         size_t errlen)
{
    cur c;
    nt_status st;

    st = cur_start(&c, f, T(NT_PULL), "nt_pull_decode", err, errlen);
    if (st != NT_OK)
        return st;
    if (stage == NULL) {
        nt__errf(err, errlen, "nt_pull_decode: NULL argument");
        return NT_EARG;
    }
    if (!take32(&c, "stage", stage) || !at_end(&c, "stage"))
        return NT_EFRAME;
    return NT_OK;
}

/* CTL / CTL_REPLY: u32 id, u32 json_len, json, blob = the rest. */
nt_status nt_ctl_decode(const nt_frame *f, uint32_t *id, const char **json,
                        size_t *json_len, const uint8_t **blob,
                        size_t *blob_len, char *err, size_t errlen)
{
    cur c;
    nt_status st;
    uint32_t jl;
    int bad;

    st = cur_start(&c, f, T(NT_CTL) | T(NT_CTL_REPLY), "nt_ctl_decode", err,
                   errlen);
    if (st != NT_OK)
        return st;
    if (id == NULL || json == NULL || json_len == NULL || blob == NULL ||
        blob_len == NULL) {
        nt__errf(err, errlen, "nt_ctl_decode: NULL argument");
        return NT_EARG;
    }
    if (!take32(&c, "id", id) || !take32(&c, "json_len", &jl))
        return NT_EFRAME;
    if (jl > NT_MAX_CTL_JSON) {
        nt__errf(err, errlen, "%s: json_len %lu exceeds %u at byte 4", c.what,
                 (unsigned long)jl, NT_MAX_CTL_JSON);
        return NT_EFRAME;
    }
    if (!need(&c, jl, "json"))
        return NT_EFRAME;
    bad = text_check(c.p + c.off, jl);
    if (bad) {
        nt__errf(err, errlen, "%s: json at byte 8 is %s", c.what,
                 bad == 1 ? "not valid UTF-8" : "holding a NUL byte");
        return NT_EFRAME;
    }
    *json = (const char *)(c.p + c.off);
    *json_len = jl;
    c.off += jl;
    *blob = c.p + c.off;
    *blob_len = c.len - c.off;
    return NT_OK;
}

/* The reason is copied into reason[0..cap) NUL-terminated, cut at a
 * character boundary when cap is too small (cap 256 always suffices);
 * reason may be NULL with cap 0 to validate only. */
nt_status nt_refuse_decode(const nt_frame *f, char *reason, size_t cap,
                           char *err, size_t errlen)
{
    cur c;
    nt_status st;
    uint8_t rlen;
    size_t n;
    int bad;

    st = cur_start(&c, f, T(NT_REFUSE), "nt_refuse_decode", err, errlen);
    if (st != NT_OK)
        return st;
    if (reason == NULL && cap > 0) {
        nt__errf(err, errlen, "nt_refuse_decode: NULL argument");
        return NT_EARG;
    }
    if (!take8(&c, "reason_len", &rlen) || !need(&c, rlen, "reason"))
        return NT_EFRAME;
    bad = text_check(c.p + c.off, rlen);
    if (bad) {
        nt__errf(err, errlen, "REFUSE: reason %s",
             bad == 1 ? "is not UTF-8" : "contains a NUL byte");
        return NT_EFRAME;
    }
    if (cap > 0) {
        n = rlen < cap - 1 ? rlen : cap - 1;
        n = utf8_valid_prefix(c.p + c.off, n);
        memcpy(reason, c.p + c.off, n);
        reason[n] = '\0';
    }
    c.off += rlen;
    if (!at_end(&c, "reason"))
        return NT_EFRAME;
    return NT_OK;
}

/* Decodes the message at c->off into *m (borrowing topic and data from the
 * payload) and advances c->off.  Returns 1, or 0 with the reason in c->err
 * (c->what names the message). */
static int msg_decode(cur *c, nt_msg *m)
{
    int bad;

    if (!take64(c, "seq", &m->seq) || !take32(c, "origin", &m->origin) ||
        !take64(c, "origin_seq", &m->origin_seq) ||
        !take64(c, "ts_ns", &m->ts_ns) || !take16(c, "stage", &m->stage) ||
        !take8(c, "kind", &m->kind))
        return 0;
    if (m->kind > 1) {
        nt__errf(c->err, c->errlen, "%s: unknown kind %u", cur_what(c),
             (unsigned)m->kind);
        return 0;
    }
    if (!take8(c, "topic_len", &m->topic_len))
        return 0;
    if (m->topic_len > NT_MAX_TOPIC) {
        nt__errf(c->err, c->errlen, "%s: topic length %u exceeds %u", cur_what(c),
             (unsigned)m->topic_len, NT_MAX_TOPIC);
        return 0;
    }
    if (!need(c, m->topic_len, "topic"))
        return 0;
    bad = text_check(c->p + c->off, m->topic_len);
    if (bad) {
        nt__errf(c->err, c->errlen, "%s: topic %s", cur_what(c),
             bad == 1 ? "is not UTF-8" : "contains a NUL byte");
        return 0;
    }
    m->topic = (const char *)(c->p + c->off);
    c->off += m->topic_len;
    if (!take32(c, "len", &m->len))
        return 0;
    if (m->len > NT_MAX_MSG) {
        nt__errf(c->err, c->errlen, "%s: length %lu exceeds %u", cur_what(c),
             (unsigned long)m->len, NT_MAX_MSG);
        return 0;
    }
    if (!need(c, m->len, "data"))
        return 0;
    m->data = c->p + c->off;
    c->off += m->len;
    return 1;
}

/* The first call (*off == 0) validates the whole frame (count, every
 * message, no trailing bytes), so a broken frame is refused before any of
 * its messages is handed out; later calls decode the message at *off.
 * *off == f->len means the end (NT_AGAIN). */
nt_status nt_data_next(const nt_frame *f, size_t *off, nt_msg *m, char *err,
                       size_t errlen)
{
    cur c;
    nt_status st;
    nt_msg tmp;
    uint32_t count, i;
    char what[48];

    st = cur_start(&c, f, T(NT_DATA), "nt_data_next", err, errlen);
    if (st != NT_OK)
        return st;
    if (off == NULL || m == NULL) {
        nt__errf(err, errlen, "nt_data_next: NULL argument");
        return NT_EARG;
    }
    if (*off == 0) {
        if (!take32(&c, "count", &count))
            return NT_EFRAME;
        c.what_fmt = "DATA message %lu";
        for (i = 0; i < count; i++) {
            c.what_arg = i;
            if (!msg_decode(&c, &tmp))
                return NT_EFRAME;
        }
        c.what_fmt = NULL;
        if (c.off != c.len) {
            snprintf(what, sizeof what, "%lu messages", (unsigned long)count);
            if (!at_end(&c, what))
                return NT_EFRAME;
        }
        *off = 4;
    }
    if (*off > f->len) {
        nt__errf(err, errlen, "DATA: offset %lu is beyond the payload (%lu bytes)",
             (unsigned long)*off, (unsigned long)f->len);
        return NT_EARG;
    }
    if (*off == f->len)
        return NT_AGAIN;
    c.off = *off;
    c.what_fmt = "DATA message at byte %lu";
    c.what_arg = (unsigned long)*off;
    if (!msg_decode(&c, m))
        return NT_EFRAME;
    *off = c.off;
    return NT_OK;
}

/* ------------------------------------------------------------------------ */
/* Encoders.  b->frame_start holds 1 + the offset of an open DATA frame (0:
 * none), so a zero-initialised nt_buf is a valid empty buffer.  Every
 * encoder validates what its decoder would check (so whatever we send, the
 * peer accepts), returns NT_EARG for a bad field or while a DATA frame is
 * open (frames would interleave), NT_ENOMEM when max or memory does not
 * allow, and leaves the buffer as it was on any error. */

static size_t buf_max(const nt_buf *b)
{
    return b->max ? b->max : NT_HEADER + (size_t)NT_MAX_PAYLOAD;
}

void nt_buf_init(nt_buf *b, size_t max)
{
    if (b == NULL)
        return;
    memset(b, 0, sizeof *b);
    b->max = max;
}

void nt_buf_free(nt_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    nt_buf_init(b, b->max);
}

void nt_buf_reset(nt_buf *b)
{
    if (b == NULL)
        return;
    b->len = 0;
    b->frame_start = 0;
    b->count = 0;
}

/* Makes room for n more bytes: doubling from 256, never beyond max.
 * Returns 1, or 0 (nothing changed) when max or memory does not allow. */
static int buf_room(nt_buf *b, size_t n)
{
    size_t max = buf_max(b), need, cap;
    uint8_t *nd;

    if (b->len > max || n > max - b->len)
        return 0;
    need = b->len + n;
    if (need <= b->cap)
        return 1;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > max / 2 ? max : cap * 2;
    if (cap > max)
        cap = max;
    nd = realloc(b->data, cap);
    if (nd == NULL)
        return 0;
    b->data = nd;
    b->cap = cap;
    return 1;
}

/* Writes a frame header (CRC filled by frame_seal) at p. */
static void put_header(uint8_t *p, unsigned type, uint32_t len)
{
    p[0] = 'I';
    p[1] = 'F';
    p[2] = NT_VERSION;
    p[3] = (uint8_t)type;
    wr32(p + 4, len);
    wr32(p + 8, 0);
}

static void frame_seal(uint8_t *p, uint32_t len)
{
    wr32(p + 4, len);
    wr32(p + 8, nt_crc32(p + NT_HEADER, len));
}

/* Appends one complete frame with the given payload. */
static nt_status put_frame(nt_buf *b, unsigned type, const uint8_t *payload,
                           uint32_t len)
{
    uint8_t *p;

    if (b == NULL || b->frame_start != 0)
        return NT_EARG; /* a DATA frame is open */
    if (!buf_room(b, NT_HEADER + (size_t)len))
        return NT_ENOMEM;
    p = b->data + b->len;
    put_header(p, type, len);
    if (len > 0)
        memcpy(p + NT_HEADER, payload, len);
    frame_seal(p, len);
    b->len += NT_HEADER + (size_t)len;
    return NT_OK;
}

/* HELLO/WELCOME: role 1..4, name 1..NT_MAX_NAME bytes of UTF-8. */
nt_status nt_put_hello(nt_buf *b, uint8_t type, const nt_hello *h)
{
    uint8_t pl[HELLO_FIXED + NT_MAX_NAME];
    size_t n;

    if (h == NULL || (type != NT_HELLO && type != NT_WELCOME) ||
        h->role < NT_ROLE_DEVICE || h->role > NT_ROLE_OPERATOR)
        return NT_EARG;
    n = strnlen(h->name, sizeof h->name);
    if (n == 0 || n > NT_MAX_NAME ||
        text_check((const uint8_t *)h->name, n) != 0)
        return NT_EARG;
    pl[0] = h->role;
    pl[1] = (uint8_t)n;
    memcpy(pl + 2, h->name, n);
    wr64(pl + 2 + n, h->flow_hash);
    wr64(pl + 10 + n, h->last_seq_seen);
    return put_frame(b, type, pl, (uint32_t)(HELLO_FIXED + n));
}

/* A reason longer than 255 bytes is cut at a character boundary (reasons
 * are log texts; refusing to send a refusal would help nobody). */
nt_status nt_put_refuse(nt_buf *b, const char *reason)
{
    uint8_t pl[256];
    size_t n;

    if (reason == NULL)
        return NT_EARG;
    n = strlen(reason);
    if (text_check((const uint8_t *)reason, n) != 0)
        return NT_EARG;
    if (n > 255)
        n = utf8_valid_prefix((const uint8_t *)reason, 255);
    pl[0] = (uint8_t)n;
    memcpy(pl + 1, reason, n);
    return put_frame(b, NT_REFUSE, pl, (uint32_t)(1 + n));
}

nt_status nt_put_u64(nt_buf *b, uint8_t type, uint64_t v)
{
    uint8_t pl[8];

    if (type != NT_ACK && type != NT_PING && type != NT_PONG)
        return NT_EARG;
    wr64(pl, v);
    return put_frame(b, type, pl, 8);
}

nt_status nt_put_credit(nt_buf *b, uint32_t stage, uint32_t credits)
{
    uint8_t pl[8];

    wr32(pl, stage);
    wr32(pl + 4, credits);
    return put_frame(b, NT_CREDIT, pl, 8);
}

nt_status nt_put_pull(nt_buf *b, uint32_t stage)
{
    uint8_t pl[4];

    wr32(pl, stage);
    return put_frame(b, NT_PULL, pl, 4);
}

nt_status nt_put_bye(nt_buf *b)
{
    return put_frame(b, NT_BYE, NULL, 0);
}

/* nt_put_ctl's checks; the payload's length in *total. */
static nt_status ctl_check(const nt_buf *b, uint8_t type, const char *json,
                           size_t json_len, const uint8_t *blob,
                           size_t blob_len, size_t *total)
{
    if (b == NULL || b->frame_start != 0 ||
        (type != NT_CTL && type != NT_CTL_REPLY) ||
        (json == NULL && json_len > 0) || (blob == NULL && blob_len > 0) ||
        json_len > NT_MAX_CTL_JSON ||
        text_check((const uint8_t *)json, json_len) != 0)
        return NT_EARG;
    *total = 8 + json_len + blob_len;
    if (blob_len > NT_MAX_PAYLOAD || *total > NT_MAX_PAYLOAD)
        return NT_EARG;
    return NT_OK;
}

nt_status nt_put_ctl_head(nt_buf *b, uint8_t type, uint32_t id,
                          const char *json, size_t json_len,
                          const uint8_t *blob, size_t blob_len)
{
    size_t total, head;
    uint8_t *p;
    nt_status s = ctl_check(b, type, json, json_len, blob, blob_len, &total);
    if (s != NT_OK)
        return s;
    head = NT_HEADER + 8 + json_len;
    if (!buf_room(b, head))
        return NT_ENOMEM;
    p = b->data + b->len;
    put_header(p, type, (uint32_t)total);
    wr32(p + NT_HEADER, id);
    wr32(p + NT_HEADER + 4, (uint32_t)json_len);
    if (json_len > 0)
        memcpy(p + NT_HEADER + 8, json, json_len);
    wr32(p + 8, crc_run(crc_run(0xFFFFFFFFu, p + NT_HEADER, 8 + json_len),
                        blob, blob_len) ^ 0xFFFFFFFFu);
    b->len += head;
    return NT_OK;
}

nt_status nt_put_ctl(nt_buf *b, uint8_t type, uint32_t id, const char *json,
                     size_t json_len, const uint8_t *blob, size_t blob_len)
{
    uint8_t hd[8];
    size_t total;
    uint8_t *p;
    nt_status s = ctl_check(b, type, json, json_len, blob, blob_len, &total);
    if (s != NT_OK)
        return s;
    if (!buf_room(b, NT_HEADER + total))
        return NT_ENOMEM;
    wr32(hd, id);
    wr32(hd + 4, (uint32_t)json_len);
    p = b->data + b->len;
    put_header(p, type, (uint32_t)total);
    memcpy(p + NT_HEADER, hd, 8);
    if (json_len > 0)
        memcpy(p + NT_HEADER + 8, json, json_len);
    if (blob_len > 0)
        memcpy(p + NT_HEADER + 8 + json_len, blob, blob_len);
    frame_seal(p, (uint32_t)total);
    b->len += NT_HEADER + total;
    return NT_OK;
}

/* Opens a DATA frame (header and a count of 0, sealed by nt_data_end). */
nt_status nt_data_begin(nt_buf *b)
{
    if (b == NULL || b->frame_start != 0)
        return NT_EARG;
    if (!buf_room(b, NT_HEADER + 4))
        return NT_ENOMEM;
    put_header(b->data + b->len, NT_DATA, 4);
    wr32(b->data + b->len + NT_HEADER, 0);
    b->frame_start = b->len + 1;
    b->count = 0;
    b->len += NT_HEADER + 4;
    return NT_OK;
}

/* NT_EFULL (frame untouched) when the message would take the payload past
 * NT_MAX_PAYLOAD or the buffer past its max while something can be flushed
 * first (this frame holds messages or other frames precede it); NT_ENOMEM
 * when even that would not help or memory runs out; NT_EARG for a bad
 * field or no open frame. */
nt_status nt_data_add(nt_buf *b, const nt_msg *m)
{
    size_t start, size;
    uint8_t *p;

    if (b == NULL || m == NULL || b->frame_start == 0 || m->kind > 1 ||
        m->topic_len > NT_MAX_TOPIC || m->len > NT_MAX_MSG ||
        (m->topic == NULL && m->topic_len > 0) ||
        (m->data == NULL && m->len > 0) ||
        text_check((const uint8_t *)m->topic, m->topic_len) != 0)
        return NT_EARG;
    start = b->frame_start - 1;
    size = MSG_FIXED + m->topic_len + (size_t)m->len;
    if (b->len - start - NT_HEADER + size > NT_MAX_PAYLOAD ||
        b->count == UINT32_MAX)
        return NT_EFULL;
    if (!buf_room(b, size)) {
        size_t max = buf_max(b);
        int fits_alone = NT_HEADER + 4 + size <= max;
        return (b->count > 0 || start > 0) && fits_alone ? NT_EFULL
                                                          : NT_ENOMEM;
    }
    p = b->data + b->len;
    wr64(p, m->seq);
    wr32(p + 8, m->origin);
    wr64(p + 12, m->origin_seq);
    wr64(p + 20, m->ts_ns);
    wr16(p + 28, m->stage);
    p[30] = m->kind;
    p[31] = m->topic_len;
    if (m->topic_len > 0)
        memcpy(p + 32, m->topic, m->topic_len);
    p += 32 + m->topic_len;
    wr32(p, m->len);
    if (m->len > 0)
        memcpy(p + 4, m->data, m->len);
    b->len += size;
    b->count++;
    return NT_OK;
}

/* Writes the count, payload length and CRC of the open DATA frame. */
nt_status nt_data_end(nt_buf *b)
{
    size_t start;
    uint8_t *p;

    if (b == NULL || b->frame_start == 0)
        return NT_EARG;
    start = b->frame_start - 1;
    p = b->data + start;
    wr32(p + NT_HEADER, b->count);
    frame_seal(p, (uint32_t)(b->len - start - NT_HEADER));
    b->frame_start = 0;
    b->count = 0;
    return NT_OK;
}
