/*
 * stage_builtin.c - the builtin stages (log, jsonl, null, sample, rate,
 * filter, delay): small C implementations of the fl__stage_ops interface
 * that get their messages and metadata through the same if_host_api as
 * Wasm and native stages.  Each has a --help text documenting its
 * configuration; check() parses the configuration before anything runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "stage_host.h"

/* Parses msg as one JSON value with nothing but whitespace after it (cJSON
 * alone stops at the end of the first value: "1 1 -1" would pass). */
static cJSON *parse_json_exact(const uint8_t *msg, size_t len)
{
    const char *end = NULL;
    cJSON *j;
    if (len == 0)
        return NULL;
    j = cJSON_ParseWithLengthOpts((const char *)msg, len, &end, 0);
    if (!j)
        return NULL;
    while (end && end < (const char *)msg + len &&
           (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (end != (const char *)msg + len) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}


enum { B_LOG, B_JSONL, B_NULL, B_SAMPLE, B_RATE, B_FILTER, B_DELAY };
enum { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE };

/* A parsed configuration (check() and create() share the parser). */
typedef struct bcfg {
    int kind;
    char prefix[128];   /* log */
    char *path;         /* jsonl: owned copy */
    int buffered;       /* jsonl: 1 = batch writes */
    uint64_t n;         /* sample: N; delay: milliseconds */
    double rate;        /* rate: messages per second */
    char field[128];    /* filter: dotted path */
    int op;             /* filter */
    double value;       /* filter */
} bcfg;

typedef struct binst {
    const fl__stage *d;     /* borrowed from the graph */
    const if_host_api *api; /* borrowed from the runtime */
    void *ctx;
    bcfg cfg;
    uint64_t seen;          /* sample: messages seen */
    double tokens;          /* rate: token bucket */
    int64_t last_ns;        /* rate: last refill (0: not yet) */
    uint64_t dropped;       /* rate, filter: messages dropped in total */
    uint64_t dropped_logged;/* ... already reported */
    int64_t last_log_ns;    /* last drop report */
    int fd;                 /* jsonl: output file */
    char *buf;              /* jsonl: line buffer (owned) */
    size_t blen, bcap;
    int64_t last_flush_ns;
    struct jseen *written;  /* jsonl in node mode: per origin, the highest
                               seq written (owned) */
    uint32_t nwritten, written_cap;
    uint64_t skipped;       /* jsonl: duplicates not written */
} binst;

/* jsonl in node mode: the highest seq written for one origin device. */
typedef struct jseen {
    char origin[64];
    uint64_t seq;
} jseen;

static binst *B(fl__inst *in) { return (binst *)(void *)in; }

#define JSONL_BATCH (64u * 1024u)     /* buffered jsonl: write at this size */
#define JSONL_MAX_LINE (8u * FL__MAX_MSG)

/* ---- Configuration. ---------------------------------------------------- */

/* Copies the config without surrounding blanks and one pair of quotes. */
static void trim_config(const char *in, char *out, size_t cap)
{
    const char *s = in ? in : "";
    size_t n;
    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
        n--;
    if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') ||
                   (s[0] == '\'' && s[n - 1] == '\''))) {
        s++;
        n -= 2;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Parses a whole number >= 1 with an optional suffix; 0 on error. */
static uint64_t parse_count(const char *s, const char *suffix)
{
    char *end;
    if (!(*s >= '0' && *s <= '9'))
        return 0;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v == 0)
        return 0;
    while (*end == ' ')
        end++;
    if (*end && !(suffix && strcmp(end, suffix) == 0))
        return 0;
    return v;
}

static fl_status parse_cfg(const fl__stage *d, int kind, bcfg *c, char *err,
                           size_t errlen)
{
    char t[512];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    trim_config(d->config, t, sizeof t);
    switch (kind) {
    case B_LOG:
        trim_config(t[0] ? t : d->name, c->prefix, sizeof c->prefix);
        return FL_OK;
    case B_NULL:
        if (t[0]) {
            snprintf(err, errlen, "stage '%s': null takes no configuration, "
                     "got '%s'", d->name, t);
            return FL_CHECK;
        }
        return FL_OK;
    case B_JSONL: {
        const char *path = d->path;
        const char *mode = t;
        if (!path) { /* no separate path: the config is the path */
            path = t;
            mode = "";
        }
        if (!path[0]) {
            snprintf(err, errlen, "stage '%s': jsonl needs an output file "
                     "(jsonl \"out/readings.jsonl\")", d->name);
            return FL_CHECK;
        }
        if (strcmp(mode, "buffered") == 0)
            c->buffered = 1;
        else if (mode[0] && strcmp(mode, "line") != 0) {
            snprintf(err, errlen, "stage '%s': jsonl flush mode must be "
                     "'line' or 'buffered', got '%s'", d->name, mode);
            return FL_CHECK;
        }
        c->path = strdup(path);
        if (!c->path) {
            snprintf(err, errlen, "stage '%s': out of memory", d->name);
            return FL_NOMEM;
        }
        return FL_OK;
    }
    case B_SAMPLE:
        c->n = parse_count(t, NULL);
        if (!c->n) {
            snprintf(err, errlen, "stage '%s': sample needs a whole number "
                     "N >= 1 (forward every Nth message), got '%s'",
                     d->name, t);
            return FL_CHECK;
        }
        return FL_OK;
    case B_DELAY:
        c->n = parse_count(t, "ms");
        if (!c->n && strcmp(t, "0") != 0 && strcmp(t, "0ms") != 0) {
            snprintf(err, errlen, "stage '%s': delay needs a whole number of "
                     "milliseconds (delay 5, or 5ms), got '%s'", d->name, t);
            return FL_CHECK;
        }
        return FL_OK;
    case B_RATE: {
        char *end;
        errno = 0;
        double r = strtod(t, &end);
        while (*end == ' ')
            end++;
        if (errno || end == t || !(r > 0) || r > 1e9 ||
            (*end && strcmp(end, "/s") != 0)) {
            snprintf(err, errlen, "stage '%s': rate needs messages per "
                     "second > 0 (rate 100, or 100/s), got '%s'", d->name, t);
            return FL_CHECK;
        }
        c->rate = r;
        return FL_OK;
    }
    case B_FILTER: {
        static const struct {
            const char *s;
            int op;
        } ops[] = {{"<=", OP_LE}, {">=", OP_GE}, {"==", OP_EQ},
                   {"!=", OP_NE}, {"<", OP_LT},  {">", OP_GT}};
        const char *p = t;
        size_t n = 0;
        while (p[n] && !strchr(" \t<>=!", p[n]))
            n++;
        const char *q = p + n;
        while (*q == ' ' || *q == '\t')
            q++;
        int op = -1;
        for (size_t i = 0; i < sizeof ops / sizeof ops[0] && op < 0; i++)
            if (strncmp(q, ops[i].s, strlen(ops[i].s)) == 0) {
                op = ops[i].op;
                q += strlen(ops[i].s);
            }
        char *end = NULL;
        double v = 0;
        if (op >= 0) {
            errno = 0;
            v = strtod(q, &end);
            if (errno || end == q)
                end = NULL;
            else
                while (*end == ' ')
                    end++;
        }
        if (n == 0 || n >= sizeof c->field || op < 0 || !end || *end) {
            snprintf(err, errlen, "stage '%s': filter needs \"FIELD OP "
                     "NUMBER\" with OP one of < <= > >= == != (filter "
                     "\"co2 > 1000\"), got '%s'", d->name, t);
            return FL_CHECK;
        }
        memcpy(c->field, p, n);
        c->field[n] = '\0';
        c->op = op;
        c->value = v;
        return FL_OK;
    }
    }
    return FL_OK;
}

/* ---- Shared helpers. --------------------------------------------------- */

/* Forwards the current message unchanged (same topic as the stage's). */
static fl_status forward(binst *b, const uint8_t *msg, size_t len, char *err,
                         size_t errlen)
{
    int rc = b->api->emit(b->ctx, NULL, 0, msg, len);
    if (rc < 0) {
        snprintf(err, errlen, "emit failed (%d)", rc);
        return FL_STAGE;
    }
    return FL_OK;
}

/* Counts a drop and reports the total through the log at most once a
 * second (the first drop is reported at once). */
static void count_drop(binst *b, const char *why)
{
    b->dropped++;
    int64_t now = b->api->now_ns(b->ctx);
    if (b->last_log_ns && now - b->last_log_ns < 1000000000)
        return;
    char line[300];
    int n = snprintf(line, sizeof line, "%s '%s': dropped %llu message%s %s",
                     b->d->kind, b->d->name,
                     (unsigned long long)(b->dropped - b->dropped_logged),
                     b->dropped - b->dropped_logged == 1 ? "" : "s", why);
    if (n > 0)
        b->api->log(b->ctx, IF_LOG_WARN, line,
                    (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    b->dropped_logged = b->dropped;
    b->last_log_ns = now ? now : 1;
}

/* A growable line buffer, capped. */
static int buf_add(binst *b, const void *p, size_t n)
{
    if (b->blen + n > b->bcap) {
        size_t cap = b->bcap ? b->bcap : 4096;
        while (cap < b->blen + n)
            cap *= 2;
        if (cap > JSONL_MAX_LINE + JSONL_BATCH)
            return -1;
        char *nb = realloc(b->buf, cap);
        if (!nb)
            return -1;
        b->buf = nb;
        b->bcap = cap;
    }
    memcpy(b->buf + b->blen, p, n);
    b->blen += n;
    return 0;
}

static int buf_str(binst *b, const char *s) { return buf_add(b, s, strlen(s)); }

/* Length of a valid UTF-8 sequence at p (1..4), or 0. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t k = (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3
             : (p[0] & 0xF8) == 0xF0 ? 4 : 0;
    if (!k || k > n || (k == 2 && p[0] < 0xC2))
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return k;
}

/* Appends s as a JSON string: valid UTF-8 is copied, other bytes become
 * \u00XX (as Latin-1), control bytes are escaped. */
static int buf_json_str(binst *b, const uint8_t *s, size_t n)
{
    if (buf_add(b, "\"", 1))
        return -1;
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        char esc[8];
        size_t k = utf8_len(s + i, n - i);
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            if (buf_add(b, esc, 2))
                return -1;
            i++;
        } else if (c < 0x20 || k == 0) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            if (buf_add(b, esc, 6))
                return -1;
            i++;
        } else {
            if (buf_add(b, s + i, k))
                return -1;
            i += k;
        }
    }
    return buf_add(b, "\"", 1);
}

