/*
 * wasi.h - WASI preview1 (wasi_snapshot_preview1) for isoflow's engine.
 *
 * A WASI context holds what a guest program may see of its host: its
 * arguments and environment, three standard streams, and the directories the
 * host granted explicitly.  Nothing else of the file system is reachable.
 * The context resolves a module's `wasi_snapshot_preview1` imports into host
 * functions; calls that are not implemented answer ENOSYS to the guest.
 *
 * This is the only part of src/wasm/ that talks to the operating system
 * (POSIX).  Build without wasi.c to get an engine with no OS dependency.
 */
#ifndef ISOFLOW_WASI_H
#define ISOFLOW_WASI_H

#include "wasm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct iw_wasi iw_wasi;

/* A directory granted to the guest: host path, visible to the guest as
 * guest_path (e.g. "/data" or "."). */
typedef struct iw_wasi_dir {
    const char *host_path;
    const char *guest_path;
} iw_wasi_dir;

typedef struct iw_wasi_config {
    int argc;                 /* guest argv (argv[0] is the program name) */
    const char *const *argv;  /* copied */
    int envc;
    const char *const *envp;  /* "KEY=VALUE" strings, copied */
    int stdin_fd;             /* host descriptors for guest fds 0,1,2 */
    int stdout_fd;            /* (borrowed: never closed by the context) */
    int stderr_fd;
    int ndirs;
    const iw_wasi_dir *dirs;  /* copied; opened by iw_wasi_new */
} iw_wasi_config;

/* Fills *cfg with no arguments, no environment, stdio 0/1/2, no dirs. */
IW_API void iw_wasi_config_default(iw_wasi_config *cfg /* OUT */);

/* Creates a context; a granted directory that cannot be opened fails with
 * IW_ARG and a message.  Caller frees with iw_wasi_free() after the stores
 * using it are freed. */
IW_API iw_status iw_wasi_new(const iw_wasi_config *cfg, iw_wasi **out /* OUT */,
                             char *err, size_t errlen);
IW_API void iw_wasi_free(iw_wasi *w);

/* For every import of `m` from module "wasi_snapshot_preview1", creates a
 * host function in `s` and stores it in imports[i] (imports has
 * iw_module_import_count(m) entries; other entries are left untouched).
 * An implemented call whose declared type differs, or a non-function WASI
 * import, fails with IW_LINK.  Unknown WASI calls get a stub answering
 * ENOSYS (52). */
IW_API iw_status iw_wasi_link(iw_wasi *w, iw_store *s, const iw_module *m,
                              iw_extern *imports, char *err, size_t errlen);

/* 1 when `m` imports anything from wasi_snapshot_preview1. */
IW_API int iw_wasi_used(const iw_module *m);

/* Names of the calls that are implemented, NULL-terminated (static). */
IW_API const char *const *iw_wasi_implemented(void);

#ifdef __cplusplus
}
#endif
#endif /* ISOFLOW_WASI_H */
