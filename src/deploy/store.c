/*
 * store.c - the per-node version store: content-addressed modules
 * (store/<sha256>.wasm), the version index (versions.log), an append-only
 * history per stage (history/<stage>.log) and the active version per stage
 * (active/<stage>, replaced atomically).  Formats: docs/DEPLOY.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deploy_int.h"
#include "platform.h"

#define LINE_MAX_BYTES 512      /* longest index or history line */
#define REASON_MAX 200          /* reason bytes kept per history line */
#define MAX_VERSIONS 1000000u   /* versions one store may index */
#define INDEX_MAX ((size_t)MAX_VERSIONS * 160)

struct dp_store {
    char dir[DP__PATH_CAP / 2];
    size_t max_module;
    dp_version_info *v;   /* v[i].version == i + 1 */
    size_t n, cap;
    char err[512];
    int defer_sync;       /* dp_store_defer_syncs */
    int sync_pending;     /* a commit's syncs are still to be done */
    char sync_file[DP__PATH_CAP]; /* its module file, synced first */
};

static const char *const outcome_names[] = {NULL, "active", "rolled-back",
                                            "rejected", "failed-init"};

const char *dp_outcome_name(int outcome)
{
    if (outcome < DP_ACTIVE || outcome > DP_FAILED_INIT)
        return "?";
    return outcome_names[outcome];
}

int dp_outcome_parse(const char *name)
{
    if (name == NULL)
        return 0;
    for (int o = DP_ACTIVE; o <= DP_FAILED_INIT; o++)
        if (strcmp(outcome_names[o], name) == 0)
            return o;
    return 0;
}

const char *dp_store_errmsg(const dp_store *s)
{
    return s ? s->err : "no store";
}

/* dir/a[/b] into out.  0, or -1 (with the store's error) when too long. */
static int path_of(dp_store *s, char *out, size_t cap, const char *a,
                   const char *b, const char *suffix)
{
    int n = snprintf(out, cap, "%s/%s%s%s%s", s->dir, a, b ? "/" : "",
                     b ? b : "", suffix ? suffix : "");
    if (n < 0 || (size_t)n >= cap) {
        dp__errf(s->err, sizeof s->err, "path too long under '%s'", s->dir);
        return -1;
    }
    return 0;
}

/* Splits line at tabs into at most max fields; returns the count. */
static size_t split(char *line, char **f, size_t max)
{
    size_t n = 0;
    f[n++] = line;
    for (char *p = line; *p; p++)
        if (*p == '\t') {
            *p = '\0';
            if (n == max)
                return max + 1;
            f[n++] = p + 1;
        }
    return n;
}

/* A decimal field (digits only, no overflow).  1 or 0. */
static int num(const char *s, uint64_t *out)
{
    uint64_t x = 0;
    if (*s == '\0' || strlen(s) > 20)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return 0;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *out = x;
    return 1;
}

/* "-" or exactly `want` lower-case hex digits into out ("" for "-"). */
static int hexfield(const char *s, size_t want, char *out)
{
    if (strcmp(s, "-") == 0) {
        out[0] = '\0';
        return 1;
    }
    if (strlen(s) != want)
        return 0;
    for (size_t i = 0; i < want; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    memcpy(out, s, want + 1);
    return 1;
}

/* Cuts a torn last line (no LF: a crash during an append) off the file at
 * path so the next append starts on a line of its own.  0 or -1. */
static int repair_tail(const char *path)
{
    struct stat st;
    char c;
    int fd = open(path, O_RDWR);
    off_t end;
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    end = st.st_size;
    while (end > 0) {
        if (pread(fd, &c, 1, end - 1) != 1) {
            close(fd);
            return -1;
        }
        if (c == '\n')
            break;
        end--;
    }
    if (end != st.st_size && (ftruncate(fd, end) != 0 || fsync(fd) != 0)) {
        close(fd);
        return -1;
    }
    return close(fd);
}

/* Appends one line durably (O_APPEND, fsync; with nosync the fsync is
 * left to dp_store_sync).  DP_OK or DP_EIO. */
static dp_status append_line_x(dp_store *s, const char *path,
                               const char *line, size_t len, int nosync)
{
    size_t off = 0;
    int fd;
    if (repair_tail(path) != 0)
        goto fail;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0)
        goto fail;
    while (off < len) {
        ssize_t w = write(fd, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            goto fail;
        }
        off += (size_t)w;
    }
    if (!nosync && (atomic_fetch_add(&dp__fsyncs, 1), fsync(fd) != 0)) {
        close(fd);
        goto fail;
    }
    if (close(fd) != 0)
        goto fail;
    return DP_OK;
fail:
    dp__errf(s->err, sizeof s->err, "cannot append to '%s': %s", path,
             errno ? strerror(errno) : "short write");
    return DP_EIO;
}

