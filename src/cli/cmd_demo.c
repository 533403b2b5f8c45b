/*
 * cmd_demo.c - `isoflow demo`: the whole home system as real processes.
 * Issues a fresh CA and certificates, starts a cloud node, an edge node and
 * N device nodes (`isoflow node`, this same binary), shows a live status
 * every second and stops every process cleanly (docs/NODES.md).
 *
 * Status channel: each node's stdout is a pipe to this process; a node whose
 * stdout is not a terminal prints one status line a second ("links up L |
 * in I | out O | ... | actuations A | errors E"), parsed here.  End-to-end
 * latency is measured on the cloud's `averages.jsonl` store: every line
 * carries the wall-clock time its reading was produced on the device
 * ("ts"); inotify tells when a line is written.  Children are in their own
 * process group (Ctrl-C reaches only the demo, which stops them in order:
 * devices, edge, cloud) and die with the demo (PR_SET_PDEATHSIG).
 */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* realpath */
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/inotify.h>
#include <sys/prctl.h>
#endif

#include "cli.h"
#include "deploy.h"
#include "flow.h"
#include "net.h"

#define DEMO_MAX_DEVICES 1000
#define DEMO_MAX_NODES 16          /* edge and cloud nodes */
#define DEMO_PATH 1024
#define DEMO_STOP_MS 10000          /* SIGTERM -> SIGKILL per layer */
#define DEMO_START_MS 15000         /* wait for the upper nodes to be up */
#define DEMO_MAX_LAT ((size_t)1 << 22) /* latency samples kept */
#define DEMO_FLOW_MAX ((size_t)1 << 20)

enum { L_DEVICE = 0, L_EDGE = 1, L_CLOUD = 2 };

/* One node process and what its status lines said last. */
typedef struct demo_child {
    char name[64];
    int layer;            /* L_DEVICE, L_EDGE or L_CLOUD */
    pid_t pid;            /* 0: not started or reaped */
    int fd;               /* read end of its stdout pipe, -1 when closed */
    char line[1024];      /* partial status line */
    size_t len;
    int status_seen;      /* printed at least one status line */
    unsigned links;       /* links up (last status) */
    uint64_t in, out, act, err; /* last status figures */
    int exited;           /* reaped */
    int wstatus;          /* waitpid status when exited */
    int early;            /* exited before the demo stopped it */
    int killed;           /* needed SIGKILL */
} demo_child;

/* The demo's whole state. */
typedef struct demo {
    const char *exe;      /* borrowed: this binary */
    char dir[DEMO_PATH];  /* the run directory */
    char flow[DEMO_PATH]; /* DIR/home.flow (rewritten copy) */
    int insecure;
    demo_child *ch;       /* owned: upper nodes first, then devices */
    size_t nch;
    pid_t pgid;           /* the children's process group (0: none yet) */
    int ino;              /* inotify fd or -1 */
    int avg_fd;           /* DIR/out/averages.jsonl or -1 */
    char avg_line[4096];  /* partial line of it */
    size_t avg_len;
    uint32_t *lat_us;     /* owned: every latency sample (microseconds) */
    size_t nlat, lat_mark;/* count; count at the last status line */
    uint64_t stored;      /* lines read from averages.jsonl */
    /* The live update shown half-way (TLS runs only): the trusted key the
     * nodes start with, the signed new module, the `isoflow deploy`
     * child and its outcome. */
    char trust[DEMO_PATH];    /* DIR/keys/demo.pub, "" when no deploy */
    char v2[DEMO_PATH];       /* DIR/stages/cleaner_v2.wasm */
    char v2sig[DEMO_PATH];    /* DIR/cleaner_v2.wasm.sig */
    pid_t dep_pid;            /* the deploy command, 0 when not running */
    int dep_state;            /* 0 not yet, 1 running, 2 done */
    int dep_status;           /* its waitpid status */
} demo;


void cli_cmd_demo_help(FILE *out)
{
    fprintf(out,
        "usage: isoflow demo [--devices N] [--duration S] [--flow FILE]\n"
        "                    [--dir DIR] [--insecure]\n\n"
        "Runs the home CO2 system (examples/home/home_nodes.flow) as real\n"
        "processes on loopback: creates a certificate authority and\n"
        "certificates (cloud, edge, every device, one operator), starts a\n"
        "cloud node, an edge node and N device nodes (`isoflow node`),\n"
        "shows every second the devices connected, messages per second\n"
        "per layer, end-to-end latency (device reading -> cloud store)\n"
        "and actuations delivered; half-way through (after 20 s without\n"
        "--duration) deploys a signed new version of the edge's cleaner\n"
        "into the running edge with `isoflow deploy` and shows its\n"
        "progress (TLS runs only); then stops every process (SIGTERM,\n"
        "SIGKILL after 10 s) on Ctrl-C or after --duration and prints a\n"
        "summary.  The single-process version of the same system is\n"
        "`isoflow run examples/home/home.flow`.\n\n"
        "options:\n"
        "  --devices N    device nodes, 1 to %d (default 50)\n"
        "  --duration S   stop after S seconds (default: on Ctrl-C)\n"
        "  --flow FILE    the flow (default examples/home/home_nodes.flow);\n"
        "                 its device count and listen ports are replaced\n"
        "                 (free ports) in the copy the nodes run\n"
        "  --dir DIR      certificates, state, logs and stores go here\n"
        "                 (default: a temporary directory, removed after a\n"
        "                 clean run)\n"
        "  --insecure     plaintext links, no certificates (warns)\n\n"
        "exit status: 0 when every node ran and stopped cleanly, 1\n"
        "otherwise, 2 on a bad command line.\n"
        "example: isoflow demo --devices 20 --duration 30\n",
        DEMO_MAX_DEVICES);
}