/* ---- Instances. -------------------------------------------------------- */

static void jsonl_recover(binst *b);

static fl_status b_create(int kind, const fl__stage *d,
                          const if_host_api *api, void *ctx, fl__inst **out,
                          char *err, size_t errlen)
{
    binst *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "stage '%s': out of memory", d->name);
        return FL_NOMEM;
    }
    fl_status st = parse_cfg(d, kind, &b->cfg, err, errlen);
    if (st != FL_OK) {
        free(b->cfg.path);
        free(b);
        return st;
    }
    b->d = d;
    b->api = api;
    b->ctx = ctx;
    b->fd = -1;
    if (kind == B_JSONL) {
        b->fd = open(b->cfg.path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (b->fd < 0) {
            snprintf(err, errlen, "stage '%s': cannot open %s: %s", d->name,
                     b->cfg.path, strerror(errno));
            free(b->cfg.path);
            free(b);
            return FL_IO;
        }
        if (d->node_mode)
            jsonl_recover(b);
    }
    *out = (fl__inst *)(void *)b;
    return FL_OK;
}

/* Writes the jsonl buffer out (whole lines, one write(2) each time). */
static int jsonl_flush(binst *b)
{
    size_t done = 0;
    while (done < b->blen) {
        ssize_t w = write(b->fd, b->buf + done, b->blen - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        done += (size_t)w;
    }
    b->blen = 0;
    return 0;
}

static void b_destroy(fl__inst *in)
{
    binst *b = B(in);
    if (!b)
        return;
    if (b->fd >= 0) {
        if (b->blen)
            jsonl_flush(b);
        close(b->fd);
    }
    free(b->buf);
    free(b->written);
    free(b->cfg.path);
    free(b);
}

static fl_status b_check(int kind, const fl__stage *d, char *err,
                         size_t errlen)
{
    bcfg c;
    fl_status st = parse_cfg(d, kind, &c, err, errlen);
    if (st == FL_OK && kind == B_JSONL) {
        /* The directory must exist; the file is created at start. */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", c.path);
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            dir[1] = '\0';
        else if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        if (access(dir, W_OK) != 0) {
            snprintf(err, errlen, "stage '%s': cannot write into directory "
                     "%s: %s", d->name, dir, strerror(errno));
            st = FL_CHECK;
        }
    }
    free(c.path);
    return st;
}

static fl_status b_produce(fl__inst *in, char *err, size_t errlen)
{
    binst *b = B(in);
    snprintf(err, errlen, "builtin %s is not a source", b->d->kind);
    return FL_STAGE;
}

static fl_status b_actuation(fl__inst *in, const uint8_t *msg, size_t len,
                             char *err, size_t errlen)
{
    (void)in, (void)msg, (void)len, (void)err, (void)errlen;
    return FL_PASS;
}

/* ---- log. -------------------------------------------------------------- */

static fl_status log_process(fl__inst *in, const uint8_t *msg, size_t len,
                             char *err, size_t errlen)
{
    binst *b = B(in);
    char origin[64], topic[64], head[400];
    if (b->api->meta_str(b->ctx, IF_META_ORIGIN_NAME, origin,
                         sizeof origin) < 0 || !origin[0])
        snprintf(origin, sizeof origin, "-");
    if (b->api->meta_str(b->ctx, IF_META_TOPIC, topic, sizeof topic) < 0 ||
        !topic[0])
        snprintf(topic, sizeof topic, "-");
    long long seq = (long long)b->api->meta(b->ctx, IF_META_SEQ);
    int n = snprintf(head, sizeof head, "%s: %s #%lld %s: ", b->cfg.prefix,
                     origin, seq, topic);
    b->blen = 0;
    int bad = n < 0 || buf_add(b, head, (size_t)n < sizeof head
                                            ? (size_t)n : sizeof head - 1);
    for (size_t i = 0; i < len && !bad;) {
        size_t k = utf8_len(msg + i, len - i);
        if (msg[i] < 0x20 || msg[i] == 0x7F || k == 0) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\x%02x", msg[i]);
            bad = buf_add(b, esc, 4);
            i++;
        } else {
            bad = buf_add(b, msg + i, k);
            i += k;
        }
    }
    if (!bad)
        bad = buf_add(b, "\n", 1);
    if (bad) {
        snprintf(err, errlen, "log line too long");
        return FL_STAGE;
    }
    fwrite(b->buf, 1, b->blen, stdout); /* one call: lines never mix */
    b->blen = 0;
    return forward(b, msg, len, err, errlen);
}