static dp_status append_line(dp_store *s, const char *path, const char *line,
                             size_t len)
{
    return append_line_x(s, path, line, len, 0);
}

void dp_store_defer_syncs(dp_store *s, int on)
{
    if (s)
        s->defer_sync = on != 0;
}

dp_status dp_store_sync(dp_store *s)
{
    char path[DP__PATH_CAP];
    if (s == NULL)
        return DP_EARG;
    if (!s->sync_pending)
        return DP_OK;
    /* The module file, the directory it was renamed into, then
     * versions.log: the line naming a version is synced last. */
    if (s->sync_file[0] && dp__sync(s->sync_file, 0, s->err,
                                    sizeof s->err) != DP_OK)
        return DP_EIO;
    s->sync_file[0] = '\0';
    if (path_of(s, path, sizeof path, "store", NULL, NULL) != 0 ||
        dp__sync(path, 1, s->err, sizeof s->err) != DP_OK ||
        path_of(s, path, sizeof path, "versions.log", NULL, NULL) != 0 ||
        dp__sync(path, 0, s->err, sizeof s->err) != DP_OK)
        return DP_EIO;
    s->sync_pending = 0;
    return DP_OK;
}

/* Loads versions.log into s->v (after cutting a torn last line). */
static dp_status load_index(dp_store *s)
{
    char path[DP__PATH_CAP];
    uint8_t *data;
    size_t len;
    dp_status rc;
    char *line;

    if (path_of(s, path, sizeof path, "versions.log", NULL, NULL) != 0)
        return DP_EARG;
    if (repair_tail(path) != 0) {
        dp__errf(s->err, sizeof s->err, "cannot repair '%s': %s", path,
                 strerror(errno));
        return DP_EIO;
    }
    rc = dp__read_file(path, INDEX_MAX, &data, &len, s->err, sizeof s->err);
    if (rc == DP_ENOENT)
        return DP_OK;
    if (rc != DP_OK)
        return rc;
    data[len] = '\0'; /* dp__read_file leaves room for it */
    line = (char *)data;
    for (unsigned ln = 1; *line; ln++) {
        char *nl = strchr(line, '\n'), *f[8];
        dp_version_info vi;
        uint64_t v, size, t, sv;
        memset(&vi, 0, sizeof vi);
        *nl = '\0'; /* repair_tail: every line ends in LF */
        if (strlen(line) > LINE_MAX_BYTES || split(line, f, 7) != 7 ||
            !num(f[0], &v) || v != s->n + 1 ||
            !hexfield(f[1], DP_SHA256_HEX, vi.sha256) || vi.sha256[0] == 0 ||
            !num(f[2], &size) || !hexfield(f[3], DP_KEY_ID_HEX, vi.key_id) ||
            !num(f[4], &t) ||
            (strcmp(f[5], "-") != 0 && !dp_name_ok(f[5])) ||
            !num(f[6], &sv) || t > INT64_MAX) {
            dp__errf(s->err, sizeof s->err, "'%s' line %u is malformed",
                     path, ln);
            free(data);
            return DP_ECORRUPT;
        }
        if (s->n == s->cap) {
            size_t nc = s->cap ? s->cap * 2 : 16;
            dp_version_info *nv;
            if (nc > MAX_VERSIONS)
                nc = MAX_VERSIONS;
            nv = s->n < MAX_VERSIONS ? realloc(s->v, nc * sizeof *nv) : NULL;
            if (nv == NULL) {
                dp__errf(s->err, sizeof s->err, "out of memory loading '%s'",
                         path);
                free(data);
                return DP_ENOMEM;
            }
            s->v = nv;
            s->cap = nc;
        }
        vi.version = v;
        vi.size = size;
        vi.time = (int64_t)t;
        if (strcmp(f[5], "-") != 0)
            snprintf(vi.signed_stage, sizeof vi.signed_stage, "%s", f[5]);
        vi.signed_version = sv;
        s->v[s->n++] = vi;
        line = nl + 1;
    }
    free(data);
    return DP_OK;
}