/* ---------------------------------------------------------------------- */
/* Preparing the run directory.                                           */

/* snprintf into a DEMO_PATH buffer; -1 (with a message) when truncated. */
static int path_fmt(char *buf, const char *a, const char *b)
{
    int n = snprintf(buf, DEMO_PATH, "%s/%s", a, b);
    if (n < 0 || n >= DEMO_PATH) {
        cli_errf("demo: path too long: %s/%s", a, b);
        return -1;
    }
    return 0;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        cli_errf("demo: cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* A free TCP port on 127.0.0.1 (kept bound in *fd so that the next call
 * picks another one; the caller closes it).  0 on failure. */
static unsigned free_port(int *fd)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    if (*fd < 0)
        return 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(*fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(*fd, (struct sockaddr *)&a, &al) != 0)
        return 0;
    return ntohs(a.sin_port);
}

/* One word of a flow line: [b, e) in the line, quotes stripped. */
typedef struct word {
    const char *b, *e;
} word;

/* Splits a line into at most cap words (quoted strings are one word
 * without their quotes; a '#' outside quotes ends the line).  Returns the
 * number of words. */
static size_t split_words(const char *s, const char *end, word *w, size_t cap)
{
    size_t n = 0;
    while (s < end && n < cap) {
        while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        if (s >= end || *s == '#')
            break;
        if (*s == '"') {
            const char *q = ++s;
            while (s < end && *s != '"')
                s++;
            w[n].b = q, w[n].e = s, n++;
            if (s < end)
                s++;
        } else {
            const char *q = s;
            while (s < end && *s != ' ' && *s != '\t' && *s != '\r')
                s++;
            w[n].b = q, w[n].e = s, n++;
        }
    }
    return n;
}

static int word_is(const word *w, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(w->e - w->b) == n && memcmp(w->b, lit, n) == 0;
}

/* Appends [b, e) to the bounded buffer; -1 when it does not fit. */
static int buf_put(char *buf, size_t cap, size_t *len, const char *b,
                   const char *e)
{
    size_t n = (size_t)(e - b);
    if (*len + n + 1 > cap)
        return -1;
    memcpy(buf + *len, b, n);
    *len += n;
    buf[*len] = '\0';
    return 0;
}

/* Formats device i of a name pattern with one %d (optionally %0Nd) and
 * %% escapes.  Returns -1 for any other conversion or a long name. */
static int device_name(const char *pat, uint32_t i, char *out, size_t cap)
{
    size_t k = 0;
    int conv = 0;
    for (const char *p = pat; *p; p++) {
        char num[32];
        if (*p != '%') {
            if (k + 2 > cap)
                return -1;
            out[k++] = *p;
            continue;
        }
        p++;
        if (*p == '%') {
            if (k + 2 > cap)
                return -1;
            out[k++] = '%';
            continue;
        }
        int zero = 0, width = 0;
        if (*p == '0')
            zero = 1, p++;
        while (*p >= '0' && *p <= '9' && width < 100)
            width = width * 10 + (*p++ - '0');
        if (*p != 'd' || conv++)
            return -1;
        int n = snprintf(num, sizeof num, "%u", (unsigned)i);
        while (n < width && k + 2 <= cap)
            out[k++] = zero ? '0' : ' ', width--;
        if (n < 0 || k + (size_t)n + 1 > cap)
            return -1;
        memcpy(out + k, num, (size_t)n);
        k += (size_t)n;
    }
    out[k] = '\0';
    return conv == 1 ? 0 : -1;
}

/*
 * Reads the flow `src`, writes DIR/home.flow with the device count of its
 * (one) connected device group set to `ndev` and every listen port
 * replaced by a free one, and fills d->ch: the edge and cloud nodes, then
 * the devices.  Returns 0, or -1 with a message.
 */
