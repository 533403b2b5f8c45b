/*
 * deploy_int.h - internals shared by the files of src/deploy/: error
 * formatting, file helpers (bounded reads, atomic replacement) and the test
 * hook that simulates a crash inside an atomic replacement.  Internal names
 * use the dp__ prefix.
 */
#ifndef ISOFLOW_DEPLOY_INT_H
#define ISOFLOW_DEPLOY_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "deploy.h"

#define DP__PATH_CAP 4096

/* vsnprintf into err (no-op when err is NULL or errlen 0). */
void dp__errf(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* OpenSSL's last error reason (static storage; "unknown error" if none);
 * clears the error queue. */
const char *dp__ossl_reason(void);

/* Lower-case hex of n bytes into out (2n+1 bytes with the NUL). */
void dp__hex(const uint8_t *b, size_t n, char *out);


/* Reads the whole file path (at most max bytes) into a malloc'ed buffer the
 * caller frees (never NULL on success, even for an empty file; one spare
 * byte after the data holds room for a NUL).  Returns
 * DP_OK, DP_ETOOBIG, DP_ENOENT (missing) or DP_EIO with the reason in err. */
dp_status dp__read_file(const char *path, size_t max, uint8_t **data,
                        size_t *len, char *err, size_t errlen);

/*
 * Replaces path atomically by data: writes path.tmp (mode), fsyncs it,
 * renames it over path and fsyncs the directory.  Returns DP_OK or DP_EIO
 * with the reason in err (the temporary file is removed on failure).
 */
dp_status dp__write_atomic(const char *path, const void *data, size_t len,
                           unsigned mode, char *err, size_t errlen);
/* dp__write_atomic in two steps: path.tmp written and synced; then the
 * rename over path and the directory's sync (the tmp file is removed when
 * the rename fails). */
dp_status dp__write_tmp(const char *path, const void *data, size_t len,
                        unsigned mode, char *err, size_t errlen);
/* dp__write_tmp, the file synced only when sync (else the caller syncs
 * it later with dp__sync). */
dp_status dp__write_tmp_sync(const char *path, const void *data, size_t len,
                             unsigned mode, int sync, char *err,
                             size_t errlen);
dp_status dp__commit_tmp(const char *path, char *err, size_t errlen);
/* dp__commit_tmp with the directory's sync only when sync (else the
 * caller syncs the directory later with dp__sync). */
dp_status dp__commit_tmp_sync(const char *path, int sync, char *err,
                              size_t errlen);
/* fsync of a file, or of a directory (dir nonzero).  DP_OK or DP_EIO. */
dp_status dp__sync(const char *path, int dir, char *err, size_t errlen);

/* Test hook: when nonzero, the next dp__write_atomic stops after the
 * temporary file is written and synced and before the rename (as a crash
 * would), returns DP_EIO "simulated crash" and decrements the counter. */
extern int dp__crash_before_rename;
/* Tests: fsync calls made by the store and the file helpers. */
extern atomic_ulong dp__fsyncs;

#endif /* ISOFLOW_DEPLOY_INT_H */
