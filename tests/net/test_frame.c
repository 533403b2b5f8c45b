/*
 * test_frame.c - cmocka tests of the frame codec (src/net/frame.c): CRC-32
 * known values, byte-exact encodings against hand-written arrays (the wire
 * format is pinned here), round trips of every frame type, every error
 * path with its exact text, partial and split input, and the bounds of
 * nt_buf (NT_EFULL, NT_ENOMEM, max).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net.h"

static char g_err[512];

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                 */

/* Wraps payload[0..len) into a frame of `type` with a correct header and
 * CRC; returns a malloc'ed buffer of NT_HEADER + len bytes. */
static uint8_t *wrap(unsigned type, const uint8_t *payload, size_t len)
{
    uint8_t *f = malloc(NT_HEADER + len + 1);
    uint32_t crc = nt_crc32(payload, len);

    assert_non_null(f);
    f[0] = 'I';
    f[1] = 'F';
    f[2] = NT_VERSION;
    f[3] = (uint8_t)type;
    for (int i = 0; i < 4; i++) {
        f[4 + i] = (uint8_t)((uint32_t)len >> (8 * i));
        f[8 + i] = (uint8_t)(crc >> (8 * i));
    }
    if (len > 0)
        memcpy(f + NT_HEADER, payload, len);
    return f;
}

/* Parses exactly one complete frame out of buf[0..len). */
static nt_frame parse_one(const uint8_t *buf, size_t len)
{
    nt_frame f;
    size_t flen = 0;
    nt_status st = nt_frame_parse(buf, len, &f, &flen, g_err, sizeof g_err);

    if (st != NT_OK)
        fail_msg("parse failed (%d): %s", (int)st, g_err);
    assert_int_equal(flen, len);
    return f;
}

/* Asserts that nt_frame_parse rejects buf[0..len) with exactly `text`. */
static void parse_err(const uint8_t *buf, size_t len, const char *text)
{
    nt_frame f;
    size_t flen = 0;

    g_err[0] = '\0';
    assert_int_equal(nt_frame_parse(buf, len, &f, &flen, g_err, sizeof g_err),
                     NT_EFRAME);
    assert_string_equal(g_err, text);
}

/* A frame view over a raw payload (decoders without nt_frame_parse). */
static nt_frame view(unsigned type, const uint8_t *p, size_t len)
{
    nt_frame f;

    f.type = (uint8_t)type;
    f.len = (uint32_t)len;
    f.payload = p;
    return f;
}

/* Decodes every message of a DATA frame into ms (cap entries); returns the
 * count, failing the test on any error. */
static size_t data_all(const nt_frame *f, nt_msg *ms, size_t cap)
{
    size_t off = 0, n = 0;
    nt_status st;

    while ((st = nt_data_next(f, &off, &ms[n], g_err, sizeof g_err)) ==
           NT_OK) {
        n++;
        assert_true(n <= cap);
    }
    if (st != NT_AGAIN)
        fail_msg("nt_data_next: %s", g_err);
    /* The end is sticky. */
    assert_int_equal(nt_data_next(f, &off, &ms[0], g_err, sizeof g_err),
                     NT_AGAIN);
    return n;
}

/* Runs nt_data_next from the start and expects NT_EFRAME with `text`
 * before any message is handed out. */