static int prepare_flow(demo *d, const char *src, uint32_t ndev)
{
    uint8_t *text = NULL;
    size_t len, olen = 0;
    char *out = NULL, pattern[128] = "";
    int groups = 0, rc = -1, socks[DEMO_MAX_NODES];
    size_t nsock = 0, nup = 0;
    demo_child up[DEMO_MAX_NODES];
    FILE *f = NULL;

    if (cli_read_file(src, DEMO_FLOW_MAX, &text, &len) != 0)
        return -1;
    out = malloc(len + 4096);
    if (!out) {
        cli_errf("demo: out of memory");
        goto done;
    }
    out[0] = '\0';
    const char *s = (const char *)text, *end = s + len;
    while (s < end) {
        const char *eol = memchr(s, '\n', (size_t)(end - s));
        const char *le = eol ? eol : end, *cur = s;
        word w[16];
        size_t n = split_words(s, le, w, 16);
        char rep[32];
        if (n >= 1 && word_is(&w[0], "devices")) {
            size_t x = 0, conn = 0;
            for (size_t i = 3; i + 1 < n; i++) {
                if (word_is(&w[i], "x"))
                    x = i + 1;
                if (word_is(&w[i], "connect"))
                    conn = i + 1;
            }
            if (conn && x) {
                if (groups++ || n < 3 ||
                    (size_t)(w[2].e - w[2].b) >= sizeof pattern) {
                    cli_errf("demo: %s: the demo runs one device group "
                             "with `connect`", src);
                    goto done;
                }
                memcpy(pattern, w[2].b, (size_t)(w[2].e - w[2].b));
                pattern[w[2].e - w[2].b] = '\0';
                snprintf(rep, sizeof rep, "%u", (unsigned)ndev);
                if (buf_put(out, len + 4096, &olen, cur, w[x].b) ||
                    buf_put(out, len + 4096, &olen, rep, rep + strlen(rep)))
                    goto toolong;
                cur = w[x].e;
            }
        } else if (n >= 3 && word_is(&w[0], "node")) {
            if (nup == DEMO_MAX_NODES) {
                cli_errf("demo: %s: more than %d nodes", src,
                         DEMO_MAX_NODES);
                goto done;
            }
            demo_child *c = &up[nup++];
            memset(c, 0, sizeof *c);
            size_t nl = (size_t)(w[1].e - w[1].b);
            if (nl >= sizeof c->name)
                nl = sizeof c->name - 1;
            memcpy(c->name, w[1].b, nl);
            c->layer = word_is(&w[2], "@cloud") ? L_CLOUD : L_EDGE;
            for (size_t i = 3; i + 1 < n; i++) {
                const char *colon;
                if (!word_is(&w[i], "listen"))
                    continue;
                colon = memchr(w[i + 1].b, ':', (size_t)(w[i + 1].e -
                                                         w[i + 1].b));
                unsigned port = free_port(&socks[nsock]);
                nsock++;
                if (!colon || !port) {
                    cli_errf("demo: no free port for node %s", c->name);
                    goto done;
                }
                snprintf(rep, sizeof rep, "%u", port);
                if (buf_put(out, len + 4096, &olen, cur, colon + 1) ||
                    buf_put(out, len + 4096, &olen, rep, rep + strlen(rep)))
                    goto toolong;
                cur = w[i + 1].e;
            }
        }
        if (buf_put(out, len + 4096, &olen, cur, eol ? eol + 1 : end))
            goto toolong;
        s = eol ? eol + 1 : end;
    }
    if (groups != 1 || nup == 0) {
        cli_errf("demo: %s: the demo needs node declarations and one "
                 "device group with `connect` (see docs/NODES.md)", src);
        goto done;
    }
    d->ch = calloc(nup + ndev, sizeof *d->ch);
    if (!d->ch) {
        cli_errf("demo: out of memory");
        goto done;
    }
    /* Cloud nodes first, then edge nodes: the start (and reverse stop)
     * order. */
    for (int layer = L_CLOUD; layer >= L_EDGE; layer--)
        for (size_t i = 0; i < nup; i++)
            if (up[i].layer == layer)
                d->ch[d->nch++] = up[i];
    for (uint32_t i = 0; i < ndev; i++) {
        demo_child *c = &d->ch[d->nch++];
        c->layer = L_DEVICE;
        if (device_name(pattern, i, c->name, sizeof c->name) != 0) {
            cli_errf("demo: device name pattern \"%s\" needs one %%d",
                     pattern);
            goto done;
        }
    }
    if (path_fmt(d->flow, d->dir, "home.flow") != 0)
        goto done;
    f = fopen(d->flow, "w");
    if (!f || fwrite(out, 1, olen, f) != olen) {
        cli_errf("demo: cannot write %s: %s", d->flow, strerror(errno));
        goto done;
    }
    rc = 0;
    goto done;
toolong:
    cli_errf("demo: %s: rewritten flow too long", src);
done:
    if (f && fclose(f) != 0 && rc == 0) {
        cli_errf("demo: cannot write %s", d->flow);
        rc = -1;
    }
    for (size_t i = 0; i < nsock; i++)
        if (socks[i] >= 0)
            close(socks[i]);
    free(out);
    free(text);
    return rc;
}

/* Links DIR/stages to the build's stages (beside this binary) or, failing
 * that, to the stages beside the source flow.  Returns 0 or -1. */
static int link_stages(const demo *d, const char *src)
{
    char exe_dir[DEMO_PATH], cand[DEMO_PATH], real[PATH_MAX], dst[DEMO_PATH];
    const char *slash;
    struct stat sb;
    int found = 0;

    slash = strrchr(d->exe, '/');
    snprintf(exe_dir, sizeof exe_dir, "%.*s",
             slash ? (int)(slash - d->exe) : 1, slash ? d->exe : ".");
    if (path_fmt(cand, exe_dir, "stages/room_sensor.wasm") == 0 &&
        stat(cand, &sb) == 0)
        found = path_fmt(cand, exe_dir, "stages") == 0;
    if (!found) {
        slash = strrchr(src, '/');
        snprintf(exe_dir, sizeof exe_dir, "%.*s",
                 slash ? (int)(slash - src) : 1, slash ? src : ".");
        found = path_fmt(cand, exe_dir, "stages") == 0 &&
                stat(cand, &sb) == 0;
    }
    if (!found || !realpath(cand, real)) {
        cli_errf("demo: no stages found beside %s or %s (run 'make build')",
                 d->exe, src);
        return -1;
    }
    if (path_fmt(dst, d->dir, "stages") != 0)
        return -1;
    if (symlink(real, dst) != 0 && errno != EEXIST) {
        cli_errf("demo: cannot link %s: %s", dst, strerror(errno));
        return -1;
    }
    return 0;
}

/* Copies a small file (ca.crt); 0 or -1 with a message. */
static int copy_file(const char *from, const char *to)
{
    uint8_t *data;
    size_t len;
    FILE *f;
    int rc = 0;
    if (cli_read_file(from, 1 << 20, &data, &len) != 0)
        return -1;
    f = fopen(to, "w");
    if (!f || fwrite(data, 1, len, f) != len)
        rc = -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc)
        cli_errf("demo: cannot write %s", to);
    free(data);
    return rc;
}

/* The CA in DIR/ca and every node's (and one operator's) certificate in
 * DIR/certs, with the library's CA functions.  0 or -1 with a message. */