/* ---- jsonl. ------------------------------------------------------------ */

/* The entry of `origin` in b->seen, added (seq 0) when missing; NULL when
 * out of memory. */
static jseen *written_get(binst *b, const char *origin)
{
    for (uint32_t i = 0; i < b->nwritten; i++)
        if (strcmp(b->written[i].origin, origin) == 0)
            return &b->written[i];
    if (b->nwritten == b->written_cap) {
        uint32_t nc = b->written_cap ? b->written_cap * 2 : 16;
        jseen *ns = realloc(b->written, nc * sizeof *ns);
        if (!ns)
            return NULL;
        b->written = ns;
        b->written_cap = nc;
    }
    jseen *e = &b->written[b->nwritten++];
    snprintf(e->origin, sizeof e->origin, "%s", origin);
    e->seq = 0;
    return e;
}

/* Node mode: recovers, per origin, the highest seq already in the output
 * file from its last JSONL_TAIL bytes (whole lines only), so that messages
 * delivered again after a crash-restart are not written twice. */
#define JSONL_TAIL (4u * 1024u * 1024u)
static void jsonl_recover(binst *b)
{
    off_t end = lseek(b->fd, 0, SEEK_END);
    off_t from = end > (off_t)JSONL_TAIL ? end - (off_t)JSONL_TAIL : 0;
    size_t n = (size_t)(end - from);
    char *buf = n ? malloc(n + 1) : NULL;
    if (!buf)
        return;
    ssize_t r = pread(b->fd, buf, n, from);
    if (r > 0) {
        buf[r] = '\0';
        char *line = buf;
        if (from > 0) { /* skip the partial first line */
            char *nl = strchr(buf, '\n');
            line = nl ? nl + 1 : buf + r;
        }
        while (*line) {
            char *nl = strchr(line, '\n');
            if (!nl)
                break; /* a torn last line is ignored */
            *nl = '\0';
            cJSON *j = cJSON_Parse(line);
            const cJSON *o = j ? cJSON_GetObjectItem(j, "origin") : NULL;
            const cJSON *q = j ? cJSON_GetObjectItem(j, "seq") : NULL;
            if (cJSON_IsString(o) && cJSON_IsNumber(q) && q->valuedouble > 0) {
                jseen *e = written_get(b, o->valuestring);
                if (e && (uint64_t)q->valuedouble > e->seq)
                    e->seq = (uint64_t)q->valuedouble;
            }
            cJSON_Delete(j);
            line = nl + 1;
        }
    }
    free(buf);
}

