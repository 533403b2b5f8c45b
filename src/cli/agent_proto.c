/*
 * agent_proto.c - the `isoflow agent` socket protocol without the sockets'
 * owners: reading frames from a stream, the command's open request, a
 * relayed request, the agent's open/down messages (agent.c has the
 * protocol's description).  Pure functions over bytes, so that the fuzz
 * target (tests/fuzz/fuzz_agent.c) and the unit test
 * (tests/unit/test_agent_proto.c) run them without an agent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "net.h"

#define AG_FRAME_MAX (NT_HEADER + NT_MAX_PAYLOAD)

int cli_agent_frame_next(int fd, cli_agent_frames *in, nt_frame *f,
                         char *err, size_t errlen)
{
    if (in->used) {
        memmove(in->buf, in->buf + in->used, in->len - in->used);
        in->len -= in->used;
        in->used = 0;
    }
    for (;;) {
        size_t flen;
        nt_status s = nt_frame_parse(in->buf, in->len, f, &flen, err, errlen);
        if (s == NT_OK) {
            in->used = flen;
            return 1;
        }
        if (s != NT_AGAIN)
            return -1;
        if (in->len == in->cap) {
            size_t nc = in->cap ? in->cap * 2 : 64 * 1024;
            if (nc > AG_FRAME_MAX)
                nc = AG_FRAME_MAX;
            uint8_t *nb = nc > in->cap ? realloc(in->buf, nc) : NULL;
            if (!nb) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            in->buf = nb;
            in->cap = nc;
        }
        ssize_t r = read(fd, in->buf + in->len, in->cap - in->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "read failed: %s", strerror(errno));
            return -1;
        }
        if (r == 0) {
            if (in->len == 0)
                return 0;
            snprintf(err, errlen, "the stream ended inside a frame");
            return -1;
        }
        in->len += (size_t)r;
    }
}

int cli_agent_put_json(nt_buf *b, uint8_t type, uint32_t id,
                       const cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    nt_status st;
    if (!s)
        return NT_ENOMEM;
    nt_buf_reset(b);
    st = nt_put_ctl(b, type, id, s, strlen(s), NULL, 0);
    free(s);
    return st;
}

int cli_agent_parse_open(const nt_frame *f, char *addr, size_t cap,
                         int *role, char *err, size_t errlen)
{
    uint32_t id;
    const char *json;
    size_t jl, bl;
    const uint8_t *blob;
    int rc = -1;
    if (f->type != NT_CTL ||
        nt_ctl_decode(f, &id, &json, &jl, &blob, &bl, err, errlen) != NT_OK)
        id = 1; /* reported as not an open request */
    cJSON *o = id == 0 ? cJSON_ParseWithLength(json, jl) : NULL;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "open");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "role");
    if (!cJSON_IsString(a) || !a->valuestring[0] ||
        strlen(a->valuestring) >= cap || !cJSON_IsNumber(r) ||
        (r->valuedouble != NT_ROLE_EDGE && r->valuedouble != NT_ROLE_CLOUD)) {
        snprintf(err, errlen, "the first frame must be an open request "
                 "(CTL id 0 {\"open\": \"HOST:PORT\", \"role\": N})");
    } else {
        memcpy(addr, a->valuestring, strlen(a->valuestring) + 1);
        *role = (int)r->valuedouble;
        rc = 0;
    }
    cJSON_Delete(o);
    return rc;
}

int cli_agent_check_request(const nt_frame *f, uint32_t *id, char *err,
                            size_t errlen)
{
    const char *json;
    size_t jl, bl;
    const uint8_t *blob;
    if (f->type != NT_CTL) {
        snprintf(err, errlen, "a frame of type %u (only CTL requests are "
                 "relayed)", (unsigned)f->type);
        return -1;
    }
    if (nt_ctl_decode(f, id, &json, &jl, &blob, &bl, err, errlen) != NT_OK)
        return -1;
    if (*id == 0) {
        snprintf(err, errlen, "a second open request");
        return -1;
    }
    return 0;
}

int cli_agent_parse_reply(const nt_frame *f, char *peer, size_t pcap,
                          char *why, size_t wcap)
{
    uint32_t id;
    const char *json;
    size_t jl, bl;
    const uint8_t *blob;
    char err[128];
    int r = -1;
    if (f->type != NT_CTL_REPLY ||
        nt_ctl_decode(f, &id, &json, &jl, &blob, &bl, err, sizeof err) !=
            NT_OK ||
        id != 0)
        return -1;
    cJSON *o = cJSON_ParseWithLength(json, jl);
    const cJSON *down = cJSON_GetObjectItemCaseSensitive(o, "down");
    const cJSON *peer_j = cJSON_GetObjectItemCaseSensitive(o, "peer");
    if (cJSON_IsString(down)) {
        snprintf(why, wcap, "%s", down->valuestring);
        r = 0;
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "open"))) {
        snprintf(peer, pcap, "%s",
                 cJSON_IsString(peer_j) ? peer_j->valuestring : "?");
        r = 1;
    }
    cJSON_Delete(o);
    return r;
}