dp_status dp_store_open(const char *dir, size_t max_module, dp_store **out,
                        char *err, size_t errlen)
{
    static const char *const subdirs[] = {"store", "history", "active"};
    dp_store *s;
    dp_status rc;

    if (out == NULL || dir == NULL || dir[0] == '\0') {
        dp__errf(err, errlen, "dp_store_open: NULL argument");
        return DP_EARG;
    }
    *out = NULL;
    if (strlen(dir) >= sizeof s->dir) {
        dp__errf(err, errlen, "store directory path too long");
        return DP_EARG;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        dp__errf(err, errlen, "out of memory");
        return DP_ENOMEM;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->max_module = max_module ? max_module : DP_DEFAULT_MAX_MODULE;
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        char p[DP__PATH_CAP];
        if (path_of(s, p, sizeof p, subdirs[i], NULL, NULL) != 0) {
            rc = DP_EARG;
            goto fail;
        }
        if (pl_mkdirs(p) != 0) {
            dp__errf(s->err, sizeof s->err, "cannot create '%s': %s", p,
                     strerror(errno));
            rc = DP_EIO;
            goto fail;
        }
    }
    rc = load_index(s);
    if (rc != DP_OK)
        goto fail;
    *out = s;
    return DP_OK;
fail:
    dp__errf(err, errlen, "%s", s->err);
    dp_store_close(s);
    return rc;
}

void dp_store_close(dp_store *s)
{
    if (s == NULL)
        return;
    (void)dp_store_sync(s);
    free(s->v);
    free(s);
}

/* The version with this hash, or NULL. */
static const dp_version_info *by_sha(const dp_store *s, const char *sha)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i].sha256, sha) == 0)
            return &s->v[i];
    return NULL;
}

struct dp_staged {
    char sha[DP_SHA256_HEX + 1];
    size_t len;
    uint64_t dup;             /* the version already holding these bytes */
    char path[DP__PATH_CAP];  /* the module file (written as path.tmp) */
};

dp_status dp_store_stage(dp_store *s, const uint8_t *module, size_t len,
                         dp_staged **out)
{
    const dp_version_info *old;
    dp_staged *st;
    dp_status rc;

    if (s == NULL || out == NULL || (module == NULL && len > 0)) {
        if (s)
            dp__errf(s->err, sizeof s->err, "dp_store_stage: NULL argument");
        return DP_EARG;
    }
    *out = NULL;
    if (len > s->max_module) {
        dp__errf(s->err, sizeof s->err,
                 "module is %zu bytes, more than the limit %zu", len,
                 s->max_module);
        return DP_ETOOBIG;
    }
    st = calloc(1, sizeof *st);
    if (st == NULL) {
        dp__errf(s->err, sizeof s->err, "out of memory");
        return DP_ENOMEM;
    }
    st->len = len;
    if (dp_sha256_hex(module, len, st->sha) != DP_OK) {
        dp__errf(s->err, sizeof s->err, "SHA-256 failed");
        free(st);
        return DP_ECRYPTO;
    }
    if ((old = by_sha(s, st->sha)) != NULL) {
        st->dup = old->version;
        *out = st;
        return DP_OK;
    }
    if (path_of(s, st->path, sizeof st->path, "store", st->sha, ".wasm") !=
        0) {
        free(st);
        return DP_EARG;
    }
    /* Deferred syncs: the file is synced by dp_store_sync too. */
    rc = dp__write_tmp_sync(st->path, module, len, 0644, !s->defer_sync,
                            s->err, sizeof s->err);
    if (rc != DP_OK) {
        free(st);
        return rc;
    }
    *out = st;
    return DP_OK;
}

void dp_store_abort(dp_store *s, dp_staged *st)
{
    char tmp[DP__PATH_CAP + 8];
    (void)s;
    if (st == NULL)
        return;
    if (!st->dup && snprintf(tmp, sizeof tmp, "%s.tmp", st->path) <
                        (int)sizeof tmp)
        unlink(tmp);
    free(st);
}