static fl_status jsonl_process(fl__inst *in, const uint8_t *msg, size_t len,
                               char *err, size_t errlen)
{
    binst *b = B(in);
    char origin[64], topic[64], num[64];
    size_t mark = b->blen;
    if (b->d->node_mode &&
        b->api->meta_str(b->ctx, IF_META_ORIGIN_NAME, origin,
                         sizeof origin) > 0) {
        uint64_t q = (uint64_t)b->api->meta(b->ctx, IF_META_SEQ);
        jseen *e = written_get(b, origin);
        if (e && q <= e->seq) {
            b->skipped++;
            return forward(b, msg, len, err, errlen);
        }
        if (e)
            e->seq = q;
    }
    int bad = buf_str(b, "{\"origin\":");
    if (b->api->meta_str(b->ctx, IF_META_ORIGIN_NAME, origin,
                         sizeof origin) >= 0 && origin[0])
        bad |= buf_json_str(b, (const uint8_t *)origin, strlen(origin));
    else
        bad |= buf_str(b, "null");
    snprintf(num, sizeof num, ",\"seq\":%lld,\"ts\":%lld,\"topic\":",
             (long long)b->api->meta(b->ctx, IF_META_SEQ),
             (long long)b->api->meta(b->ctx, IF_META_TS));
    bad |= buf_str(b, num);
    if (b->api->meta_str(b->ctx, IF_META_TOPIC, topic, sizeof topic) < 0)
        topic[0] = '\0';
    bad |= buf_json_str(b, (const uint8_t *)topic, strlen(topic));
    bad |= buf_str(b, ",\"msg\":");
    cJSON *j = parse_json_exact(msg, len);
    if (j) {
        /* Valid JSON goes in as written; its only raw line breaks are
         * whitespace, which become spaces to keep one line. */
        cJSON_Delete(j);
        size_t at = b->blen;
        bad |= buf_add(b, msg, len);
        for (size_t i = at; !bad && i < b->blen; i++)
            if (b->buf[i] == '\n' || b->buf[i] == '\r')
                b->buf[i] = ' ';
    } else {
        bad |= buf_json_str(b, msg, len);
    }
    bad |= buf_str(b, "}\n");
    if (bad) {
        b->blen = mark;
        snprintf(err, errlen, "jsonl line too long");
        return FL_STAGE;
    }
    int64_t now = b->api->now_ns(b->ctx);
    if (!b->cfg.buffered || b->blen >= JSONL_BATCH ||
        now - b->last_flush_ns >= 1000000000) {
        b->last_flush_ns = now;
        if (jsonl_flush(b) != 0) {
            snprintf(err, errlen, "cannot write %s: %s", b->cfg.path,
                     strerror(errno));
            b->blen = 0;
            return FL_STAGE;
        }
    }
    return forward(b, msg, len, err, errlen);
}

