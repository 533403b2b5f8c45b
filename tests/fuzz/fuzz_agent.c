/*
 * fuzz_agent.c - libFuzzer target for the `isoflow agent` socket protocol
 * (src/cli/agent_proto.c): the bytes a command (or any process of the
 * agent's user) writes to the agent's socket, and the agent's messages a
 * command reads back.  The input goes through a pipe into
 * cli_agent_frame_next, as a socket's stream would; the first frame is
 * the open request (cli_agent_parse_open), the others relayed requests
 * (cli_agent_check_request); every frame is also read as an agent message
 * (cli_agent_parse_reply).  Byte 0, when odd, has every header's CRC fixed
 * first so that mutations reach the JSON.  Never a crash, a leak or a
 * hang; every refusal carries a reason; an accepted open names an edge or
 * a cloud at a non-empty address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond))                                                         \
            abort();                                                         \
    } while (0)

#define MAX_INPUT 60000 /* under a pipe's buffer: one write, no reader */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* Rewrites each whole frame's CRC (stops at the first short header). */
static void fix_crcs(uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= NT_HEADER) {
        uint32_t len = rd32(p + off + 4);
        if (len > n - off - NT_HEADER)
            break;
        uint32_t c = nt_crc32(p + off + NT_HEADER, len);
        p[off + 8] = (uint8_t)c;
        p[off + 9] = (uint8_t)(c >> 8);
        p[off + 10] = (uint8_t)(c >> 16);
        p[off + 11] = (uint8_t)(c >> 24);
        off += NT_HEADER + len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds[2], r, first = 1;
    cli_agent_frames in = {0};
    nt_frame f;
    char err[512], addr[256], peer[NT_MAX_NAME + 1], why[512];
    uint8_t *copy;
    if (size < 1 || size - 1 > MAX_INPUT)
        return 0;
    copy = malloc(size);
    CHECK(copy != NULL);
    memcpy(copy, data + 1, size - 1);
    if (data[0] & 1)
        fix_crcs(copy, size - 1);
    CHECK(pipe(fds) == 0);
    CHECK(write(fds[1], copy, size - 1) == (ssize_t)(size - 1));
    close(fds[1]);
    free(copy);
    err[0] = '\0';
    while ((r = cli_agent_frame_next(fds[0], &in, &f, err, sizeof err)) ==
           1) {
        if (first) {
            int role = 0;
            err[0] = '\0';
            if (cli_agent_parse_open(&f, addr, sizeof addr, &role, err,
                                     sizeof err) == 0) {
                CHECK(addr[0] != '\0' && memchr(addr, '\0', sizeof addr));
                CHECK(role == NT_ROLE_EDGE || role == NT_ROLE_CLOUD);
            } else {
                CHECK(err[0] != '\0');
            }
        } else {
            uint32_t id = 0;
            err[0] = '\0';
            if (cli_agent_check_request(&f, &id, err, sizeof err) == 0)
                CHECK(id != 0 && f.type == NT_CTL);
            else
                CHECK(err[0] != '\0');
        }
        first = 0;
        int m = cli_agent_parse_reply(&f, peer, sizeof peer, why, sizeof why);
        CHECK(m >= -1 && m <= 1);
        if (m == 1)
            CHECK(memchr(peer, '\0', sizeof peer) != NULL);
        if (m == 0)
            CHECK(memchr(why, '\0', sizeof why) != NULL);
        err[0] = '\0';
    }
    CHECK(r == 0 || err[0] != '\0');
    close(fds[0]);
    free(in.buf);
    return 0;
}
