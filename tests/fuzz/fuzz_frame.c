/*
 * fuzz_frame.c - libFuzzer target for the frame codec (src/net/frame.c):
 * every input must end in frames or a stated rejection, never a crash,
 * out-of-bounds read, leak or unbounded allocation, and every frame that
 * decodes must re-encode to exactly the same bytes.
 *
 * Input: byte 0 selects the mode (value % 3), the rest is the data.
 *   0  a byte stream parsed frame by frame with nt_frame_parse
 *   1  the same, after fixing each header's CRC (so mutations reach the
 *      payload decoders instead of stopping at "CRC mismatch")
 *   2  byte 1 is a frame type, the rest a payload handed to the decoders
 *      directly (lengths the header check would refuse included)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond))                                                         \
            abort();                                                         \
    } while (0)

/* A rejection carries a NUL-terminated, non-empty reason. */
static void check_err(nt_status st, const char *err)
{
    CHECK(st == NT_EFRAME);
    CHECK(err[0] != '\0');
    CHECK(memchr(err, '\0', 256) != NULL);
}

/* Re-encodes a DATA frame message by message into b. */
static void reencode_data(const nt_frame *f, nt_buf *b)
{
    size_t off = 0;
    nt_msg m;
    nt_status st;
    char err[256] = "";
    uint32_t n = 0;

    CHECK(nt_data_begin(b) == NT_OK);
    while ((st = nt_data_next(f, &off, &m, err, sizeof err)) == NT_OK) {
        CHECK(off <= f->len);
        CHECK(m.kind <= 1 && m.topic_len <= NT_MAX_TOPIC);
        CHECK(m.len <= NT_MAX_MSG);
        CHECK(nt_data_add(b, &m) == NT_OK);
        n++;
    }
    if (st == NT_AGAIN) {
        CHECK(off == f->len);
        CHECK(nt_data_end(b) == NT_OK);
        CHECK(b->len >= NT_HEADER + 4);
        /* The count field agrees with the messages handed out. */
        CHECK(((uint32_t)b->data[NT_HEADER] |
               (uint32_t)b->data[NT_HEADER + 1] << 8 |
               (uint32_t)b->data[NT_HEADER + 2] << 16 |
               (uint32_t)b->data[NT_HEADER + 3] << 24) == n);
        return;
    }
    /* Validation is up front: a broken frame hands out no message. */
    check_err(st, err);
    CHECK(n == 0);
    nt_buf_reset(b);
}

/* Decodes f by its type and re-encodes it into b (left empty when the
 * payload is refused or the type has no payload decoder). */
static void decode_frame(const nt_frame *f, nt_buf *b)
{
    char err[256] = "";
    char reason[256];
    nt_hello h;
    uint64_t v;
    uint32_t s, c;
    nt_status st;

    nt_buf_reset(b);
    switch (f->type) {
    case NT_HELLO:
    case NT_WELCOME:
        st = nt_hello_decode(f, &h, err, sizeof err);
        if (st == NT_OK) {
            CHECK(h.role >= NT_ROLE_DEVICE && h.role <= NT_ROLE_OPERATOR);
            CHECK(h.name[0] != '\0' && strlen(h.name) <= NT_MAX_NAME);
            CHECK(nt_put_hello(b, f->type, &h) == NT_OK);
        } else {
            check_err(st, err);
        }
        break;
    case NT_REFUSE:
        st = nt_refuse_decode(f, reason, sizeof reason, err, sizeof err);
        if (st == NT_OK)
            CHECK(nt_put_refuse(b, reason) == NT_OK);
        else
            check_err(st, err);
        /* A small cap still yields a terminated prefix. */
        if (st == NT_OK) {
            char small[5];
            CHECK(nt_refuse_decode(f, small, sizeof small, err,
                                   sizeof err) == NT_OK);
            CHECK(strlen(small) <= 4 &&
                  strncmp(small, reason, strlen(small)) == 0);
        }
        break;
    case NT_DATA:
        reencode_data(f, b);
        break;
    case NT_ACK:
    case NT_PING:
    case NT_PONG:
        st = nt_u64_decode(f, &v, err, sizeof err);
        if (st == NT_OK)
            CHECK(nt_put_u64(b, f->type, v) == NT_OK);
        else
            check_err(st, err);
        break;
    case NT_CREDIT:
        st = nt_credit_decode(f, &s, &c, err, sizeof err);
        if (st == NT_OK)
            CHECK(nt_put_credit(b, s, c) == NT_OK);
        else
            check_err(st, err);
        break;
    case NT_PULL:
        st = nt_pull_decode(f, &s, err, sizeof err);
        if (st == NT_OK)
            CHECK(nt_put_pull(b, s) == NT_OK);
        else
            check_err(st, err);
        break;
    case NT_BYE:
        if (f->len == 0)
            CHECK(nt_put_bye(b) == NT_OK);
        break;
    case NT_CTL:
    case NT_CTL_REPLY: {
        const char *json;
        const uint8_t *blob;
        size_t jl, bl;
        st = nt_ctl_decode(f, &s, &json, &jl, &blob, &bl, err, sizeof err);
        if (st == NT_OK) {
            CHECK(jl <= NT_MAX_CTL_JSON && 8 + jl + bl == f->len);
            CHECK(nt_put_ctl(b, f->type, s, json, jl, blob, bl) == NT_OK);
        } else {
            check_err(st, err);
        }
        break;
    }
    default:
        /* Not a frame type: every decoder refuses it as a caller error. */
        CHECK(nt_u64_decode(f, &v, err, sizeof err) == NT_EARG);
        CHECK(nt_hello_decode(f, &h, err, sizeof err) == NT_EARG);
        break;
    }
}