/* ---- null, sample, rate, delay. ---------------------------------------- */

static fl_status null_process(fl__inst *in, const uint8_t *msg, size_t len,
                              char *err, size_t errlen)
{
    (void)in, (void)msg, (void)len, (void)err, (void)errlen;
    return FL_OK;
}

static fl_status sample_process(fl__inst *in, const uint8_t *msg,
                                size_t len, char *err, size_t errlen)
{
    binst *b = B(in);
    if (++b->seen % b->cfg.n != 0)
        return FL_OK;
    return forward(b, msg, len, err, errlen);
}

static fl_status rate_process(fl__inst *in, const uint8_t *msg, size_t len,
                              char *err, size_t errlen)
{
    binst *b = B(in);
    int64_t now = b->api->now_ns(b->ctx);
    double burst = b->cfg.rate < 1.0 ? 1.0 : b->cfg.rate;
    if (b->last_ns == 0) {
        b->tokens = burst;
    } else if (now > b->last_ns) {
        b->tokens += (double)(now - b->last_ns) * 1e-9 * b->cfg.rate;
        if (b->tokens > burst)
            b->tokens = burst;
    }
    b->last_ns = now ? now : 1;
    if (b->tokens < 1.0) {
        count_drop(b, "over the rate limit");
        return FL_OK;
    }
    b->tokens -= 1.0;
    return forward(b, msg, len, err, errlen);
}