dp_status dp_store_commit(dp_store *s, dp_staged *st, const dp_sig_info *sig,
                          uint64_t *version)
{
    char path[DP__PATH_CAP], line[LINE_MAX_BYTES];
    dp_version_info vi;
    dp_status rc;
    int n;

    if (s == NULL || st == NULL || version == NULL) {
        if (s)
            dp__errf(s->err, sizeof s->err, "dp_store_commit: NULL argument");
        dp_store_abort(s, st);
        return DP_EARG;
    }
    *version = 0;
    if (sig != NULL &&
        (strcmp(sig->sha256, st->sha) != 0 || sig->size != st->len)) {
        dp__errf(s->err, sizeof s->err,
                 "the signature is for another module (sha256 %s)",
                 sig->sha256);
        dp_store_abort(s, st);
        return DP_EARG;
    }
    if (st->dup) {
        *version = st->dup;
        dp_store_abort(s, st);
        return DP_OK;
    }
    rc = DP_ETOOBIG;
    if (s->n >= MAX_VERSIONS) {
        dp__errf(s->err, sizeof s->err, "the store holds %u versions already",
                 MAX_VERSIONS);
        goto fail;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 16;
        dp_version_info *nv = realloc(s->v, nc * sizeof *nv);
        rc = DP_ENOMEM;
        if (nv == NULL) {
            dp__errf(s->err, sizeof s->err, "out of memory");
            goto fail;
        }
        s->v = nv;
        s->cap = nc;
    }
    if (dp_store_sync(s) != DP_OK) {
        dp_store_abort(s, st);
        return DP_EIO;
    }
    rc = dp__commit_tmp_sync(st->path, !s->defer_sync, s->err,
                             sizeof s->err);
    if (rc != DP_OK) {
        free(st); /* the tmp file is gone, or left as a crash leaves it */
        return rc;
    }
    if (s->defer_sync)
        memcpy(s->sync_file, st->path, sizeof s->sync_file);
    memset(&vi, 0, sizeof vi);
    vi.version = s->n + 1;
    memcpy(vi.sha256, st->sha, sizeof st->sha);
    vi.size = st->len;
    vi.time = (int64_t)time(NULL);
    if (sig != NULL) {
        snprintf(vi.key_id, sizeof vi.key_id, "%s", sig->key_id);
        snprintf(vi.signed_stage, sizeof vi.signed_stage, "%s", sig->stage);
        vi.signed_version = sig->version;
    }
    free(st);
    n = snprintf(line, sizeof line, "%llu\t%s\t%llu\t%s\t%lld\t%s\t%llu\n",
                 (unsigned long long)vi.version, vi.sha256,
                 (unsigned long long)vi.size,
                 vi.key_id[0] ? vi.key_id : "-", (long long)vi.time,
                 vi.signed_stage[0] ? vi.signed_stage : "-",
                 (unsigned long long)vi.signed_version);
    if (path_of(s, path, sizeof path, "versions.log", NULL, NULL) != 0)
        return DP_EARG;
    rc = append_line_x(s, path, line, (size_t)n, s->defer_sync);
    if (rc != DP_OK)
        return rc;
    if (s->defer_sync)
        s->sync_pending = 1;
    s->v[s->n++] = vi;
    *version = vi.version;
    return DP_OK;
fail:
    dp_store_abort(s, st);
    return rc;
}

dp_status dp_store_put(dp_store *s, const uint8_t *module, size_t len,
                       const dp_sig_info *sig, uint64_t *version)
{
    dp_staged *st = NULL;
    dp_status rc;
    if (s == NULL || version == NULL || (module == NULL && len > 0)) {
        if (s)
            dp__errf(s->err, sizeof s->err, "dp_store_put: NULL argument");
        return DP_EARG;
    }
    *version = 0;
    rc = dp_store_stage(s, module, len, &st);
    if (rc != DP_OK)
        return rc;
    return dp_store_commit(s, st, sig, version);
}

dp_status dp_store_version(dp_store *s, uint64_t version,
                           dp_version_info *info)
{
    if (s == NULL || info == NULL)
        return DP_EARG;
    if (version == 0 || version > s->n) {
        dp__errf(s->err, sizeof s->err, "no version %llu in the store",
                 (unsigned long long)version);
        return DP_ENOENT;
    }
    *info = s->v[version - 1];
    return DP_OK;
}

