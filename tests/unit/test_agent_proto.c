/*
 * test_agent_proto.c - the `isoflow agent` socket protocol's decoders
 * (src/cli/agent_proto.c): the command's open request, a relayed request,
 * the agent's open/down messages and the frame reader, with the exact
 * error texts a command's connection is closed with.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "net.h"

static const char *const NOT_OPEN =
    "the first frame must be an open request (CTL id 0 {\"open\": "
    "\"HOST:PORT\", \"role\": N})";

/* One frame (type, id, json) in b, located in f. */
static void frame(nt_buf *b, nt_frame *f, uint8_t type, uint32_t id,
                  const char *json)
{
    size_t flen;
    char err[128];
    nt_buf_reset(b);
    assert_int_equal(nt_put_ctl(b, type, id, json, strlen(json), NULL, 0),
                     NT_OK);
    assert_int_equal(nt_frame_parse(b->data, b->len, f, &flen, err,
                                    sizeof err), NT_OK);
}

static void test_open(void **state)
{
    nt_buf b;
    nt_frame f;
    char addr[32], err[256];
    int role = 0;
    (void)state;
    nt_buf_init(&b, 0);
    frame(&b, &f, NT_CTL, 0, "{\"open\":\"127.0.0.1:7000\",\"role\":2}");
    assert_int_equal(cli_agent_parse_open(&f, addr, sizeof addr, &role, err,
                                          sizeof err), 0);
    assert_string_equal(addr, "127.0.0.1:7000");
    assert_int_equal(role, NT_ROLE_EDGE);
    frame(&b, &f, NT_CTL, 0, "{\"open\":\"h:1\",\"role\":3}");
    assert_int_equal(cli_agent_parse_open(&f, addr, sizeof addr, &role, err,
                                          sizeof err), 0);
    assert_int_equal(role, NT_ROLE_CLOUD);

    static const struct {
        uint8_t type;
        uint32_t id;
        const char *json;
    } bad[] = {
        {NT_CTL, 1, "{\"open\":\"h:1\",\"role\":2}"},       /* id not 0 */
        {NT_CTL_REPLY, 0, "{\"open\":\"h:1\",\"role\":2}"}, /* a reply */
        {NT_CTL, 0, "not json"},
        {NT_CTL, 0, "{\"role\":2}"},
        {NT_CTL, 0, "{\"open\":\"\",\"role\":2}"},
        {NT_CTL, 0, "{\"open\":7,\"role\":2}"},
        {NT_CTL, 0, "{\"open\":\"h:1\",\"role\":4}"},   /* operator */
        {NT_CTL, 0, "{\"open\":\"h:1\",\"role\":2.5}"},
        {NT_CTL, 0, "{\"open\":\"h:1\"}"},
        {NT_CTL, 0,
         "{\"open\":\"an-address-longer-than-this-buffer:1\",\"role\":2}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        frame(&b, &f, bad[i].type, bad[i].id, bad[i].json);
        err[0] = '\0';
        assert_int_equal(cli_agent_parse_open(&f, addr, sizeof addr, &role,
                                              err, sizeof err), -1);
        assert_string_equal(err, NOT_OPEN);
    }
    nt_buf_free(&b);
}

static void test_request(void **state)
{
    nt_buf b;
    nt_frame f;
    uint8_t pl[4] = {7, 0, 0, 0};
    uint32_t id = 0;
    char err[256];
    (void)state;
    nt_buf_init(&b, 0);
    frame(&b, &f, NT_CTL, 7, "{\"op\":\"versions\"}");
    assert_int_equal(cli_agent_check_request(&f, &id, err, sizeof err), 0);
    assert_int_equal(id, 7);
    frame(&b, &f, NT_CTL, 0, "{}");
    assert_int_equal(cli_agent_check_request(&f, &id, err, sizeof err), -1);
    assert_string_equal(err, "a second open request");
    frame(&b, &f, NT_CTL_REPLY, 3, "{}");
    assert_int_equal(cli_agent_check_request(&f, &id, err, sizeof err), -1);
    assert_string_equal(err, "a frame of type 12 (only CTL requests are "
                             "relayed)");
    f.type = NT_CTL; /* a payload too short for a CTL */
    f.payload = pl;
    f.len = sizeof pl;
    assert_int_equal(cli_agent_check_request(&f, &id, err, sizeof err), -1);
    assert_true(strncmp(err, "CTL: ", 5) == 0);
    nt_buf_free(&b);
}

static void test_reply(void **state)
{
    nt_buf b;
    nt_frame f;
    char peer[16], why[64];
    (void)state;
    nt_buf_init(&b, 0);
    frame(&b, &f, NT_CTL_REPLY, 0,
          "{\"open\":true,\"peer\":\"edge\",\"resumed\":1}");
    assert_int_equal(cli_agent_parse_reply(&f, peer, sizeof peer, why,
                                           sizeof why), 1);
    assert_string_equal(peer, "edge");
    frame(&b, &f, NT_CTL_REPLY, 0, "{\"down\":\"connect failed: refused\"}");
    assert_int_equal(cli_agent_parse_reply(&f, peer, sizeof peer, why,
                                           sizeof why), 0);
    assert_string_equal(why, "connect failed: refused");
    frame(&b, &f, NT_CTL_REPLY, 0, "{\"open\":false}");
    assert_int_equal(cli_agent_parse_reply(&f, peer, sizeof peer, why,
                                           sizeof why), -1);
    frame(&b, &f, NT_CTL_REPLY, 5, "{\"down\":\"x\"}"); /* a node's reply */
    assert_int_equal(cli_agent_parse_reply(&f, peer, sizeof peer, why,
                                           sizeof why), -1);
    frame(&b, &f, NT_CTL, 0, "{\"down\":\"x\"}");
    assert_int_equal(cli_agent_parse_reply(&f, peer, sizeof peer, why,
                                           sizeof why), -1);
    frame(&b, &f, NT_CTL_REPLY, 0, "[");
    assert_int_equal(cli_agent_parse_reply(&f, peer, sizeof peer, why,
                                           sizeof why), -1);
    nt_buf_free(&b);
}

/* Reads all of `bytes` through a pipe: the results of cli_agent_frame_next
 * until it stops, as a string ("1 1 0" / "1 -1"), and the last error. */
static void read_all(const uint8_t *bytes, size_t len, char *got,
                     size_t gcap, char *err, size_t errlen)
{
    int fds[2];
    cli_agent_frames in = {0};
    nt_frame f;
    int r;
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], bytes, len), (ssize_t)len);
    close(fds[1]);
    got[0] = err[0] = '\0';
    do {
        r = cli_agent_frame_next(fds[0], &in, &f, err, errlen);
        snprintf(got + strlen(got), gcap - strlen(got), "%s%d",
                 got[0] ? " " : "", r);
    } while (r == 1);
    close(fds[0]);
    free(in.buf);
}

static void test_frames(void **state)
{
    nt_buf b;
    char got[64], err[256];
    (void)state;
    nt_buf_init(&b, 0);
    assert_int_equal(nt_put_ctl(&b, NT_CTL, 0, "{}", 2, NULL, 0), NT_OK);
    assert_int_equal(nt_put_ctl(&b, NT_CTL, 1, "{}", 2, NULL, 0), NT_OK);
    read_all(b.data, b.len, got, sizeof got, err, sizeof err);
    assert_string_equal(got, "1 1 0");
    read_all(b.data, b.len - 3, got, sizeof got, err, sizeof err);
    assert_string_equal(got, "1 -1");
    assert_string_equal(err, "the stream ended inside a frame");
    b.data[b.len - 22] = 'X'; /* the second frame's magic */
    read_all(b.data, b.len, got, sizeof got, err, sizeof err);
    assert_string_equal(got, "1 -1");
    assert_true(strncmp(err, "bad magic 0x", 12) == 0);
    read_all(b.data, 0, got, sizeof got, err, sizeof err);
    assert_string_equal(got, "0");
    nt_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