static int make_certs(const demo *d)
{
    char ca[DEMO_PATH], certs[DEMO_PATH], a[DEMO_PATH], b[DEMO_PATH];
    char err[512];
    static const int roles[] = {NT_ROLE_DEVICE, NT_ROLE_EDGE, NT_ROLE_CLOUD};
    if (path_fmt(ca, d->dir, "ca") || path_fmt(certs, d->dir, "certs") ||
        make_dir(certs))
        return -1;
    if (nt_ca_init(ca, "isoflow-demo", err, sizeof err) != NT_OK) {
        cli_errf("demo: ca init: %s", err);
        return -1;
    }
    for (size_t i = 0; i <= d->nch; i++) {
        const char *name = i < d->nch ? d->ch[i].name : "operator";
        int role = i < d->nch ? roles[d->ch[i].layer] : NT_ROLE_OPERATOR;
        if (nt_ca_issue(ca, name, role, 0, 0, certs, err, sizeof err) !=
            NT_OK) {
            cli_errf("demo: ca issue %s: %s", name, err);
            return -1;
        }
    }
    if (path_fmt(a, ca, "ca.crt") || path_fmt(b, certs, "ca.crt"))
        return -1;
    return copy_file(a, b);
}

/* ---------------------------------------------------------------------- */
/* Processes.                                                              */

/*
 * Starts `isoflow node` for child c: stdout to a pipe read here, stderr to
 * DIR/log/NAME.log, in the demo's process group, killed if the demo dies.
 * Returns 0 or -1 with a message.
 */
static int spawn(demo *d, demo_child *c)
{
    char logp[DEMO_PATH], stats[DEMO_PATH], certs[DEMO_PATH],
        state[DEMO_PATH], tmp[DEMO_PATH];
    int p[2];
    pid_t parent = getpid();
    const char *argv[24];
    int k = 0;

    snprintf(tmp, sizeof tmp, "log/%s.log", c->name);
    if (path_fmt(logp, d->dir, tmp))
        return -1;
    snprintf(tmp, sizeof tmp, "stats/%s.json", c->name);
    if (path_fmt(stats, d->dir, tmp) || path_fmt(certs, d->dir, "certs") ||
        path_fmt(state, d->dir, "state"))
        return -1;
    argv[k++] = d->exe;
    argv[k++] = "node";
    argv[k++] = "--flow";
    argv[k++] = d->flow;
    argv[k++] = "--name";
    argv[k++] = c->name;
    if (d->insecure) {
        argv[k++] = "--insecure";
    } else {
        argv[k++] = "--certs";
        argv[k++] = certs;
    }
    argv[k++] = "--state";
    argv[k++] = state;
    if (d->trust[0]) {
        argv[k++] = "--trust";
        argv[k++] = d->trust;
    }
    argv[k++] = "--stats-json";
    argv[k++] = stats;
    argv[k++] = "--workers";
    argv[k++] = c->layer == L_DEVICE ? "1" : "2";
    argv[k] = NULL;

    if (pipe(p) != 0) {
        cli_errf("demo: pipe: %s", strerror(errno));
        return -1;
    }
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        cli_errf("demo: fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        int log = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        setpgid(0, d->pgid);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        if (getppid() != parent || log < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(p[1], 1);
        dup2(log, 2);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execv(d->exe, (char *const *)argv);
        _exit(127);
    }
    /* Both sides set the group, so it holds whichever runs first. */
    setpgid(pid, d->pgid ? d->pgid : pid);
    if (!d->pgid)
        d->pgid = pid;
    close(p[1]);
    fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
    c->pid = pid;
    c->fd = p[0];
    return 0;
}

/* The number after `key` in s (0 when absent). */
static uint64_t field(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* Takes one status line of a node ("... | links up L | in I | out O |
 * spooled S | actuations A | errors E"). */
static void take_line(demo_child *c, const char *s)
{
    if (!strstr(s, "links up "))
        return;
    c->status_seen = 1;
    c->links = (unsigned)field(s, "links up ");
    c->in = field(s, "| in ");
    c->out = field(s, "| out ");
    c->act = field(s, "| actuations ");
    c->err = field(s, "| errors ");
}

/* Reads what the node wrote to its pipe; closes it at end of file. */
static void read_child(demo_child *c)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
            close(c->fd);
            c->fd = -1;
            return;
        }
        if (n < 0)
            return;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n' || buf[i] == '\r') {
                c->line[c->len] = '\0';
                take_line(c, c->line);
                c->len = 0;
            } else if (c->len + 1 < sizeof c->line) {
                c->line[c->len++] = buf[i];
            }
        }
    }
}

/* Reads the lines the cloud added to averages.jsonl: each gives one
 * latency sample, now (wall clock) minus the reading's "ts". */
static void read_store(demo *d)
{
    char buf[8192];
    if (d->avg_fd < 0) {
        char p[DEMO_PATH];
        if (path_fmt(p, d->dir, "out/averages.jsonl"))
            return;
        d->avg_fd = open(p, O_RDONLY | O_NONBLOCK);
        if (d->avg_fd < 0)
            return;
        fcntl(d->avg_fd, F_SETFD, FD_CLOEXEC);
    }
    for (;;) {
        ssize_t n = read(d->avg_fd, buf, sizeof buf);
        if (n <= 0)
            return;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (d->avg_len + 1 < sizeof d->avg_line)
                    d->avg_line[d->avg_len++] = buf[i];
                continue;
            }
            d->avg_line[d->avg_len] = '\0';
            d->avg_len = 0;
            d->stored++;
            const char *t = strstr(d->avg_line, "\"ts\":");
            if (!t)
                continue;
            int64_t at = strtoll(t + 5, NULL, 10);
            int64_t us = (now - at) / 1000;
            if (us < 0)
                us = 0;
            if (us > UINT32_MAX)
                us = UINT32_MAX;
            if (d->nlat < DEMO_MAX_LAT)
                d->lat_us[d->nlat++] = (uint32_t)us;
        }
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* p50 and p99 (ms) of samples [from, to); sorts that range in place. */
static void quantiles(uint32_t *v, size_t from, size_t to, double *p50,
                      double *p99)
{
    size_t n = to - from;
    *p50 = *p99 = 0;
    if (!n)
        return;
    qsort(v + from, n, sizeof *v, cmp_u32);
    *p50 = v[from + (n - 1) / 2] / 1000.0;
    *p99 = v[from + (size_t)((double)(n - 1) * 0.99)] / 1000.0;
}