dp_status dp_store_read(dp_store *s, uint64_t version, uint8_t **data,
                        size_t *len)
{
    dp_version_info vi;
    char path[DP__PATH_CAP], sha[DP_SHA256_HEX + 1];
    dp_status rc;

    if (data == NULL || len == NULL)
        return DP_EARG;
    *data = NULL;
    *len = 0;
    rc = dp_store_version(s, version, &vi);
    if (rc != DP_OK)
        return rc;
    if (path_of(s, path, sizeof path, "store", vi.sha256, ".wasm") != 0)
        return DP_EARG;
    rc = dp__read_file(path, s->max_module, data, len, s->err, sizeof s->err);
    if (rc == DP_ENOENT)
        rc = DP_ECORRUPT;
    if (rc != DP_OK)
        return rc;
    if (dp_sha256_hex(*data, *len, sha) != DP_OK ||
        strcmp(sha, vi.sha256) != 0) {
        dp__errf(s->err, sizeof s->err,
                 "'%s' does not match its SHA-256 (damaged on disk)", path);
        free(*data);
        *data = NULL;
        *len = 0;
        return DP_ECORRUPT;
    }
    return DP_OK;
}

/* Checks stage, setting the store's error.  1 when valid. */
static int stage_ok(dp_store *s, const char *stage)
{
    if (dp_name_ok(stage))
        return 1;
    dp__errf(s->err, sizeof s->err,
             "invalid stage name '%s' (1-%u characters of A-Z a-z 0-9 . _ -, "
             "starting with a letter or digit)",
             stage ? stage : "(null)", DP_MAX_NAME);
    return 0;
}