/* Sets the CRC of every frame header that fits in buf[0..n). */
static void fix_crcs(uint8_t *buf, size_t n)
{
    size_t pos = 0;

    while (n - pos >= NT_HEADER) {
        uint32_t len = (uint32_t)buf[pos + 4] | (uint32_t)buf[pos + 5] << 8 |
                       (uint32_t)buf[pos + 6] << 16 |
                       (uint32_t)buf[pos + 7] << 24;
        uint32_t crc;

        if (len > n - pos - NT_HEADER)
            break;
        crc = nt_crc32(buf + pos + NT_HEADER, len);
        for (int i = 0; i < 4; i++)
            buf[pos + 8 + i] = (uint8_t)(crc >> (8 * i));
        pos += NT_HEADER + len;
    }
}

/* Parses frames from buf until the end, the first incomplete frame or the
 * first rejection; each frame must re-encode to its own bytes. */
static void parse_stream(const uint8_t *buf, size_t n, nt_buf *b)
{
    size_t pos = 0;

    for (;;) {
        nt_frame f, g;
        size_t flen = 0, glen = 0;
        char err[256] = "";
        nt_status st = nt_frame_parse(buf + pos, n - pos, &f, &flen, err,
                                      sizeof err);
        if (st == NT_AGAIN)
            return;
        if (st != NT_OK) {
            check_err(st, err);
            return;
        }
        CHECK(flen >= NT_HEADER && flen <= n - pos);
        CHECK(flen == NT_HEADER + (size_t)f.len);
        CHECK(f.payload == buf + pos + NT_HEADER);
        /* One byte less is incomplete, never an error. */
        CHECK(nt_frame_parse(buf + pos, flen - 1, &g, &glen, err,
                             sizeof err) == NT_AGAIN);
        decode_frame(&f, b);
        if (b->len > 0) {
            CHECK(b->len == flen);
            CHECK(memcmp(b->data, buf + pos, flen) == 0);
        }
        pos += flen;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nt_buf b;
    uint8_t *copy;

    if (size == 0)
        return 0;
    nt_buf_init(&b, 0);
    switch (data[0] % 3) {
    case 0:
        parse_stream(data + 1, size - 1, &b);
        break;
    case 1:
        copy = malloc(size); /* never 0 bytes */
        if (copy == NULL)
            break;
        memcpy(copy, data + 1, size - 1);
        fix_crcs(copy, size - 1);
        parse_stream(copy, size - 1, &b);
        free(copy);
        break;
    default:
        if (size >= 2) {
            nt_frame f;
            f.type = data[1];
            f.len = (uint32_t)(size - 2 < NT_MAX_PAYLOAD ? size - 2
                                                          : NT_MAX_PAYLOAD);
            f.payload = data + 2;
            decode_frame(&f, &b);
            if (b.len > 0) {
                CHECK(b.len == NT_HEADER + (size_t)f.len);
                CHECK(memcmp(b.data + NT_HEADER, f.payload, f.len) == 0);
            }
        }
        break;
    }
    nt_buf_free(&b);
    return 0;
}