/* Reaps exited children without blocking; marks early exits when the demo
 * has not asked them to stop.  Returns how many are still running. */
static size_t reap(demo *d, int stopping)
{
    size_t alive = 0;
    for (size_t i = 0; i < d->nch; i++) {
        demo_child *c = &d->ch[i];
        if (!c->pid || c->exited)
            continue;
        int st;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid) {
            c->exited = 1;
            c->wstatus = st;
            if (!stopping)
                c->early = 1;
        } else {
            alive++;
        }
    }
    return alive;
}

/* Waits up to ms for pipe output or a store line (or until a signal),
 * then takes everything available. */
static void pump(demo *d, int ms)
{
    struct pollfd pf[DEMO_MAX_DEVICES + DEMO_MAX_NODES + 1];
    size_t n = 0;
    for (size_t i = 0; i < d->nch; i++)
        if (d->ch[i].fd >= 0) {
            pf[n].fd = d->ch[i].fd;
            pf[n].events = POLLIN;
            pf[n++].revents = 0;
        }
    if (d->ino >= 0) {
        pf[n].fd = d->ino;
        pf[n].events = POLLIN;
        pf[n++].revents = 0;
    } else if (ms > 10) {
        ms = 10; /* no inotify: look at the store every 10 ms */
    }
    if (poll(pf, (nfds_t)n, ms) < 0 && errno != EINTR)
        return;
    if (d->ino >= 0) {
        char evbuf[4096];
        while (read(d->ino, evbuf, sizeof evbuf) > 0)
            ;
    }
    read_store(d);
    for (size_t i = 0; i < d->nch; i++)
        if (d->ch[i].fd >= 0)
            read_child(&d->ch[i]);
}

/* The per-second totals the status line compares. */
typedef struct snap {
    uint64_t dev_out, edge_in, edge_out, cloud_in, act, err;
    unsigned connected, running;
} snap;

static void take_snap(const demo *d, snap *s)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < d->nch; i++) {
        const demo_child *c = &d->ch[i];
        if (c->pid && !c->exited)
            s->running++;
        s->err += c->err;
        if (c->layer == L_DEVICE) {
            s->dev_out += c->out;
            s->act += c->act;
            s->connected += c->links > 0;
        } else if (c->layer == L_EDGE) {
            s->edge_in += c->in;
            s->edge_out += c->out;
        } else {
            s->cloud_in += c->in;
        }
    }
}

/* Sends sig to every running child of the layer. */
static void signal_layer(demo *d, int layer, int sig)
{
    for (size_t i = 0; i < d->nch; i++) {
        demo_child *c = &d->ch[i];
        if (c->layer == layer && c->pid && !c->exited) {
            kill(c->pid, sig);
            if (sig == SIGKILL)
                c->killed = 1;
        }
    }
}

/* Stops one layer: SIGTERM, then SIGKILL after DEMO_STOP_MS.  Keeps
 * reading the pipes meanwhile (a node blocked on a full pipe would not
 * stop). */
static void stop_layer(demo *d, int layer)
{
    uint64_t t0 = cli_now_ns();
    signal_layer(d, layer, SIGTERM);
    for (;;) {
        reap(d, 1);
        int left = 0;
        for (size_t i = 0; i < d->nch; i++)
            left |= d->ch[i].layer == layer && d->ch[i].pid &&
                    !d->ch[i].exited;
        if (!left)
            return;
        if (cli_now_ns() - t0 > (uint64_t)DEMO_STOP_MS * 1000000u) {
            signal_layer(d, layer, SIGKILL);
            for (size_t i = 0; i < d->nch; i++) {
                demo_child *c = &d->ch[i];
                if (c->layer == layer && c->pid && !c->exited &&
                    waitpid(c->pid, &c->wstatus, 0) == c->pid)
                    c->exited = 1;
            }
            return;
        }
        pump(d, 20);
    }
}

/* ---------------------------------------------------------------------- */
/* The summary.                                                            */

/* One number from a node's final stats JSON (0 when missing). */
static uint64_t stats_field(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    return json ? field(json, k) : 0;
}