dp_status dp_store_record(dp_store *s, const char *stage, uint64_t version,
                          int outcome, const char *reason)
{
    char path[DP__PATH_CAP], line[LINE_MAX_BYTES], why[REASON_MAX + 1];
    const dp_version_info *vi = NULL;
    size_t k = 0;
    int n;

    if (s == NULL)
        return DP_EARG;
    if (!stage_ok(s, stage))
        return DP_EARG;
    if (dp_store_sync(s) != DP_OK) /* a deferred commit first */
        return DP_EIO;
    if (outcome < DP_ACTIVE || outcome > DP_FAILED_INIT) {
        dp__errf(s->err, sizeof s->err, "unknown outcome %d", outcome);
        return DP_EARG;
    }
    if (version != 0) {
        if (version > s->n) {
            dp__errf(s->err, sizeof s->err, "no version %llu in the store",
                     (unsigned long long)version);
            return DP_ENOENT;
        }
        vi = &s->v[version - 1];
    }
    for (const char *r = reason ? reason : ""; *r && k < REASON_MAX; r++) {
        unsigned char c = (unsigned char)*r;
        why[k++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    why[k] = '\0';
    n = snprintf(line, sizeof line, "%lld\t%llu\t%s\t%llu\t%s\t%s\t%s\n",
                 (long long)time(NULL), (unsigned long long)version,
                 vi ? vi->sha256 : "-",
                 (unsigned long long)(vi ? vi->size : 0),
                 vi && vi->key_id[0] ? vi->key_id : "-",
                 dp_outcome_name(outcome), why);
    if (n < 0 || (size_t)n >= sizeof line) {
        dp__errf(s->err, sizeof s->err, "history line too long");
        return DP_EARG;
    }
    if (path_of(s, path, sizeof path, "history", stage, ".log") != 0)
        return DP_EARG;
    return append_line(s, path, line, (size_t)n);
}

dp_status dp_store_activate(dp_store *s, const char *stage, uint64_t version)
{
    char path[DP__PATH_CAP], text[128];
    dp_status rc;
    int n;

    if (s == NULL)
        return DP_EARG;
    if (!stage_ok(s, stage))
        return DP_EARG;
    if (version == 0 || version > s->n) {
        dp__errf(s->err, sizeof s->err, "no version %llu in the store",
                 (unsigned long long)version);
        return DP_ENOENT;
    }
    /* A deferred commit is durable before its version can be active. */
    if (dp_store_sync(s) != DP_OK)
        return DP_EIO;
    n = snprintf(text, sizeof text, "%llu %s\n", (unsigned long long)version,
                 s->v[version - 1].sha256);
    if (path_of(s, path, sizeof path, "active", stage, NULL) != 0)
        return DP_EARG;
    rc = dp__write_atomic(path, text, (size_t)n, 0644, s->err, sizeof s->err);
    if (rc != DP_OK)
        return rc;
    return dp_store_record(s, stage, version, DP_ACTIVE, "activated");
}

dp_status dp_store_active(dp_store *s, const char *stage,
                          dp_version_info *info)
{
    char path[DP__PATH_CAP], sha[DP_SHA256_HEX + 1];
    uint8_t *data;
    size_t len;
    uint64_t v;
    dp_status rc;
    char *sp;

    if (s == NULL || info == NULL)
        return DP_EARG;
    if (!stage_ok(s, stage))
        return DP_EARG;
    if (path_of(s, path, sizeof path, "active", stage, NULL) != 0)
        return DP_EARG;
    rc = dp__read_file(path, 128, &data, &len, s->err, sizeof s->err);
    if (rc == DP_ENOENT) {
        dp__errf(s->err, sizeof s->err, "stage '%s' has no active version",
                 stage);
        return DP_ENOENT;
    }
    if (rc != DP_OK)
        return rc == DP_ETOOBIG ? DP_ECORRUPT : rc;
    data[len] = '\0';
    sp = strchr((char *)data, ' ');
    rc = DP_ECORRUPT;
    if (len > 0 && data[len - 1] == '\n' && sp != NULL) {
        *sp = '\0';
        data[len - 1] = '\0';
        if (num((char *)data, &v) && hexfield(sp + 1, DP_SHA256_HEX, sha) &&
            sha[0] != '\0' && v >= 1 && v <= s->n &&
            strcmp(s->v[v - 1].sha256, sha) == 0) {
            *info = s->v[v - 1];
            rc = DP_OK;
        }
    }
    if (rc != DP_OK)
        dp__errf(s->err, sizeof s->err, "'%s' is malformed or names an "
                 "unknown version", path);
    free(data);
    return rc;
}

dp_status dp_store_history(dp_store *s, const char *stage, dp_history_fn fn,
                           void *user)
{
    char path[DP__PATH_CAP], line[LINE_MAX_BYTES + 2];
    dp_status rc = DP_OK;
    unsigned ln = 0;
    FILE *f;

    if (s == NULL || fn == NULL)
        return DP_EARG;
    if (!stage_ok(s, stage))
        return DP_EARG;
    if (path_of(s, path, sizeof path, "history", stage, ".log") != 0)
        return DP_EARG;
    f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return DP_OK;
        dp__errf(s->err, sizeof s->err, "cannot read '%s': %s", path,
                 strerror(errno));
        return DP_EIO;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        size_t l = strlen(line);
        char *fl[8];
        dp_history_entry e;
        uint64_t t, v, size;
        ln++;
        if (l == 0 || line[l - 1] != '\n') {
            if (feof(f) && l <= LINE_MAX_BYTES)
                break; /* a torn last line */
            rc = DP_ECORRUPT;
        } else {
            line[l - 1] = '\0';
            memset(&e, 0, sizeof e);
            if (split(line, fl, 7) != 7 || !num(fl[0], &t) ||
                t > INT64_MAX || !num(fl[1], &v) ||
                !hexfield(fl[2], DP_SHA256_HEX, e.sha256) ||
                !num(fl[3], &size) ||
                !hexfield(fl[4], DP_KEY_ID_HEX, e.key_id) ||
                (e.outcome = dp_outcome_parse(fl[5])) == 0)
                rc = DP_ECORRUPT;
        }
        if (rc != DP_OK) {
            dp__errf(s->err, sizeof s->err, "'%s' line %u is malformed",
                     path, ln);
            break;
        }
        e.time = (int64_t)t;
        e.version = v;
        e.size = size;
        e.reason = fl[6];
        if (fn(user, &e) != 0)
            break;
    }
    if (rc == DP_OK && ferror(f)) {
        dp__errf(s->err, sizeof s->err, "cannot read '%s'", path);
        rc = DP_EIO;
    }
    fclose(f);
    return rc;
}