static fl_status delay_process(fl__inst *in, const uint8_t *msg, size_t len,
                               char *err, size_t errlen)
{
    binst *b = B(in);
    struct timespec ts = {(time_t)(b->cfg.n / 1000),
                          (long)(b->cfg.n % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return forward(b, msg, len, err, errlen);
}

/* ---- filter. ----------------------------------------------------------- */

static fl_status filter_process(fl__inst *in, const uint8_t *msg, size_t len,
                                char *err, size_t errlen)
{
    binst *b = B(in);
    cJSON *root = parse_json_exact(msg, len);
    const cJSON *v = root;
    char part[128];
    const char *p = b->cfg.field;
    while (v && *p) {
        size_t n = strcspn(p, ".");
        memcpy(part, p, n);
        part[n] = '\0';
        v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, part)
                              : NULL;
        p += n;
        if (*p == '.')
            p++;
    }
    if (!cJSON_IsNumber(v)) {
        cJSON_Delete(root);
        char why[200];
        snprintf(why, sizeof why, "that are not JSON or lack a numeric '%s'",
                 b->cfg.field);
        count_drop(b, why);
        return FL_OK;
    }
    double x = v->valuedouble, y = b->cfg.value;
    cJSON_Delete(root);
    int pass = 0;
    switch (b->cfg.op) {
    case OP_LT: pass = x < y; break;
    case OP_LE: pass = x <= y; break;
    case OP_GT: pass = x > y; break;
    case OP_GE: pass = x >= y; break;
    case OP_EQ: pass = x == y; break;
    case OP_NE: pass = x != y; break;
    }
    return pass ? forward(b, msg, len, err, errlen) : FL_OK;
}

/* ---- The ops tables. --------------------------------------------------- */

#define BUILTIN_GLUE(name, KIND)                                             \
    static fl_status name##_check(const fl__stage *d, char *err,             \
                                  size_t errlen)                             \
    {                                                                        \
        return b_check(KIND, d, err, errlen);                                \
    }                                                                        \
    static fl_status name##_create(const fl__stage *d,                       \
                                   const if_host_api *api, void *ctx,        \
                                   int32_t device, fl__inst **out, char *err, \
                                   size_t errlen)                            \
    {                                                                        \
        (void)device;                                                        \
        return b_create(KIND, d, api, ctx, out, err, errlen);                \
    }

BUILTIN_GLUE(log, B_LOG)
BUILTIN_GLUE(jsonl, B_JSONL)
BUILTIN_GLUE(null, B_NULL)
BUILTIN_GLUE(sample, B_SAMPLE)
BUILTIN_GLUE(rate, B_RATE)
BUILTIN_GLUE(filter, B_FILTER)
BUILTIN_GLUE(delay, B_DELAY)