/* Prints the summary; returns the number of problems found. */
static int summary(demo *d, double secs, uint32_t ndev, unsigned peak)
{
    uint64_t produced = 0, dev_out = 0, acts = 0, edge_in = 0, edge_out = 0,
             cloud_in = 0, spooled = 0, stage_errors = 0;
    int problems = 0, rooms_with = 0;
    char acts_line[4096];
    size_t al = 0;
    acts_line[0] = '\0';

    for (size_t i = 0; i < d->nch; i++) {
        demo_child *c = &d->ch[i];
        char p[DEMO_PATH], rel[128];
        uint8_t *json = NULL;
        size_t len;
        snprintf(rel, sizeof rel, "stats/%s.json", c->name);
        if (path_fmt(p, d->dir, rel) == 0 && access(p, R_OK) == 0)
            cli_read_file(p, 1 << 20, &json, &len);
        const char *j = (const char *)json;
        spooled += stats_field(j, "spooled");
        stage_errors += stats_field(j, "errors");
        if (c->layer == L_DEVICE) {
            uint64_t a = stats_field(j, "actuations");
            produced += stats_field(j, "produced");
            dev_out += stats_field(j, "msgs_out");
            acts += a;
            if (a) {
                int n = snprintf(acts_line + al, sizeof acts_line - al,
                                 "%s%s %llu", rooms_with ? ", " : "",
                                 c->name, (unsigned long long)a);
                if (n > 0 && (size_t)n < sizeof acts_line - al)
                    al += (size_t)n;
                rooms_with++;
            }
        } else if (c->layer == L_EDGE) {
            edge_in += stats_field(j, "msgs_in");
            edge_out += stats_field(j, "msgs_out");
        } else {
            cloud_in += stats_field(j, "msgs_in");
        }
        free(json);
        const char *why = NULL;
        if (!c->pid)
            why = "was not started";
        else if (c->early)
            why = "exited before the demo stopped it";
        else if (c->killed)
            why = "did not stop within 10 s (killed)";
        else if (!WIFEXITED(c->wstatus))
            why = "died of a signal";
        else if (WEXITSTATUS(c->wstatus) != 0)
            why = "exited with a non-zero status";
        else if (!j)
            why = "wrote no final figures";
        if (why) {
            printf("error: node %s %s (see %s/log/%s.log)\n", c->name, why,
                   d->dir, c->name);
            problems++;
        }
    }
    double p50, p99;
    quantiles(d->lat_us, 0, d->nlat, &p50, &p99);
    printf("summary after %.1f s:\n", secs);
    printf("  devices connected: %u of %u\n", peak, (unsigned)ndev);
    printf("  device layer: %llu readings produced, %llu sent to the edge\n",
           (unsigned long long)produced, (unsigned long long)dev_out);
    printf("  edge layer:   %llu messages received, %llu sent (readings "
           "in and averages out, actuations back)\n",
           (unsigned long long)edge_in, (unsigned long long)edge_out);
    printf("  cloud layer:  %llu messages received, %llu averages stored\n",
           (unsigned long long)cloud_in, (unsigned long long)d->stored);
    printf("  end-to-end latency (reading -> cloud store): p50 %.1f ms, "
           "p99 %.1f ms over %zu averages\n", p50, p99, d->nlat);
    printf("  actuations delivered: %llu (%d rooms%s%s)\n",
           (unsigned long long)acts, rooms_with, rooms_with ? ": " : "",
           acts_line);
    printf("  left in spools: %llu, stage errors: %llu\n",
           (unsigned long long)spooled, (unsigned long long)stage_errors);
    return problems;
}

/* ---------------------------------------------------------------------- */
/* The live update (issue 6) shown half-way through the demo.              */

/*
 * Prepares it when the flow has the wasm stage `clean` on the edge and the
 * stages hold cleaner_v2.wasm: a signing key in DIR/keys (the nodes trust
 * it) and the signed module.  Without them the demo runs without an
 * update (0); -1 only on an error making the key or the signature.
 */
static int prepare_deploy(demo *d, const fl_graph *g)
{
    char keys[DEMO_PATH], key[DEMO_PATH], err[512];
    struct stat sb;
    int has_clean = 0;
    fl_stage_desc sd;
    if (fl_graph_stage_find(g, "clean", &sd) == FL_OK &&
        strcmp(sd.kind, "wasm") == 0 && strcmp(sd.layer, "edge") == 0)
        has_clean = 1;
    if (!has_clean || path_fmt(d->v2, d->dir, "stages/cleaner_v2.wasm") ||
        stat(d->v2, &sb) != 0)
        return 0;
    if (path_fmt(keys, d->dir, "keys") || path_fmt(key, keys, "demo.key") ||
        path_fmt(d->v2sig, d->dir, "cleaner_v2.wasm.sig"))
        return -1;
    if (dp_key_gen(keys, "demo", NULL, err, sizeof err) != DP_OK ||
        dp_sign(key, d->v2, d->v2sig, "clean", 0, NULL, err, sizeof err) !=
            DP_OK) {
        cli_errf("demo: signing key: %s", err);
        return -1;
    }
    return path_fmt(d->trust, keys, "demo.pub");
}

/* Starts `isoflow deploy --layer edge --stage clean cleaner_v2.wasm` as an
 * operator, its output to DIR/log/deploy.log.  0 or -1. */
static int start_deploy(demo *d)
{
    char logp[DEMO_PATH], certs[DEMO_PATH];
    if (path_fmt(logp, d->dir, "log/deploy.log") ||
        path_fmt(certs, d->dir, "certs"))
        return -1;
    const char *argv[] = {d->exe,   "deploy",  "--flow", d->flow,
                          "--layer", "edge",   "--stage", "clean",
                          "--sig",  d->v2sig,  "--certs", certs,
                          "--as",   "operator", "--watch", "2",
                          d->v2,    NULL};
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        cli_errf("demo: fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int log = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (d->pgid)
            setpgid(0, d->pgid);
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        if (log < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(log, 1);
        dup2(log, 2);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(d->exe, (char *const *)argv);
        _exit(127);
    }
    if (d->pgid)
        setpgid(pid, d->pgid);
    d->dep_pid = pid;
    d->dep_state = 1;
    return 0;
}

/* When the deploy command has ended (or `wait` is set: waits for it),
 * prints its output indented and records its status. */
static void check_deploy(demo *d, int wait)
{
    char logp[DEMO_PATH];
    uint8_t *text;
    size_t len;
    int st;
    if (d->dep_state != 1)
        return;
    if (waitpid(d->dep_pid, &st, wait ? 0 : WNOHANG) != d->dep_pid)
        return;
    d->dep_state = 2;
    d->dep_status = st;
    d->dep_pid = 0;
    if (path_fmt(logp, d->dir, "log/deploy.log") == 0 &&
        cli_read_file(logp, 1 << 20, &text, &len) == 0) {
        const char *p = (const char *)text, *end = p + len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            printf("        deploy: %.*s\n", (int)n, p);
            p += n + 1;
        }
        free(text);
    }
    printf("        live update %s\n",
           WIFEXITED(st) && WEXITSTATUS(st) == 0
               ? "done: the edge runs cleaner v2 (no restart)"
               : "FAILED (see above)");
    fflush(stdout);
}

