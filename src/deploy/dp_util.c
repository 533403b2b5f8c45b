/*
 * dp_util.c - helpers shared by src/deploy/: status texts, name checks,
 * SHA-256, hex, error formatting and the file primitives (bounded read,
 * atomic replacement with fsync) the signature and store code build on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "deploy_int.h"
#include "platform.h"

int dp__crash_before_rename = 0;
atomic_ulong dp__fsyncs;

static const char *const status_msgs[] = {
#define DP__M(name, msg) msg,
    DP_STATUS_MAP(DP__M)
#undef DP__M
};

const char *dp_status_msg(dp_status s)
{
    if ((unsigned)s >= DP_STATUS_COUNT)
        return "?";
    return status_msgs[s];
}

int dp_name_ok(const char *name)
{
    return pl_name_ok(name, DP_MAX_NAME);
}

void dp__errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

const char *dp__ossl_reason(void)
{
    static _Thread_local char buf[256];
    unsigned long e = ERR_get_error();
    if (e == 0)
        return "unknown error";
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return buf;
}

void dp__hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

dp_status dp_sha256_hex(const uint8_t *data, size_t len,
                        char hex[DP_SHA256_HEX + 1])
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    static const uint8_t empty[1] = {0};
    if (hex == NULL)
        return DP_EARG;
    if (EVP_Digest(data ? data : empty, data ? len : 0, md, &mdlen,
                   EVP_sha256(), NULL) != 1 ||
        mdlen != 32) {
        ERR_clear_error();
        return DP_ECRYPTO;
    }
    dp__hex(md, 32, hex);
    return DP_OK;
}


dp_status dp__read_file(const char *path, size_t max, uint8_t **data,
                        size_t *len, char *err, size_t errlen)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t n = 0;
    dp_status rc = DP_EIO;
    int fd = open(path, O_RDONLY);

    *data = NULL;
    *len = 0;
    if (fd < 0) {
        dp__errf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
        return errno == ENOENT ? DP_ENOENT : DP_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dp__errf(err, errlen, "cannot read '%s': not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > (uint64_t)max) {
        dp__errf(err, errlen, "'%s' is %llu bytes, more than the limit %zu",
                 path, (unsigned long long)st.st_size, max);
        rc = DP_ETOOBIG;
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        dp__errf(err, errlen, "out of memory reading '%s'", path);
        rc = DP_ENOMEM;
        goto out;
    }
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            dp__errf(err, errlen, "cannot read '%s': %s", path,
                     r < 0 ? strerror(errno) : "file shrank while reading");
            goto out;
        }
        n += (size_t)r;
    }
    *data = buf;
    *len = n;
    buf = NULL;
    rc = DP_OK;
out:
    free(buf);
    close(fd);
    return rc;
}

/* fsync of the file or directory at path (flags: O_DIRECTORY or 0). */
static int sync_path(const char *path, int flags)
{
    int fd = open(path, O_RDONLY | flags), rc;
    if (fd < 0)
        return -1;
    rc = fsync(fd);
    atomic_fetch_add(&dp__fsyncs, 1);
    close(fd);
    return rc;
}

/* fsync of the directory holding path (so a rename in it is durable). */
static int sync_parent(const char *path)
{
    char dir[DP__PATH_CAP];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    if (n == 0) {
        dir[0] = slash ? '/' : '.';
        dir[1] = '\0';
    } else {
        if (n >= sizeof dir)
            return -1;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return sync_path(dir, O_DIRECTORY);
}

dp_status dp__sync(const char *path, int dir, char *err, size_t errlen)
{
    if (sync_path(path, dir ? O_DIRECTORY : 0) != 0) {
        dp__errf(err, errlen, "cannot sync '%s': %s", path, strerror(errno));
        return DP_EIO;
    }
    return DP_OK;
}

dp_status dp__write_tmp(const char *path, const void *data, size_t len,
                        unsigned mode, char *err, size_t errlen)
{
    return dp__write_tmp_sync(path, data, len, mode, 1, err, errlen);
}

dp_status dp__write_tmp_sync(const char *path, const void *data, size_t len,
                             unsigned mode, int sync, char *err,
                             size_t errlen)
{
    char tmp[DP__PATH_CAP];
    const uint8_t *p = data;
    size_t off = 0;
    int fd, n = snprintf(tmp, sizeof tmp, "%s.tmp", path);

    if (n < 0 || (size_t)n >= sizeof tmp) {
        dp__errf(err, errlen, "path too long: '%s'", path);
        return DP_EARG;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)mode);
    if (fd < 0) {
        dp__errf(err, errlen, "cannot create '%s': %s", tmp, strerror(errno));
        return DP_EIO;
    }
    if (fchmod(fd, (mode_t)mode) != 0)
        goto fail;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto fail;
        off += (size_t)w;
    }
    if (sync && (atomic_fetch_add(&dp__fsyncs, 1), fsync(fd) != 0))
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    return DP_OK;
fail:
    dp__errf(err, errlen, "cannot write '%s': %s", tmp,
             errno ? strerror(errno) : "short write");
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return DP_EIO;
}

dp_status dp__commit_tmp(const char *path, char *err, size_t errlen)
{
    return dp__commit_tmp_sync(path, 1, err, errlen);
}

dp_status dp__commit_tmp_sync(const char *path, int sync, char *err,
                              size_t errlen)
{
    char tmp[DP__PATH_CAP];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        dp__errf(err, errlen, "path too long: '%s'", path);
        return DP_EARG;
    }
    if (dp__crash_before_rename > 0) {
        /* Leave the temporary file behind, as a crash here would. */
        dp__crash_before_rename--;
        dp__errf(err, errlen, "simulated crash before renaming '%s'", tmp);
        return DP_EIO;
    }
    if (rename(tmp, path) != 0) {
        dp__errf(err, errlen, "cannot write '%s': %s", tmp, strerror(errno));
        unlink(tmp);
        return DP_EIO;
    }
    if (sync && sync_parent(path) != 0) {
        dp__errf(err, errlen, "cannot sync the directory of '%s': %s", path,
                 strerror(errno));
        return DP_EIO;
    }
    return DP_OK;
}

dp_status dp__write_atomic(const char *path, const void *data, size_t len,
                           unsigned mode, char *err, size_t errlen)
{
    dp_status rc = dp__write_tmp(path, data, len, mode, err, errlen);
    return rc == DP_OK ? dp__commit_tmp(path, err, errlen) : rc;
}