#define BUILTIN_OPS(name, summary, help)                                     \
    const fl__stage_ops fl__##name##_ops = {                                 \
        #name,          summary,       help,         name##_check,          \
        name##_create,  name##_process, b_produce,   b_actuation,           \
        b_destroy,                                                           \
    }

BUILTIN_OPS(log, "prints every message on stdout and forwards it",
    "log [PREFIX]\n"
    "  Prints one line per message on standard output and forwards the\n"
    "  message unchanged (so it can tap the middle of a pipeline):\n"
    "    PREFIX: ORIGIN #SEQ TOPIC: MESSAGE\n"
    "  PREFIX defaults to the stage's name; ORIGIN is the origin device's\n"
    "  name ('-' when none).  Control bytes and invalid UTF-8 in the\n"
    "  message are shown as \\xNN.  Each line is written with one call, so\n"
    "  lines of concurrent instances never mix.\n");

BUILTIN_OPS(jsonl, "appends every message as one JSON line to a file",
    "jsonl \"FILE\" [line|buffered]\n"
    "  Appends one JSON object per message to FILE (created if missing,\n"
    "  relative to the flow file) and forwards the message unchanged:\n"
    "    {\"origin\":\"room-03\",\"seq\":12,\"ts\":1712000000000000000,\n"
    "     \"topic\":\"clean\",\"msg\":MESSAGE}\n"
    "  (one line).  MESSAGE is the message itself when it is valid JSON\n"
    "  (its line breaks turned into spaces), otherwise a JSON string of it.\n"
    "  origin is null when the message has no origin device; ts is in ns.\n"
    "  Flush policy: 'line' (default) writes every line at once with one\n"
    "  write(2) in append mode, so nothing is lost when the process dies\n"
    "  and lines of several instances never interleave; 'buffered' batches\n"
    "  lines and writes them when 64 KiB have gathered, when a message\n"
    "  arrives a second or more after the last write, and when the stage\n"
    "  stops.\n");

BUILTIN_OPS(null, "discards every message",
    "null\n"
    "  Discards every message (an output that keeps nothing; useful in\n"
    "  benchmarks).  Takes no configuration.\n");

BUILTIN_OPS(sample, "forwards every Nth message",
    "sample N\n"
    "  Forwards the Nth, 2Nth, 3Nth, ... message each instance receives and\n"
    "  drops the others: 10 messages through `sample 3` forward 3 (the 3rd,\n"
    "  6th and 9th).  N is a whole number >= 1.\n");

BUILTIN_OPS(rate, "limits messages to N per second, dropping the excess",
    "rate N   (or N/s)\n"
    "  Forwards at most N messages per second per instance with a token\n"
    "  bucket (capacity N, at least 1, refilled at N per second, full at\n"
    "  start) and drops the excess.  Drops are counted and reported in the\n"
    "  log at most once a second:\n"
    "    rate 'NAME': dropped K messages over the rate limit\n"
    "  N may be fractional (0.5 = one message every two seconds).\n");

BUILTIN_OPS(filter, "forwards messages whose JSON field compares true",
    "filter \"FIELD OP NUMBER\"\n"
    "  Parses each message as JSON and forwards it unchanged when the\n"
    "  numeric member FIELD compares true against NUMBER; OP is one of\n"
    "  < <= > >= == !=.  FIELD may be a dotted path into nested objects\n"
    "  (\"air.co2\").  A message that is not JSON, or lacks FIELD, or whose\n"
    "  FIELD is not a number, is dropped and counted; the count is reported\n"
    "  in the log at most once a second:\n"
    "    filter 'NAME': dropped K messages that are not JSON or lack a\n"
    "    numeric 'FIELD'\n"
    "  Example: filter \"co2 > 1000\".\n");

BUILTIN_OPS(delay, "sleeps MS milliseconds per message (a slow consumer)",
    "delay MS   (or MSms)\n"
    "  Sleeps MS milliseconds for every message, then forwards it\n"
    "  unchanged.  It blocks its worker meanwhile: a deliberately slow\n"
    "  consumer for tests of back-pressure and for simulations, not for\n"
    "  production flows.  delay 0 forwards at once.\n");