/* Removes the run directory (a temporary one, after a clean run). */
static void remove_tree(const char *dir)
{
    pid_t pid;
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

/* ---------------------------------------------------------------------- */

/* Parses the options into the out parameters; a CLI_EXIT_* code, or -1 to
 * go on. */
static int parse_args(int argc, char **argv, uint32_t *ndev, double *dur,
                      const char **flow, const char **dir, int *insecure)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            cli_cmd_demo_help(stdout);
            return CLI_EXIT_OK;
        }
        if (cli_streq(a, "--insecure")) {
            *insecure = 1;
            continue;
        }
        if (!v) {
            cli_errf("option %s needs a value (see 'isoflow demo --help')", a);
            return CLI_EXIT_USAGE;
        }
        i++;
        if (cli_streq(a, "--devices")) {
            unsigned long n = strtoul(v, &end, 10);
            if (!end || *end || n < 1 || n > DEMO_MAX_DEVICES) {
                cli_errf("--devices: expected 1..%d, got '%s'",
                         DEMO_MAX_DEVICES, v);
                return CLI_EXIT_USAGE;
            }
            *ndev = (uint32_t)n;
        } else if (cli_streq(a, "--duration")) {
            *dur = strtod(v, &end);
            if (!end || *end || !(*dur > 0)) {
                cli_errf("--duration: expected seconds > 0, got '%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else if (cli_streq(a, "--flow")) {
            *flow = v;
        } else if (cli_streq(a, "--dir")) {
            *dir = v;
        } else {
            cli_errf("unknown option '%s' (see 'isoflow demo --help')", a);
            return CLI_EXIT_USAGE;
        }
    }
    return -1;
}

/* The default flow: examples/home/home_nodes.flow from the current
 * directory or from the source tree two levels above this binary. */
static const char *default_flow(const char *exe, char *buf, size_t cap)
{
    static const char rel[] = "examples/home/home_nodes.flow";
    const char *slash = strrchr(exe, '/');
    if (access(rel, R_OK) == 0)
        return rel;
    if (slash) {
        snprintf(buf, cap, "%.*s/../../%s", (int)(slash - exe), exe, rel);
        if (access(buf, R_OK) == 0)
            return buf;
    }
    cli_errf("demo: cannot find %s (give --flow FILE)", rel);
    return NULL;
}

/*
 * `isoflow demo`: prepares the run directory (flow copy, certificates),
 * starts the nodes (cloud, edge, then the devices), prints a status line a
 * second until Ctrl-C, --duration or a node exiting on its own, stops the
 * layers from the devices up and prints the summary.  Returns CLI_EXIT_OK
 * only when every node ran and stopped cleanly.
 */
int cli_cmd_demo(int argc, char **argv)
{
    uint32_t ndev = 50;
    double duration = 0;
    const char *flow = NULL, *dir = NULL;
    char exe[DEMO_PATH], flowbuf[DEMO_PATH], sub[DEMO_PATH];
    int insecure = 0, rc = CLI_EXIT_FAIL, temp = 0;
    unsigned peak = 0;
    double secs = 0;
    demo d;

    memset(&d, 0, sizeof d);
    d.ino = d.avg_fd = -1;
    int pr = parse_args(argc, argv, &ndev, &duration, &flow, &dir, &insecure);
    if (pr >= 0)
        return pr;
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0 || (size_t)el >= sizeof exe - 1) {
        cli_errf("demo: cannot find this program (/proc/self/exe)");
        return CLI_EXIT_FAIL;
    }
    exe[el] = '\0';
    d.exe = exe;
    d.insecure = insecure;
    if (!flow && !(flow = default_flow(exe, flowbuf, sizeof flowbuf)))
        return CLI_EXIT_FAIL;
    if (dir) {
        if (make_dir(dir) || strlen(dir) >= sizeof d.dir)
            return CLI_EXIT_FAIL;
        snprintf(d.dir, sizeof d.dir, "%s", dir);
    } else {
        const char *t = getenv("TMPDIR");
        snprintf(d.dir, sizeof d.dir, "%s/isoflow-demo.XXXXXX",
                 t && t[0] ? t : "/tmp");
        if (!mkdtemp(d.dir)) {
            cli_errf("demo: cannot create a temporary directory: %s",
                     strerror(errno));
            return CLI_EXIT_FAIL;
        }
        temp = 1;
    }
    d.lat_us = malloc(DEMO_MAX_LAT * sizeof *d.lat_us);
    if (!d.lat_us) {
        cli_errf("demo: out of memory");
        goto out;
    }
    static const char *const subdirs[] = {"out", "log", "stats", "state"};
    for (size_t i = 0; i < 4; i++)
        if (path_fmt(sub, d.dir, subdirs[i]) || make_dir(sub))
            goto out;
    if (prepare_flow(&d, flow, ndev) || link_stages(&d, flow))
        goto out;
    {
        fl_graph *g = NULL;
        char err[4096];
        if (fl_graph_load(d.flow, &g, err, sizeof err) != FL_OK) {
            fprintf(stderr, "%s\n", err);
            goto out;
        }
        int bad = !insecure && (make_certs(&d) || prepare_deploy(&d, g));
        fl_graph_free(g);
        if (bad)
            goto out;
    }
    if (insecure)
        fprintf(stderr, "isoflow: WARNING: --insecure: links are plaintext "
                        "and unauthenticated\n");