static void data_err(const uint8_t *payload, size_t len, const char *text)
{
    uint8_t *buf = wrap(NT_DATA, payload, len);
    nt_frame f = parse_one(buf, NT_HEADER + len);
    size_t off = 0;
    nt_msg m;

    g_err[0] = '\0';
    assert_int_equal(nt_data_next(&f, &off, &m, g_err, sizeof g_err),
                     NT_EFRAME);
    assert_string_equal(g_err, text);
    assert_int_equal(off, 0);
    free(buf);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Appends one DATA message in wire form at p; returns its size. */
static size_t raw_msg(uint8_t *p, uint64_t seq, uint8_t kind,
                      const char *topic, size_t topic_len, uint32_t len,
                      size_t data_bytes)
{
    size_t o = 0;

    put_le(p + o, seq, 8), o += 8;
    put_le(p + o, 7, 4), o += 4;          /* origin */
    put_le(p + o, seq + 100, 8), o += 8;  /* origin_seq */
    put_le(p + o, 1000 * seq, 8), o += 8; /* ts_ns */
    put_le(p + o, 2, 2), o += 2;          /* stage */
    p[o++] = kind;
    p[o++] = (uint8_t)topic_len;
    memcpy(p + o, topic, topic_len), o += topic_len;
    put_le(p + o, len, 4), o += 4;
    memset(p + o, 'x', data_bytes), o += data_bytes;
    return o;
}

/* ------------------------------------------------------------------------ */
/* CRC-32 and status texts.                                                 */

/* The bitwise definition the table-driven nt_crc32 must equal. */
static uint32_t crc_bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;

    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

static void test_crc32(void **state)
{
    static uint8_t rnd[4099];
    uint32_t x = 12345;

    (void)state;
    assert_int_equal(nt_crc32("123456789", 9), 0xCBF43926u);
    assert_int_equal(nt_crc32("", 0), 0);
    assert_int_equal(nt_crc32(NULL, 0), 0);
    assert_int_equal(nt_crc32("a", 1), 0xE8B7BE43u);
    assert_int_equal(
        nt_crc32("The quick brown fox jumps over the lazy dog", 43),
        0x414FA339u);
    for (size_t i = 0; i < sizeof rnd; i++) {
        x = x * 1103515245u + 12345u;
        rnd[i] = (uint8_t)(x >> 16);
    }
    for (size_t n = 0; n <= sizeof rnd; n += 37)
        assert_int_equal(nt_crc32(rnd, n), crc_bitwise(rnd, n));
    /* Every single byte value goes through every table entry. */
    for (unsigned b = 0; b < 256; b++) {
        uint8_t v = (uint8_t)b;
        assert_int_equal(nt_crc32(&v, 1), crc_bitwise(&v, 1));
    }
}

static void test_status_msg(void **state)
{
    (void)state;
    assert_string_equal(nt_status_msg(NT_OK), "ok");
    assert_string_equal(nt_status_msg(NT_AGAIN), "need more bytes");
    assert_string_equal(nt_status_msg(NT_EFRAME), "bad frame");
    assert_string_equal(nt_status_msg(NT_EFULL), "spool full");
    assert_string_equal(nt_status_msg(NT_EAUTH), "peer refused");
    assert_string_equal(nt_status_msg(NT_ECLOSED), "connection closed");
    assert_string_equal(nt_status_msg(NT_STATUS_COUNT), "unknown status");
    assert_string_equal(nt_status_msg((nt_status)-1), "unknown status");
}

/* ------------------------------------------------------------------------ */
/* Byte-exact encodings: the wire format, written out by hand.              */

static const uint8_t k_ping[] = {
    'I', 'F', 0x01, 0x08,   /* magic, version 1, type PING */
    0x08, 0x00, 0x00, 0x00, /* payload length 8 */
    0x25, 0xed, 0xcc, 0xa5, /* CRC-32 of the payload */
    0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* 0x0102030405060708 */
};

static const uint8_t k_hello[] = {
    'I', 'F', 0x01, 0x01, 0x18, 0x00, 0x00, 0x00, 0x37, 0xb5, 0x06, 0xac,
    0x02,                               /* role edge */
    0x06, 'e', 'd', 'g', 'e', '-', '1', /* name */
    0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* flow_hash */
    0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* last_seq_seen 42 */
};

static const uint8_t k_refuse[] = {
    'I', 'F', 0x01, 0x03, 0x08, 0x00, 0x00, 0x00, 0x35, 0x26, 0x20, 0xfa,
    0x07, 'n', 'o', ' ', 'r', 'o', 'l', 'e',
};

static const uint8_t k_credit[] = {
    'I', 'F', 0x01, 0x06, 0x08, 0x00, 0x00, 0x00, 0xde, 0xb8, 0xe9, 0x5f,
    0x03, 0x00, 0x00, 0x00, /* stage 3 */
    0x64, 0x00, 0x00, 0x00, /* credits 100 */
};

static const uint8_t k_pull[] = {
    'I', 'F', 0x01, 0x07, 0x04, 0x00, 0x00, 0x00, 0xa0, 0x7d, 0x8f, 0x8a,
    0x02, 0x01, 0x00, 0x00, /* stage 258 */
};

static const uint8_t k_bye[] = {
    'I', 'F', 0x01, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static const uint8_t k_data[] = {
    'I', 'F', 0x01, 0x04, 0x51, 0x00, 0x00, 0x00, 0x8d, 0x68, 0xfc, 0xc3,
    0x02, 0x00, 0x00, 0x00, /* count 2 */
    /* message 0 */
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* seq 1 */
    0x07, 0x00, 0x00, 0x00,                         /* origin 7 */
    0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* origin_seq 100 */
    0x88, 0x13, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* ts_ns 5000 */
    0x02, 0x00,                                     /* stage 2 */
    0x00,                                           /* kind data */
    0x03, 'c', 'o', '2',                            /* topic */
    0x02, 0x00, 0x00, 0x00, 'h', 'i',               /* len 2, data */
    /* message 1 */
    0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* seq 2 */
    0x07, 0x00, 0x00, 0x00,                         /* origin 7 */
    0x65, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* origin_seq 101 */
    0x70, 0x17, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* ts_ns 6000 */
    0x01, 0x00,                                     /* stage 1 */
    0x01,                                           /* kind actuation */
    0x00,                                           /* no topic */
    0x00, 0x00, 0x00, 0x00,                         /* len 0 */
};

static void assert_buf(const nt_buf *b, const uint8_t *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

static void test_encode_exact(void **state)
{
    nt_buf b;
    nt_hello h;
    nt_msg m;

    (void)state;
    nt_buf_init(&b, 0);
    assert_int_equal(nt_put_u64(&b, NT_PING, 0x0102030405060708ull), NT_OK);
    assert_buf(&b, k_ping, sizeof k_ping);

    nt_buf_reset(&b);
    memset(&h, 0, sizeof h);
    h.role = NT_ROLE_EDGE;
    snprintf(h.name, sizeof h.name, "edge-1");
    h.flow_hash = 0x1122334455667788ull;
    h.last_seq_seen = 42;
    assert_int_equal(nt_put_hello(&b, NT_HELLO, &h), NT_OK);
    assert_buf(&b, k_hello, sizeof k_hello);

    nt_buf_reset(&b);
    assert_int_equal(nt_put_refuse(&b, "no role"), NT_OK);
    assert_buf(&b, k_refuse, sizeof k_refuse);

    nt_buf_reset(&b);
    assert_int_equal(nt_put_credit(&b, 3, 100), NT_OK);
    assert_buf(&b, k_credit, sizeof k_credit);

    nt_buf_reset(&b);
    assert_int_equal(nt_put_pull(&b, 258), NT_OK);
    assert_buf(&b, k_pull, sizeof k_pull);

    nt_buf_reset(&b);
    assert_int_equal(nt_put_bye(&b), NT_OK);
    assert_buf(&b, k_bye, sizeof k_bye);

    nt_buf_reset(&b);
    assert_int_equal(nt_data_begin(&b), NT_OK);
    memset(&m, 0, sizeof m);
    m.seq = 1, m.origin = 7, m.origin_seq = 100, m.ts_ns = 5000, m.stage = 2;
    m.kind = 0, m.topic = "co2", m.topic_len = 3;
    m.data = (const uint8_t *)"hi", m.len = 2;
    assert_int_equal(nt_data_add(&b, &m), NT_OK);
    m.seq = 2, m.origin_seq = 101, m.ts_ns = 6000, m.stage = 1, m.kind = 1;
    m.topic = NULL, m.topic_len = 0, m.data = NULL, m.len = 0;
    assert_int_equal(nt_data_add(&b, &m), NT_OK);
    assert_int_equal(nt_data_end(&b), NT_OK);
    assert_buf(&b, k_data, sizeof k_data);

    /* Frames append: the buffer holds a stream. */
    assert_int_equal(nt_put_bye(&b), NT_OK);
    assert_int_equal(b.len, sizeof k_data + sizeof k_bye);
    assert_memory_equal(b.data + sizeof k_data, k_bye, sizeof k_bye);
    nt_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

/* The hand-written arrays decode to the values they spell. */
static void test_decode_exact(void **state)
{
    nt_frame f;
    nt_hello h;
    uint64_t v;
    uint32_t stage, credits;
    char reason[256];
    nt_msg ms[4];

    (void)state;
    f = parse_one(k_ping, sizeof k_ping);
    assert_int_equal(f.type, NT_PING);
    assert_int_equal(f.len, 8);
    assert_ptr_equal(f.payload, k_ping + NT_HEADER);
    assert_int_equal(nt_u64_decode(&f, &v, g_err, sizeof g_err), NT_OK);
    assert_int_equal(v, 0x0102030405060708ull);

    f = parse_one(k_hello, sizeof k_hello);
    assert_int_equal(nt_hello_decode(&f, &h, g_err, sizeof g_err), NT_OK);
    assert_int_equal(h.role, NT_ROLE_EDGE);
    assert_string_equal(h.name, "edge-1");
    assert_int_equal(h.flow_hash, 0x1122334455667788ull);
    assert_int_equal(h.last_seq_seen, 42);

    f = parse_one(k_refuse, sizeof k_refuse);
    assert_int_equal(nt_refuse_decode(&f, reason, sizeof reason, g_err,
                                      sizeof g_err),
                     NT_OK);
    assert_string_equal(reason, "no role");

    f = parse_one(k_credit, sizeof k_credit);
    assert_int_equal(
        nt_credit_decode(&f, &stage, &credits, g_err, sizeof g_err), NT_OK);
    assert_int_equal(stage, 3);
    assert_int_equal(credits, 100);

    f = parse_one(k_pull, sizeof k_pull);
    assert_int_equal(nt_pull_decode(&f, &stage, g_err, sizeof g_err), NT_OK);
    assert_int_equal(stage, 258);

    f = parse_one(k_bye, sizeof k_bye);
    assert_int_equal(f.type, NT_BYE);
    assert_int_equal(f.len, 0);

    f = parse_one(k_data, sizeof k_data);
    assert_int_equal(data_all(&f, ms, 4), 2);
    assert_int_equal(ms[0].seq, 1);
    assert_int_equal(ms[0].origin, 7);
    assert_int_equal(ms[0].origin_seq, 100);
    assert_int_equal(ms[0].ts_ns, 5000);
    assert_int_equal(ms[0].stage, 2);
    assert_int_equal(ms[0].kind, 0);
    assert_int_equal(ms[0].topic_len, 3);
    assert_memory_equal(ms[0].topic, "co2", 3);
    assert_int_equal(ms[0].len, 2);
    assert_memory_equal(ms[0].data, "hi", 2);
    /* Borrowed from the frame. */
    assert_ptr_equal(ms[0].data, k_data + NT_HEADER + 4 + 32 + 3 + 4);
    assert_int_equal(ms[1].seq, 2);
    assert_int_equal(ms[1].origin_seq, 101);
    assert_int_equal(ms[1].ts_ns, 6000);
    assert_int_equal(ms[1].stage, 1);
    assert_int_equal(ms[1].kind, 1);
    assert_int_equal(ms[1].topic_len, 0);
    assert_int_equal(ms[1].len, 0);
}

/* ------------------------------------------------------------------------ */
/* Round trips.                                                             */

static void test_roundtrip_small(void **state)
{
    nt_buf b;
    nt_hello h, h2;
    nt_frame f;
    size_t flen, off = 0;
    uint64_t v;
    uint32_t s, c;
    char reason[256];
    static const uint8_t types[] = {NT_ACK, NT_PING, NT_PONG};
    static const uint64_t vals[] = {0, 1, UINT64_MAX};

    (void)state;
    nt_buf_init(&b, 0);
    /* HELLO and WELCOME with every role, a maximal UTF-8 name. */
    for (int type = NT_HELLO; type <= NT_WELCOME; type++)
        for (int role = NT_ROLE_DEVICE; role <= NT_ROLE_OPERATOR; role++) {
            memset(&h, 0, sizeof h);
            h.role = (uint8_t)role;
            memset(h.name, 'n', NT_MAX_NAME);
            memcpy(h.name, "\xc3\xa9\xf0\x9f\x98\x80", 6); /* e-acute, emoji */
            h.flow_hash = UINT64_MAX - (uint64_t)role;
            h.last_seq_seen = (uint64_t)role << 40;
            assert_int_equal(nt_put_hello(&b, (uint8_t)type, &h), NT_OK);
        }
    for (int type = NT_HELLO; type <= NT_WELCOME; type++)
        for (int role = NT_ROLE_DEVICE; role <= NT_ROLE_OPERATOR; role++) {
            assert_int_equal(nt_frame_parse(b.data + off, b.len - off, &f,
                                            &flen, g_err, sizeof g_err),
                             NT_OK);
            assert_int_equal(f.type, type);
            assert_int_equal(flen, NT_HEADER + 18 + NT_MAX_NAME);
            assert_int_equal(nt_hello_decode(&f, &h2, g_err, sizeof g_err),
                             NT_OK);
            assert_int_equal(h2.role, role);
            assert_int_equal(strlen(h2.name), NT_MAX_NAME);
            assert_memory_equal(h2.name, "\xc3\xa9\xf0\x9f\x98\x80nnn", 9);
            assert_int_equal(h2.flow_hash, UINT64_MAX - (uint64_t)role);
            assert_int_equal(h2.last_seq_seen, (uint64_t)role << 40);
            off += flen;
        }
    assert_int_equal(off, b.len);

    for (size_t t = 0; t < 3; t++)
        for (size_t i = 0; i < 3; i++) {
            nt_buf_reset(&b);
            assert_int_equal(nt_put_u64(&b, types[t], vals[i]), NT_OK);
            f = parse_one(b.data, b.len);
            assert_int_equal(f.type, types[t]);
            assert_int_equal(nt_u64_decode(&f, &v, g_err, sizeof g_err),
                             NT_OK);
            assert_int_equal(v, vals[i]);
        }

    nt_buf_reset(&b);
    assert_int_equal(nt_put_credit(&b, UINT32_MAX, 0), NT_OK);
    f = parse_one(b.data, b.len);
    assert_int_equal(nt_credit_decode(&f, &s, &c, g_err, sizeof g_err), NT_OK);
    assert_int_equal(s, UINT32_MAX);
    assert_int_equal(c, 0);

    nt_buf_reset(&b);
    assert_int_equal(nt_put_pull(&b, 0), NT_OK);
    f = parse_one(b.data, b.len);
    assert_int_equal(nt_pull_decode(&f, &s, g_err, sizeof g_err), NT_OK);
    assert_int_equal(s, 0);

    /* Empty and non-ASCII reasons. */
    nt_buf_reset(&b);
    assert_int_equal(nt_put_refuse(&b, ""), NT_OK);
    f = parse_one(b.data, b.len);
    assert_int_equal(f.len, 1);
    reason[0] = 'x';
    assert_int_equal(nt_refuse_decode(&f, reason, sizeof reason, g_err,
                                      sizeof g_err),
                     NT_OK);
    assert_string_equal(reason, "");
    nt_buf_reset(&b);
    assert_int_equal(nt_put_refuse(&b, "r\xc3\xb4le refus\xc3\xa9"), NT_OK);
    f = parse_one(b.data, b.len);
    assert_int_equal(nt_refuse_decode(&f, reason, sizeof reason, g_err,
                                      sizeof g_err),
                     NT_OK);
    assert_string_equal(reason, "r\xc3\xb4le refus\xc3\xa9");
    /* A small cap cuts at a character boundary: "r\xc3\xb4" needs 4. */
    assert_int_equal(nt_refuse_decode(&f, reason, 3, g_err, sizeof g_err),
                     NT_OK);
    assert_string_equal(reason, "r");
    assert_int_equal(nt_refuse_decode(&f, reason, 4, g_err, sizeof g_err),
                     NT_OK);
    assert_string_equal(reason, "r\xc3\xb4");
    /* Validation only. */
    assert_int_equal(nt_refuse_decode(&f, NULL, 0, g_err, sizeof g_err),
                     NT_OK);
    nt_buf_free(&b);
}

/* A reason longer than 255 bytes is cut at a character boundary. */
static void test_refuse_long(void **state)
{
    char longr[601];
    char reason[256];
    nt_buf b;
    nt_frame f;

    (void)state;
    for (int i = 0; i < 300; i++)
        memcpy(longr + 2 * i, "\xc3\xa9", 2);
    longr[600] = '\0';
    nt_buf_init(&b, 0);
    assert_int_equal(nt_put_refuse(&b, longr), NT_OK);
    f = parse_one(b.data, b.len);
    assert_int_equal(f.len, 1 + 254);
    assert_int_equal(f.payload[0], 254);
    assert_int_equal(nt_refuse_decode(&f, reason, sizeof reason, g_err,
                                      sizeof g_err),
                     NT_OK);
    assert_int_equal(strlen(reason), 254);
    assert_memory_equal(reason, longr, 254);
    memset(longr, 'a', 600);
    nt_buf_reset(&b);
    assert_int_equal(nt_put_refuse(&b, longr), NT_OK);
    assert_int_equal(b.len, NT_HEADER + 256);
    nt_buf_free(&b);
}

/* A message with maximal fields, distinct per index. */
static void max_msg(nt_msg *m, uint32_t i, uint8_t *data, char *topic)
{
    memset(m, 0, sizeof *m);
    m->seq = UINT64_MAX - i;
    m->origin = UINT32_MAX - i;
    m->origin_seq = UINT64_MAX / 3 + i;
    m->ts_ns = UINT64_MAX - 7 * (uint64_t)i;
    m->stage = (uint16_t)(UINT16_MAX - i);
    m->kind = (uint8_t)(i & 1);
    memset(topic, 'a' + (int)(i % 26), NT_MAX_TOPIC);
    m->topic = topic;
    m->topic_len = NT_MAX_TOPIC;
    memset(data, (int)i, NT_MAX_MSG);
    m->data = data;
    m->len = NT_MAX_MSG;
}

/* 15 maximal messages fill a DATA frame; the 16th gets NT_EFULL and leaves
 * the frame untouched; the frame decodes back to the same messages. */
static void test_data_max(void **state)
{
    uint8_t *data = malloc(NT_MAX_MSG);
    uint8_t *copy;
    char topic[NT_MAX_TOPIC];
    nt_buf b;
    nt_msg m, out[16];
    nt_frame f;
    size_t n, len_before, per = 36 + NT_MAX_TOPIC + NT_MAX_MSG;
    uint32_t i;

    (void)state;
    assert_non_null(data);
    nt_buf_init(&b, 0);
    assert_int_equal(nt_data_begin(&b), NT_OK);
    for (i = 0; i < 15; i++) {
        max_msg(&m, i, data, topic);
        assert_int_equal(nt_data_add(&b, &m), NT_OK);
    }
    assert_int_equal(b.count, 15);
    len_before = b.len;
    assert_int_equal(len_before, NT_HEADER + 4 + 15 * per);
    copy = malloc(len_before);
    assert_non_null(copy);
    memcpy(copy, b.data, len_before);
    max_msg(&m, 15, data, topic);
    assert_int_equal(nt_data_add(&b, &m), NT_EFULL);
    assert_int_equal(b.len, len_before);
    assert_int_equal(b.count, 15);
    assert_memory_equal(b.data, copy, len_before);
    /* A smaller message still fits. */
    m.len = 1000;
    assert_int_equal(nt_data_add(&b, &m), NT_OK);
    assert_int_equal(nt_data_end(&b), NT_OK);
    assert_true(b.len - NT_HEADER <= NT_MAX_PAYLOAD);
    assert_true(b.cap <= NT_HEADER + NT_MAX_PAYLOAD);

    f = parse_one(b.data, b.len);
    n = data_all(&f, out, 16);
    assert_int_equal(n, 16);
    for (i = 0; i < 16; i++) {
        max_msg(&m, i, data, topic);
        if (i == 15)
            m.len = 1000;
        assert_int_equal(out[i].seq, m.seq);
        assert_int_equal(out[i].origin, m.origin);
        assert_int_equal(out[i].origin_seq, m.origin_seq);
        assert_int_equal(out[i].ts_ns, m.ts_ns);
        assert_int_equal(out[i].stage, m.stage);
        assert_int_equal(out[i].kind, m.kind);
        assert_int_equal(out[i].topic_len, NT_MAX_TOPIC);
        assert_memory_equal(out[i].topic, topic, NT_MAX_TOPIC);
        assert_int_equal(out[i].len, m.len);
        assert_memory_equal(out[i].data, data, m.len);
    }
    free(copy);
    free(data);
    nt_buf_free(&b);
}

/* Many small messages, an empty DATA frame, and a stream of mixed frames
 * parsed back in order. */
static void test_data_many(void **state)
{
    nt_buf b;
    nt_msg m, *out;
    nt_frame f;
    size_t off = 0, flen, n;
    char topic[8];
    uint32_t i, total = 0;

    (void)state;
    out = calloc(30000, sizeof *out);
    assert_non_null(out);
    nt_buf_init(&b, 0);
    assert_int_equal(nt_data_begin(&b), NT_OK);
    assert_int_equal(nt_data_end(&b), NT_OK);
    assert_int_equal(nt_put_u64(&b, NT_ACK, 9), NT_OK);
    assert_int_equal(nt_data_begin(&b), NT_OK);
    for (i = 0;; i++) {
        int tl = snprintf(topic, sizeof topic, "t%u", (unsigned)(i % 1000));
        memset(&m, 0, sizeof m);
        m.seq = i + 1;
        m.origin = i % 50;
        m.topic = topic;
        m.topic_len = (uint8_t)tl;
        m.data = (const uint8_t *)&i;
        m.len = sizeof i;
        nt_status st = nt_data_add(&b, &m);
        if (st == NT_EFULL)
            break;
        assert_int_equal(st, NT_OK);
    }
    /* 1 MiB holds this many 36 + 4 + (2..4)-byte messages. */
    assert_true(i > 1048572 / 44 && i <= 1048572 / 42);
    assert_int_equal(nt_data_end(&b), NT_OK);

    /* Empty DATA, then ACK, then the big one. */
    assert_int_equal(
        nt_frame_parse(b.data, b.len, &f, &flen, g_err, sizeof g_err), NT_OK);
    assert_int_equal(f.type, NT_DATA);
    assert_int_equal(data_all(&f, out, 1), 0);
    off += flen;
    assert_int_equal(nt_frame_parse(b.data + off, b.len - off, &f, &flen,
                                    g_err, sizeof g_err),
                     NT_OK);
    assert_int_equal(f.type, NT_ACK);
    off += flen;
    assert_int_equal(nt_frame_parse(b.data + off, b.len - off, &f, &flen,
                                    g_err, sizeof g_err),
                     NT_OK);
    off += flen;
    assert_int_equal(off, b.len);
    n = data_all(&f, out, 30000);
    assert_int_equal(n, i);
    for (size_t k = 0; k < n; k++) {
        uint32_t v;
        char want[8];
        int tl = snprintf(want, sizeof want, "t%u", (unsigned)(k % 1000));
        assert_int_equal(out[k].seq, k + 1);
        assert_int_equal(out[k].origin, k % 50);
        assert_int_equal(out[k].topic_len, tl);
        assert_memory_equal(out[k].topic, want, (size_t)tl);
        memcpy(&v, out[k].data, sizeof v);
        assert_int_equal(v, k);
        total++;
    }
    assert_int_equal(total, i);
    free(out);
    nt_buf_free(&b);
}

/* ------------------------------------------------------------------------ */
/* nt_frame_parse: errors, partial input, splits.                           */

static void test_parse_errors(void **state)
{
    uint8_t h[NT_HEADER + 8];
    nt_frame f;
    size_t flen;

    (void)state;
    parse_err((const uint8_t *)"AB", 2, "bad magic 0x4142");
    parse_err((const uint8_t *)"IG\x01\x08", 4, "bad magic 0x4947");
    parse_err((const uint8_t *)"IF\x07", 3, "unsupported version 7");
    parse_err((const uint8_t *)"IF\x00\x08", 4, "unsupported version 0");
    parse_err((const uint8_t *)"IF\x01\x2a", 4, "unknown frame type 42");
    parse_err((const uint8_t *)"IF\x01\x00", 4, "unknown frame type 0");
    parse_err((const uint8_t *)"IF\x01\x0d", 4, "unknown frame type 13");
    /* Lengths are refused from the header alone (8 bytes suffice). */
    memcpy(h, "IF\x01\x04", 4);
    put_le(h + 4, 2000000, 4);
    parse_err(h, 8, "payload length 2000000 exceeds 1048576");
    put_le(h + 4, NT_MAX_PAYLOAD + 1, 4);
    parse_err(h, 8, "payload length 1048577 exceeds 1048576");
    put_le(h + 4, UINT32_MAX, 4);
    parse_err(h, 8, "payload length 4294967295 exceeds 1048576");
    put_le(h + 4, 3, 4);
    parse_err(h, 8, "DATA payload length 3 outside 4..1048576");
    h[3] = NT_PING;
    parse_err(h, 8, "PING payload length 3, expected 8");
    h[3] = NT_ACK;
    parse_err(h, 8, "ACK payload length 3, expected 8");
    h[3] = NT_PULL;
    parse_err(h, 8, "PULL payload length 3, expected 4");
    h[3] = NT_BYE;
    parse_err(h, 8, "BYE payload length 3, expected 0");
    h[3] = NT_CREDIT;
    parse_err(h, 8, "CREDIT payload length 3, expected 8");
    h[3] = NT_HELLO;
    parse_err(h, 8, "HELLO payload length 3 outside 19..81");
    put_le(h + 4, 82, 4);
    h[3] = NT_WELCOME;
    parse_err(h, 8, "WELCOME payload length 82 outside 19..81");
    h[3] = NT_REFUSE;
    put_le(h + 4, 0, 4);
    parse_err(h, 8, "REFUSE payload length 0 outside 1..256");
    put_le(h + 4, 257, 4);
    parse_err(h, 8, "REFUSE payload length 257 outside 1..256");
    /* Max payload is accepted by the header check (waits for bytes). */
    h[3] = NT_DATA;
    put_le(h + 4, NT_MAX_PAYLOAD, 4);
    assert_int_equal(nt_frame_parse(h, 8, &f, &flen, g_err, sizeof g_err),
                     NT_AGAIN);

    /* CRC: any flipped payload or CRC bit. */
    memcpy(h, k_ping, sizeof k_ping);
    h[NT_HEADER + 3] ^= 0x10;
    parse_err(h, sizeof k_ping, "CRC mismatch");
    memcpy(h, k_ping, sizeof k_ping);
    h[9] ^= 0x01;
    parse_err(h, sizeof k_ping, "CRC mismatch");
    /* A BYE with a non-zero CRC field. */
    memcpy(h, k_bye, sizeof k_bye);
    h[11] = 1;
    parse_err(h, sizeof k_bye, "CRC mismatch");

    /* err may be NULL; arguments are checked. */
    assert_int_equal(nt_frame_parse((const uint8_t *)"AB", 2, &f, &flen,
                                    NULL, 0),
                     NT_EFRAME);
    assert_int_equal(nt_frame_parse(NULL, 0, &f, &flen, g_err, sizeof g_err),
                     NT_AGAIN);
    assert_int_equal(nt_frame_parse(k_bye, sizeof k_bye, NULL, &flen, g_err,
                                    sizeof g_err),
                     NT_EARG);
    /* A tiny err buffer gets a truncated, terminated text. */
    {
        char small[6];
        assert_int_equal(nt_frame_parse((const uint8_t *)"AB", 2, &f, &flen,
                                        small, sizeof small),
                         NT_EFRAME);
        assert_string_equal(small, "bad m");
    }
}

/* Every proper prefix of every valid frame is NT_AGAIN; the whole frame is
 * NT_OK with its exact length even when more bytes follow. */
static void test_parse_prefixes(void **state)
{
    static const struct {
        const uint8_t *p;
        size_t n;
    } fr[] = {
        {k_ping, sizeof k_ping},     {k_hello, sizeof k_hello},
        {k_refuse, sizeof k_refuse}, {k_credit, sizeof k_credit},
        {k_pull, sizeof k_pull},     {k_bye, sizeof k_bye},
        {k_data, sizeof k_data},
    };
    uint8_t buf[256];
    nt_frame f;
    size_t flen;

    (void)state;
    for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++) {
        for (size_t n = 0; n < fr[i].n; n++) {
            flen = 12345;
            assert_int_equal(nt_frame_parse(fr[i].p, n, &f, &flen, g_err,
                                            sizeof g_err),
                             NT_AGAIN);
            assert_int_equal(flen, 12345);
        }
        memcpy(buf, fr[i].p, fr[i].n);
        memcpy(buf + fr[i].n, k_ping, sizeof k_ping);
        assert_int_equal(nt_frame_parse(buf, fr[i].n + sizeof k_ping, &f,
                                        &flen, g_err, sizeof g_err),
                         NT_OK);
        assert_int_equal(flen, fr[i].n);
        assert_int_equal(f.type, fr[i].p[3]);
        assert_int_equal(f.len, fr[i].n - NT_HEADER);
    }
}

/* A stream of frames delivered in reads of every size from 1 to 40 bytes,
 * reassembled the way a connection does it (append, parse, consume). */
static void test_split_reads(void **state)
{
    nt_buf out;
    nt_hello h;
    uint8_t acc[512];
    size_t acc_len, pos, flen, got;
    uint8_t types[16];
    nt_frame f;
    nt_status st;

    (void)state;
    nt_buf_init(&out, 0);
    memset(&h, 0, sizeof h);
    h.role = NT_ROLE_DEVICE;
    snprintf(h.name, sizeof h.name, "room-01");
    assert_int_equal(nt_put_hello(&out, NT_HELLO, &h), NT_OK);
    assert_int_equal(nt_put_u64(&out, NT_PING, 77), NT_OK);
    assert_int_equal(nt_put_credit(&out, 1, 5), NT_OK);
    assert_int_equal(nt_put_bye(&out), NT_OK);
    memcpy(acc, k_data, sizeof k_data);
    assert_true(out.len + sizeof k_data < sizeof acc);

    for (size_t chunk = 1; chunk <= 40; chunk++) {
        uint8_t stream[512];
        size_t slen = out.len + sizeof k_data;

        memcpy(stream, out.data, out.len);
        memcpy(stream + out.len, k_data, sizeof k_data);
        acc_len = 0;
        got = 0;
        for (pos = 0; pos < slen;) {
            size_t n = slen - pos < chunk ? slen - pos : chunk;
            memcpy(acc + acc_len, stream + pos, n);
            acc_len += n;
            pos += n;
            while ((st = nt_frame_parse(acc, acc_len, &f, &flen, g_err,
                                        sizeof g_err)) == NT_OK) {
                assert_true(got < sizeof types);
                types[got++] = f.type;
                if (f.type == NT_DATA) {
                    nt_msg ms[2];
                    assert_int_equal(data_all(&f, ms, 2), 2);
                    assert_memory_equal(ms[0].data, "hi", 2);
                }
                memmove(acc, acc + flen, acc_len - flen);
                acc_len -= flen;
            }
            assert_int_equal(st, NT_AGAIN);
        }
        assert_int_equal(acc_len, 0);
        assert_int_equal(got, 5);
        assert_int_equal(types[0], NT_HELLO);
        assert_int_equal(types[1], NT_PING);
        assert_int_equal(types[2], NT_CREDIT);
        assert_int_equal(types[3], NT_BYE);
        assert_int_equal(types[4], NT_DATA);
    }
    nt_buf_free(&out);
}

/* ------------------------------------------------------------------------ */
/* Payload decoder errors.                                                  */

/* Expects decoding the payload as `type` to fail with `text`. */
static void payload_err(unsigned type, const void *p, size_t n,
                        const char *text)
{
    nt_frame f = view(type, p, n);
    nt_hello h;
    uint64_t v;
    uint32_t a, b;
    char reason[64];
    nt_status st;

    g_err[0] = '\0';
    switch (type) {
    case NT_HELLO:
    case NT_WELCOME:
        st = nt_hello_decode(&f, &h, g_err, sizeof g_err);
        break;
    case NT_REFUSE:
        st = nt_refuse_decode(&f, reason, sizeof reason, g_err, sizeof g_err);
        break;
    case NT_CREDIT:
        st = nt_credit_decode(&f, &a, &b, g_err, sizeof g_err);
        break;
    case NT_PULL:
        st = nt_pull_decode(&f, &a, g_err, sizeof g_err);
        break;
    default:
        st = nt_u64_decode(&f, &v, g_err, sizeof g_err);
        break;
    }
    assert_int_equal(st, NT_EFRAME);
    assert_string_equal(g_err, text);
}

/* A HELLO payload with the given name bytes. */
static size_t hello_payload(uint8_t *p, uint8_t role, const char *name,
                            size_t nlen)
{
    p[0] = role;
    p[1] = (uint8_t)nlen;
    memcpy(p + 2, name, nlen);
    put_le(p + 2 + nlen, 0xABCD, 8);
    put_le(p + 10 + nlen, 5, 8);
    return 18 + nlen;
}

static void test_hello_errors(void **state)
{
    uint8_t p[128] = {0};
    size_t n;

    (void)state;
    payload_err(NT_HELLO, p, 0,
                "HELLO: truncated at byte 0: role needs 1 byte, 0 left");
    p[0] = 1;
    payload_err(NT_WELCOME, p, 1,
                "WELCOME: truncated at byte 1: name_len needs 1 byte, 0 left");
    n = hello_payload(p, 9, "x", 1);
    payload_err(NT_HELLO, p, n, "HELLO: unknown role 9");
    n = hello_payload(p, 0, "x", 1);
    payload_err(NT_HELLO, p, n, "HELLO: unknown role 0");
    n = hello_payload(p, 1, "", 0);
    payload_err(NT_HELLO, p, n, "HELLO: empty name");
    memset(p + 2, 'a', 64);
    p[0] = 1, p[1] = 64;
    payload_err(NT_HELLO, p, 2 + 64 + 16, "HELLO: name length 64 exceeds 63");
    p[1] = 255;
    payload_err(NT_HELLO, p, 20, "HELLO: name length 255 exceeds 63");
    p[1] = 10;
    payload_err(NT_HELLO, p, 7,
                "HELLO: truncated at byte 2: name needs 10 bytes, 5 left");
    n = hello_payload(p, 1, "a\xc3(", 3);
    payload_err(NT_HELLO, p, n, "HELLO: name is not UTF-8");
    n = hello_payload(p, 1, "a\0b", 3);
    payload_err(NT_HELLO, p, n, "HELLO: name contains a NUL byte");
    n = hello_payload(p, 1, "dev", 3);
    payload_err(NT_HELLO, p, 5 + 4,
                "HELLO: truncated at byte 5: flow_hash needs 8 bytes, 4 left");
    payload_err(
        NT_HELLO, p, n - 1,
        "HELLO: truncated at byte 13: last_seq_seen needs 8 bytes, 7 left");
    p[n] = 0, p[n + 1] = 0;
    payload_err(NT_HELLO, p, n + 2,
                "HELLO: 2 trailing bytes after last_seq_seen");
}

/* UTF-8 edge cases through the HELLO name. */
static void test_utf8(void **state)
{
    static const char *const bad[] = {
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong 3-byte */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xf0\x80\x80\xaf", /* overlong 4-byte */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80", /* beyond */
        "\x80",             /* lone continuation */
        "\xe2\x82",         /* truncated sequence */
        "\xff",
    };
    static const char *const good[] = {
        "\x7f", "\xc2\x80", "\xe0\xa0\x80", "\xed\x9f\xbf",
        "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
    };
    uint8_t p[128];
    size_t n;
    nt_hello h;
    nt_frame f;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = hello_payload(p, 1, bad[i], strlen(bad[i]));
        payload_err(NT_HELLO, p, n, "HELLO: name is not UTF-8");
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        n = hello_payload(p, 1, good[i], strlen(good[i]));
        f = view(NT_HELLO, p, n);
        assert_int_equal(nt_hello_decode(&f, &h, g_err, sizeof g_err), NT_OK);
        assert_string_equal(h.name, good[i]);
    }
}

static void test_small_payload_errors(void **state)
{
    uint8_t p[300];
    nt_frame f;
    uint64_t v;
    uint32_t a, b;
    char reason[8];

    (void)state;
    memset(p, 0, sizeof p);
    payload_err(NT_PING, p, 3,
                "PING: truncated at byte 0: nonce needs 8 bytes, 3 left");
    payload_err(NT_PONG, p, 9, "PONG: 1 trailing byte after nonce");
    payload_err(NT_ACK, p, 0,
                "ACK: truncated at byte 0: seq needs 8 bytes, 0 left");
    payload_err(NT_CREDIT, p, 6,
                "CREDIT: truncated at byte 4: credits needs 4 bytes, 2 left");
    payload_err(NT_CREDIT, p, 12, "CREDIT: 4 trailing bytes after credits");
    payload_err(NT_PULL, p, 2,
                "PULL: truncated at byte 0: stage needs 4 bytes, 2 left");
    payload_err(NT_PULL, p, 5, "PULL: 1 trailing byte after stage");
    payload_err(NT_REFUSE, p, 0,
                "REFUSE: truncated at byte 0: reason_len needs 1 byte, 0 left");
    p[0] = 10;
    memcpy(p + 1, "abc", 3);
    payload_err(NT_REFUSE, p, 4,
                "REFUSE: truncated at byte 1: reason needs 10 bytes, 3 left");
    p[0] = 3;
    payload_err(NT_REFUSE, p, 6, "REFUSE: 2 trailing bytes after reason");
    memcpy(p + 1, "a\xe9z", 3);
    payload_err(NT_REFUSE, p, 4, "REFUSE: reason is not UTF-8");
    memcpy(p + 1, "a\0z", 3);
    payload_err(NT_REFUSE, p, 4, "REFUSE: reason contains a NUL byte");

    /* The wrong decoder for a frame type is a caller error (NT_EARG). */
    f = view(NT_DATA, p, 8);
    assert_int_equal(nt_u64_decode(&f, &v, g_err, sizeof g_err), NT_EARG);
    assert_string_equal(g_err, "nt_u64_decode: cannot decode a DATA frame");
    f = view(NT_PULL, p, 8);
    assert_int_equal(nt_credit_decode(&f, &a, &b, g_err, sizeof g_err),
                     NT_EARG);
    assert_string_equal(g_err, "nt_credit_decode: cannot decode a PULL frame");
    f = view(200, p, 8);
    assert_int_equal(nt_pull_decode(&f, &a, g_err, sizeof g_err), NT_EARG);
    assert_string_equal(g_err, "nt_pull_decode: cannot decode a ? frame");
    f = view(NT_ACK, p, 8);
    assert_int_equal(nt_refuse_decode(&f, reason, sizeof reason, g_err,
                                      sizeof g_err),
                     NT_EARG);
    assert_int_equal(nt_hello_decode(&f, NULL, g_err, sizeof g_err), NT_EARG);
    assert_int_equal(nt_u64_decode(NULL, &v, g_err, sizeof g_err), NT_EARG);
    assert_string_equal(g_err, "nt_u64_decode: NULL frame");
    /* Errors without an err buffer still fail cleanly. */
    f = view(NT_PING, p, 3);
    assert_int_equal(nt_u64_decode(&f, &v, NULL, 0), NT_EFRAME);
}

static void test_data_errors(void **state)
{
    static uint8_t p[8192];
    uint8_t *buf;
    size_t n, off;
    nt_frame f;
    nt_msg m;

    (void)state;
    /* count itself truncated (only reachable without nt_frame_parse). */
    f = view(NT_DATA, p, 2);
    off = 0;
    assert_int_equal(nt_data_next(&f, &off, &m, g_err, sizeof g_err),
                     NT_EFRAME);
    assert_string_equal(g_err,
                        "DATA: truncated at byte 0: count needs 4 bytes, 2 left");

    /* Message 3 of 4 has a 40-byte topic. */
    put_le(p, 4, 4);
    n = 4;
    for (int i = 0; i < 3; i++)
        n += raw_msg(p + n, (uint64_t)i + 1, 0, "co2", 3, 2, 2);
    n += raw_msg(p + n, 4, 0, "0123456789012345678901234567890123456789", 40,
                 2, 2);
    data_err(p, n, "DATA message 3: topic length 40 exceeds 31");

    /* Five good messages and two stray bytes. */
    put_le(p, 5, 4);
    n = 4;
    for (int i = 0; i < 5; i++)
        n += raw_msg(p + n, (uint64_t)i + 1, 1, "t", 1, 3, 3);
    p[n++] = 0xAA;
    p[n++] = 0xBB;
    data_err(p, n, "DATA: 2 trailing bytes after 5 messages");
    /* ... or one stray byte after none. */
    put_le(p, 0, 4);
    p[4] = 0;
    data_err(p, 5, "DATA: 1 trailing byte after 0 messages");

    put_le(p, 1, 4);
    n = 4 + raw_msg(p + 4, 1, 7, "co2", 3, 2, 2);
    data_err(p, n, "DATA message 0: unknown kind 7");

    put_le(p, 2, 4);
    n = 4 + raw_msg(p + 4, 1, 0, "co2", 3, 2, 2);
    n += raw_msg(p + n, 2, 0, "co2", 3, 70000, 0);
    data_err(p, n, "DATA message 1: length 70000 exceeds 65536");

    put_le(p, 1, 4);
    n = 4 + raw_msg(p + 4, 1, 0, "co2", 3, 10, 3);
    data_err(p, n,
             "DATA message 0: truncated at byte 43: data needs 10 bytes, 3 left");
    n = 4 + raw_msg(p + 4, 1, 0, "co2", 3, 10, 0) - 2;
    data_err(p, n,
             "DATA message 0: truncated at byte 39: len needs 4 bytes, 2 left");
    n = 4 + raw_msg(p + 4, 1, 0, "co2", 3, 0, 0);
    data_err(p, 4 + 9,
             "DATA message 0: truncated at byte 12: origin needs 4 bytes, 1 left");
    data_err(p, 4 + 33,
             "DATA message 0: truncated at byte 36: topic needs 3 bytes, 1 left");

    /* count says 3, the payload holds 2; a huge count ends just as fast. */
    put_le(p, 3, 4);
    n = 4 + raw_msg(p + 4, 1, 0, "co2", 3, 2, 2);
    n += raw_msg(p + n, 2, 0, "", 0, 0, 0);
    data_err(p, n,
             "DATA message 2: truncated at byte 81: seq needs 8 bytes, 0 left");
    put_le(p, UINT32_MAX, 4);
    data_err(p, n,
             "DATA message 2: truncated at byte 81: seq needs 8 bytes, 0 left");

    put_le(p, 1, 4);
    n = 4 + raw_msg(p + 4, 1, 0, "c\xffz", 3, 2, 2);
    data_err(p, n, "DATA message 0: topic is not UTF-8");
    n = 4 + raw_msg(p + 4, 1, 0, "c\0z", 3, 2, 2);
    data_err(p, n, "DATA message 0: topic contains a NUL byte");

    /* Offsets past the end are a caller error; a bogus offset inside the
     * payload is decoded with bounds checks. */
    buf = malloc(sizeof k_data);
    assert_non_null(buf);
    memcpy(buf, k_data, sizeof k_data);
    f = parse_one(buf, sizeof k_data);
    off = 999;
    assert_int_equal(nt_data_next(&f, &off, &m, g_err, sizeof g_err),
                     NT_EARG);
    assert_string_equal(g_err,
                        "DATA: offset 999 is beyond the payload (81 bytes)");
    off = f.len - 3;
    assert_int_equal(nt_data_next(&f, &off, &m, g_err, sizeof g_err),
                     NT_EFRAME);
    assert_string_equal(g_err, "DATA message at byte 78: truncated at byte "
                               "78: seq needs 8 bytes, 3 left");
    assert_int_equal(off, f.len - 3);
    assert_int_equal(nt_data_next(&f, NULL, &m, g_err, sizeof g_err),
                     NT_EARG);
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* Encoder argument checks and buffer bounds.                               */

static void test_encode_errors(void **state)
{
    nt_buf b;
    nt_hello h;
    nt_msg m;
    uint8_t one = 1;

    (void)state;
    nt_buf_init(&b, 0);
    memset(&h, 0, sizeof h);
    h.role = NT_ROLE_CLOUD;
    snprintf(h.name, sizeof h.name, "cloud");
    assert_int_equal(nt_put_hello(&b, NT_DATA, &h), NT_EARG);
    assert_int_equal(nt_put_hello(&b, NT_HELLO, NULL), NT_EARG);
    assert_int_equal(nt_put_hello(NULL, NT_HELLO, &h), NT_EARG);
    h.role = 0;
    assert_int_equal(nt_put_hello(&b, NT_HELLO, &h), NT_EARG);
    h.role = 5;
    assert_int_equal(nt_put_hello(&b, NT_HELLO, &h), NT_EARG);
    h.role = NT_ROLE_CLOUD;
    h.name[0] = '\0';
    assert_int_equal(nt_put_hello(&b, NT_HELLO, &h), NT_EARG);
    snprintf(h.name, sizeof h.name, "a\xc3(");
    assert_int_equal(nt_put_hello(&b, NT_HELLO, &h), NT_EARG);
    memset(h.name, 'a', sizeof h.name); /* no terminator within 64 bytes */
    assert_int_equal(nt_put_hello(&b, NT_WELCOME, &h), NT_EARG);
    assert_int_equal(nt_put_u64(&b, NT_DATA, 1), NT_EARG);
    assert_int_equal(nt_put_u64(&b, NT_BYE, 1), NT_EARG);
    assert_int_equal(nt_put_refuse(&b, NULL), NT_EARG);
    assert_int_equal(nt_put_refuse(&b, "caf\xe9"), NT_EARG);
    assert_int_equal(nt_data_add(&b, NULL), NT_EARG);
    assert_int_equal(b.len, 0);

    /* No open DATA frame. */
    memset(&m, 0, sizeof m);
    assert_int_equal(nt_data_add(&b, &m), NT_EARG);
    assert_int_equal(nt_data_end(&b), NT_EARG);
    assert_int_equal(b.len, 0);

    /* An open DATA frame refuses other frames and bad messages. */
    assert_int_equal(nt_data_begin(&b), NT_OK);
    assert_int_equal(b.len, NT_HEADER + 4);
    assert_int_equal(nt_data_begin(&b), NT_EARG);
    assert_int_equal(nt_put_bye(&b), NT_EARG);
    assert_int_equal(nt_put_u64(&b, NT_ACK, 1), NT_EARG);
    m.kind = 2;
    assert_int_equal(nt_data_add(&b, &m), NT_EARG);
    m.kind = 0;
    m.topic_len = 32;
    m.topic = "01234567890123456789012345678901";
    assert_int_equal(nt_data_add(&b, &m), NT_EARG);
    m.topic_len = 1;
    m.topic = NULL;
    assert_int_equal(nt_data_add(&b, &m), NT_EARG);
    m.topic = "\xff";
    assert_int_equal(nt_data_add(&b, &m), NT_EARG);
    m.topic = "t";
    m.len = NT_MAX_MSG + 1;
    m.data = &one;
    assert_int_equal(nt_data_add(&b, &m), NT_EARG);
    m.len = 1;
    m.data = NULL;
    assert_int_equal(nt_data_add(&b, &m), NT_EARG);
    assert_int_equal(b.len, NT_HEADER + 4);
    assert_int_equal(b.count, 0);
    m.data = &one;
    assert_int_equal(nt_data_add(&b, &m), NT_OK);
    assert_int_equal(b.len, NT_HEADER + 4 + 36 + 1 + 1);
    assert_int_equal(nt_data_end(&b), NT_OK);
    assert_int_equal(nt_data_end(&b), NT_EARG);
    assert_int_equal(nt_put_bye(&b), NT_OK);
    nt_buf_free(&b);
}

static void small_msg(nt_msg *m, uint32_t len)
{
    static const uint8_t zeros[128];

    memset(m, 0, sizeof *m);
    m->topic = "co2";
    m->topic_len = 3;
    m->data = zeros;
    m->len = len;
}

static void test_buf_bounds(void **state)
{
    nt_buf b, z;
    nt_msg m;
    nt_frame f;
    nt_msg out[2];
    size_t frames = 0;
    nt_status st;

    (void)state;
    /* A 20-byte buffer: a BYE fits, a PING after it does not. */
    nt_buf_init(&b, 20);
    assert_int_equal(nt_put_bye(&b), NT_OK);
    assert_int_equal(nt_put_u64(&b, NT_PING, 1), NT_ENOMEM);
    assert_buf(&b, k_bye, sizeof k_bye);
    assert_true(b.cap <= 20);
    nt_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(nt_put_u64(&b, NT_PING, 0x0102030405060708ull), NT_OK);
    assert_buf(&b, k_ping, sizeof k_ping);
    nt_buf_free(&b);

    /* max 100: the second 46-byte message needs a flush (NT_EFULL). */
    nt_buf_init(&b, 100);
    assert_int_equal(nt_data_begin(&b), NT_OK);
    small_msg(&m, 7);
    assert_int_equal(nt_data_add(&b, &m), NT_OK);
    assert_int_equal(b.len, 62);
    assert_int_equal(nt_data_add(&b, &m), NT_EFULL);
    assert_int_equal(b.len, 62);
    assert_int_equal(b.count, 1);
    assert_int_equal(nt_data_end(&b), NT_OK);
    f = parse_one(b.data, b.len);
    assert_int_equal(data_all(&f, out, 2), 1);
    /* A message that cannot fit even alone: NT_ENOMEM, not NT_EFULL. */
    nt_buf_reset(&b);
    assert_int_equal(nt_data_begin(&b), NT_OK);
    small_msg(&m, 60);
    assert_int_equal(nt_data_add(&b, &m), NT_ENOMEM);
    assert_int_equal(b.len, 16);
    assert_int_equal(nt_data_end(&b), NT_OK);
    /* Other frames before an empty DATA frame: flushing helps (NT_EFULL). */
    nt_buf_reset(&b);
    assert_int_equal(nt_put_bye(&b), NT_OK);
    assert_int_equal(nt_put_u64(&b, NT_PING, 3), NT_OK);
    assert_int_equal(nt_data_begin(&b), NT_OK);
    small_msg(&m, 30);
    assert_int_equal(nt_data_add(&b, &m), NT_EFULL);
    assert_int_equal(b.len, 48);
    assert_true(b.cap <= 100);
    nt_buf_free(&b);

    /* Default max: PINGs until the buffer is full; memory stays bounded. */
    nt_buf_init(&b, 0);
    while ((st = nt_put_u64(&b, NT_PING, frames)) == NT_OK)
        frames++;
    assert_int_equal(st, NT_ENOMEM);
    assert_int_equal(frames, (NT_HEADER + NT_MAX_PAYLOAD) / 20);
    assert_int_equal(b.len, frames * 20);
    assert_true(b.cap <= NT_HEADER + NT_MAX_PAYLOAD);
    nt_buf_free(&b);

    /* A zero-initialised buffer is a valid empty buffer. */
    memset(&z, 0, sizeof z);
    assert_int_equal(nt_put_bye(&z), NT_OK);
    assert_int_equal(nt_data_begin(&z), NT_OK);
    assert_int_equal(nt_data_end(&z), NT_OK);
    assert_int_equal(z.len, 12 + 16);
    nt_buf_free(&z);
    nt_buf_free(NULL);
    nt_buf_reset(NULL);
}

/* CTL frames: round trip with JSON and a blob, the bounds, and the exact
 * reasons for a bad json_len and non-UTF-8 JSON. */
static void test_ctl(void **state)
{
    nt_buf b;
    nt_frame f;
    size_t flen, jl, bl;
    uint32_t id;
    const char *json;
    const uint8_t *blob;
    char err[256];
    static const uint8_t mod[5] = {0, 'a', 's', 'm', 1};
    (void)state;

    nt_buf_init(&b, 0);
    assert_int_equal(nt_put_ctl(&b, NT_CTL, 7, "{\"op\":\"x\"}", 10, mod, 5),
                     NT_OK);
    assert_int_equal(b.len, NT_HEADER + 8 + 10 + 5);
    assert_int_equal(nt_frame_parse(b.data, b.len, &f, &flen, err, sizeof err),
                     NT_OK);
    assert_int_equal(f.type, NT_CTL);
    assert_int_equal(nt_ctl_decode(&f, &id, &json, &jl, &blob, &bl, err,
                                   sizeof err), NT_OK);
    assert_int_equal(id, 7);
    assert_int_equal(jl, 10);
    assert_memory_equal(json, "{\"op\":\"x\"}", 10);
    assert_int_equal(bl, 5);
    assert_memory_equal(blob, mod, 5);

    /* nt_put_ctl_head + the blob's bytes: the same frame, byte for byte
     * (a blob of 100,003 bytes: every CRC path, 8-byte steps and tail). */
    {
        size_t big = 100003;
        uint8_t *m = malloc(big);
        nt_buf h;
        assert_non_null(m);
        for (size_t i = 0; i < big; i++)
            m[i] = (uint8_t)(i * 131u + 7u);
        nt_buf_reset(&b);
        nt_buf_init(&h, 0);
        assert_int_equal(nt_put_ctl(&b, NT_CTL, 9, "{\"a\":1}", 7, m, big),
                         NT_OK);
        assert_int_equal(nt_put_ctl_head(&h, NT_CTL, 9, "{\"a\":1}", 7, m,
                                         big), NT_OK);
        assert_int_equal(h.len + big, b.len);
        assert_memory_equal(h.data, b.data, h.len);
        assert_memory_equal(b.data + h.len, m, big);
        nt_buf_reset(&h);
        assert_int_equal(nt_put_ctl_head(&h, NT_CTL, 1, NULL, 0, NULL, 0),
                         NT_OK);
        nt_buf_reset(&b);
        assert_int_equal(nt_put_ctl(&b, NT_CTL, 1, NULL, 0, NULL, 0), NT_OK);
        assert_int_equal(h.len, b.len);
        assert_memory_equal(h.data, b.data, b.len);
        assert_int_equal(nt_put_ctl_head(&h, NT_DATA, 1, "{}", 2, NULL, 0),
                         NT_EARG);
        assert_int_equal(nt_put_ctl_head(&h, NT_CTL, 1, "x", 1, m,
                                         NT_MAX_PAYLOAD), NT_EARG);
        nt_buf_free(&h);
        free(m);
    }

    /* Empty JSON and blob are fine; a reply type too. */
    nt_buf_reset(&b);
    assert_int_equal(nt_put_ctl(&b, NT_CTL_REPLY, 1, NULL, 0, NULL, 0), NT_OK);
    assert_int_equal(nt_frame_parse(b.data, b.len, &f, &flen, err, sizeof err),
                     NT_OK);
    assert_int_equal(nt_ctl_decode(&f, &id, &json, &jl, &blob, &bl, err,
                                   sizeof err), NT_OK);
    assert_int_equal(jl + bl, 0);

    /* Encoder bounds: wrong type, JSON with NUL, over the JSON limit. */
    assert_int_equal(nt_put_ctl(&b, NT_DATA, 1, "{}", 2, NULL, 0), NT_EARG);
    assert_int_equal(nt_put_ctl(&b, NT_CTL, 1, "{\0}", 3, NULL, 0), NT_EARG);
    assert_int_equal(nt_put_ctl(&b, NT_CTL, 1, "x", NT_MAX_CTL_JSON + 1, NULL,
                                0), NT_EARG);

    /* Decoder: json_len beyond the limit, beyond the payload, bad UTF-8. */
    uint8_t pl[16] = {1, 0, 0, 0, 0, 0, 2, 0};  /* json_len 0x20000 */
    f.type = NT_CTL;
    f.payload = pl;
    f.len = 8;
    assert_int_equal(nt_ctl_decode(&f, &id, &json, &jl, &blob, &bl, err,
                                   sizeof err), NT_EFRAME);
    assert_string_equal(err, "CTL: json_len 131072 exceeds 65536 at byte 4");
    pl[6] = 0;
    pl[4] = 9;
    f.len = 12;
    assert_int_equal(nt_ctl_decode(&f, &id, &json, &jl, &blob, &bl, err,
                                   sizeof err), NT_EFRAME);
    assert_string_equal(err, "CTL: truncated at byte 8: json needs 9 bytes, "
                             "4 left");
    pl[4] = 2;
    pl[8] = 0xff;
    pl[9] = 'x';
    f.len = 10;
    assert_int_equal(nt_ctl_decode(&f, &id, &json, &jl, &blob, &bl, err,
                                   sizeof err), NT_EFRAME);
    assert_string_equal(err, "CTL: json at byte 8 is not valid UTF-8");
    nt_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32),
        cmocka_unit_test(test_status_msg),
        cmocka_unit_test(test_encode_exact),
        cmocka_unit_test(test_decode_exact),
        cmocka_unit_test(test_roundtrip_small),
        cmocka_unit_test(test_refuse_long),
        cmocka_unit_test(test_data_max),
        cmocka_unit_test(test_data_many),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_prefixes),
        cmocka_unit_test(test_split_reads),
        cmocka_unit_test(test_hello_errors),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_small_payload_errors),
        cmocka_unit_test(test_data_errors),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_buf_bounds),
        cmocka_unit_test(test_ctl),
    };
    return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