#ifdef __linux__
    if (path_fmt(sub, d.dir, "out") == 0) {
        d.ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (d.ino >= 0 && inotify_add_watch(d.ino, sub, IN_MODIFY |
                                            IN_CREATE) < 0) {
            close(d.ino);
            d.ino = -1;
        }
    }
#endif

    cli_catch_stop(1, 1);

    printf("isoflow demo: %u devices, %s, in %s\n", (unsigned)ndev,
           insecure ? "plaintext links" : "mutual TLS (fresh CA in ca/)",
           d.dir);
    printf("flow %s (from %s)\n", d.flow, flow);
    fflush(stdout);

    /* The cloud and edge nodes first; the devices once every one of them
     * printed a status line (it listens then). */
    size_t nup = 0;
    while (nup < d.nch && d.ch[nup].layer != L_DEVICE)
        if (spawn(&d, &d.ch[nup++]))
            goto stop;
    uint64_t t0 = cli_now_ns();
    for (;;) {
        size_t ready = 0;
        for (size_t i = 0; i < nup; i++)
            ready += d.ch[i].status_seen;
        if (ready == nup || cli_stop_requested || reap(&d, 0) < nup ||
            cli_now_ns() - t0 > (uint64_t)DEMO_START_MS * 1000000u)
            break;
        pump(&d, 100);
    }
    for (size_t i = nup; i < d.nch && !cli_stop_requested; i++)
        if (spawn(&d, &d.ch[i]))
            goto stop;

    t0 = cli_now_ns();
    uint64_t next = t0 + 1000000000u;
    snap prev;
    take_snap(&d, &prev);
    while (!cli_stop_requested) {
        uint64_t now = cli_now_ns();
        secs = (double)(now - t0) / 1e9;
        if (duration > 0 && secs >= duration)
            break;
        if (reap(&d, 0) < d.nch) {
            printf("a node exited on its own: stopping\n");
            break;
        }
        /* Half-way (or after 20 s without --duration): a new version of
         * the edge's cleaner, signed, deployed into the running edge. */
        if (d.trust[0] && d.dep_state == 0 &&
            secs >= (duration > 0 ? duration / 2 : 20.0)) {
            printf("[%5.0fs] live update: isoflow deploy --layer edge --stage "
                   "clean cleaner_v2.wasm (signed; swapped between two "
                   "messages)\n", secs);
            fflush(stdout);
            if (start_deploy(&d))
                d.dep_state = 2;
        }
        check_deploy(&d, 0);
        if (now >= next) {
            snap s;
            double p50, p99;
            take_snap(&d, &s);
            if (s.connected > peak)
                peak = s.connected;
            quantiles(d.lat_us, d.lat_mark, d.nlat, &p50, &p99);
            d.lat_mark = d.nlat;
            printf("[%5.0fs] devices %u/%u | msg/s device->edge %llu, "
                   "edge->cloud %llu, cloud in %llu | e2e p50 %.1f ms "
                   "p99 %.1f ms | actuations %llu | errors %llu\n",
                   secs, s.connected, (unsigned)ndev,
                   (unsigned long long)(s.dev_out - prev.dev_out),
                   (unsigned long long)(s.edge_out - prev.edge_out),
                   (unsigned long long)(s.cloud_in - prev.cloud_in), p50,
                   p99, (unsigned long long)s.act,
                   (unsigned long long)s.err);
            fflush(stdout);
            prev = s;
            next += 1000000000u;
        }
        uint64_t wait_ns = next > now ? next - now : 0;
        pump(&d, (int)(wait_ns / 1000000u) + 1);
    }
    secs = (double)(cli_now_ns() - t0) / 1e9;

stop:
    /* A deploy still watching its new version: give it 5 s to report,
     * then interrupt it (not a failure of the update). */
    for (int i = 0; i < 50 && d.dep_state == 1; i++) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
        check_deploy(&d, 0);
    }
    int dep_cut = d.dep_state == 1;
    if (dep_cut) {
        kill(d.dep_pid, SIGTERM);
        check_deploy(&d, 1);
    }
    printf("stopping: devices, edge, cloud (SIGTERM; SIGKILL after %d s)\n",
           DEMO_STOP_MS / 1000);
    fflush(stdout);
    stop_layer(&d, L_DEVICE);
    stop_layer(&d, L_EDGE);
    stop_layer(&d, L_CLOUD);
    if (d.pgid)
        kill(-d.pgid, SIGKILL); /* nothing should be left; be sure */
    pump(&d, 0);
    {
        int problems = summary(&d, secs, ndev, peak);
        if (dep_cut) {
            printf("  live update: interrupted by the stop\n");
        } else if (d.dep_state == 2 && !(WIFEXITED(d.dep_status) &&
                                         WEXITSTATUS(d.dep_status) == 0)) {
            printf("  live update: FAILED (log/deploy.log)\n");
            problems++;
        } else if (d.dep_state == 2) {
            printf("  live update: cleaner v2 deployed to the running edge\n");
        }
        if (problems == 0) {
            printf("demo: OK (every node stopped cleanly)\n");
            rc = CLI_EXIT_OK;
        } else {
            printf("demo: FAILED (%d node problems; logs in %s/log)\n",
                   problems, d.dir);
        }
    }
out:
    for (size_t i = 0; i < d.nch; i++)
        if (d.ch[i].fd >= 0)
            close(d.ch[i].fd);
    if (d.ino >= 0)
        close(d.ino);
    if (d.avg_fd >= 0)
        close(d.avg_fd);
    if (temp && rc == CLI_EXIT_OK)
        remove_tree(d.dir);
    else if (temp)
        printf("run directory kept: %s\n", d.dir);
    free(d.ch);
    free(d.lat_us);
    return rc;
}
