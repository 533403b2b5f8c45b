/*
 * wasi.c - wasi_snapshot_preview1 host functions over POSIX.
 *
 * Guest file descriptors index a small table owned by the context: 0..2 are
 * the configured standard streams, then one entry per granted directory
 * (preopen), then files the guest opened.  Paths are resolved component by
 * component with openat(O_NOFOLLOW) below a granted directory: absolute
 * paths, ".." above the granted root and symbolic links are refused, so no
 * path can leave what the host granted.  Every pointer the guest passes is
 * bounds-checked against its linear memory; a bad one answers EFAULT.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE 1

#include "wasi.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "wasm_int.h"

/* WASI errno values (a subset). */
enum {
    W_ESUCCESS = 0, W_E2BIG = 1, W_EACCES = 2, W_EAGAIN = 6, W_EBADF = 8,
    W_EBUSY = 10, W_EDQUOT = 19, W_EEXIST = 20, W_EFAULT = 21, W_EFBIG = 22,
    W_EINTR = 27, W_EINVAL = 28, W_EIO = 29, W_EISDIR = 31, W_ELOOP = 32,
    W_EMFILE = 33, W_EMLINK = 34, W_ENAMETOOLONG = 37, W_ENFILE = 41,
    W_ENODEV = 43, W_ENOENT = 44, W_ENOMEM = 48, W_ENOSPC = 51,
    W_ENOSYS = 52, W_ENOTDIR = 54, W_ENOTEMPTY = 55, W_ENOTSUP = 58,
    W_ENOTTY = 59, W_ENXIO = 60, W_EOVERFLOW = 61, W_EPERM = 63,
    W_EPIPE = 64, W_EROFS = 69, W_ESPIPE = 70, W_EXDEV = 75,
    W_ENOTCAPABLE = 76
};

/* WASI file types. */
enum {
    W_FT_UNKNOWN = 0, W_FT_BLOCK = 1, W_FT_CHAR = 2, W_FT_DIR = 3,
    W_FT_REG = 4, W_FT_SYMLINK = 7
};

#define WASI_MAX_FDS 256
#define WASI_MAX_DEPTH 64
#define WASI_ALL_RIGHTS 0x1FFFFFFFull
#define WASI_RIGHT_FD_READ (1ull << 1)
#define WASI_RIGHT_FD_SEEK (1ull << 2)
#define WASI_RIGHT_FD_TELL (1ull << 5)
#define WASI_RIGHT_FD_WRITE (1ull << 6)

typedef struct wfd {
    int host;          /* host descriptor, -1 when the slot is free */
    int borrowed;      /* stdio: never closed */
    int preopen;       /* a granted directory */
    char *guest_path;  /* preopens only */
    DIR *dir;          /* fd_readdir stream, lazily opened */
    uint64_t dir_pos;  /* cookie of the next entry in dir */
} wfd;

struct iw_wasi {
    int argc, envc;
    char **argv, **envp;
    wfd fds[WASI_MAX_FDS];
};

static const char WASI_MODULE[] = "wasi_snapshot_preview1";

/* ------------------------------------------------------------------------ */
/* Guest memory access.                                                     */

typedef struct gmem {
    uint8_t *base;
    uint64_t size;
} gmem;

static gmem mem_of(iw_call *call) {
    gmem g = {NULL, 0};
    iw_memory *m = iw_call_memory(call);
    if (m) {
        g.base = iw_memory_data(m);
        g.size = iw_memory_size(m);
    }
    return g;
}

/* True when [ptr, ptr+len) lies inside guest memory (never when the
 * instance has no memory). */
static int in_bounds(const gmem *g, uint32_t ptr, uint64_t len) {
    return g->base != NULL && (uint64_t)ptr + len <= g->size;
}

static void put_u8(gmem *g, uint32_t p, uint8_t v) { g->base[p] = v; }
static void put_u16(gmem *g, uint32_t p, uint16_t v) {
    g->base[p] = (uint8_t)v;
    g->base[p + 1] = (uint8_t)(v >> 8);
}
static void put_u32(gmem *g, uint32_t p, uint32_t v) {
    for (int i = 0; i < 4; i++) g->base[p + i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(gmem *g, uint32_t p, uint64_t v) {
    for (int i = 0; i < 8; i++) g->base[p + i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const gmem *g, uint32_t p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)g->base[p + i] << (8 * i);
    return v;
}
static uint64_t get_u64(const gmem *g, uint32_t p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)g->base[p + i] << (8 * i);
    return v;
}

static int errno_to_wasi(int e) {
    switch (e) {
    case 0: return W_ESUCCESS;
    case E2BIG: return W_E2BIG;
    case EACCES: return W_EACCES;
    case EAGAIN: return W_EAGAIN;
    case EBADF: return W_EBADF;
    case EBUSY: return W_EBUSY;
    case EDQUOT: return W_EDQUOT;
    case EEXIST: return W_EEXIST;
    case EFAULT: return W_EFAULT;
    case EFBIG: return W_EFBIG;
    case EINTR: return W_EINTR;
    case EINVAL: return W_EINVAL;
    case EISDIR: return W_EISDIR;
    case ELOOP: return W_ELOOP;
    case EMFILE: return W_EMFILE;
    case EMLINK: return W_EMLINK;
    case ENAMETOOLONG: return W_ENAMETOOLONG;
    case ENFILE: return W_ENFILE;
    case ENODEV: return W_ENODEV;
    case ENOENT: return W_ENOENT;
    case ENOMEM: return W_ENOMEM;
    case ENOSPC: return W_ENOSPC;
    case ENOTDIR: return W_ENOTDIR;
    case ENOTEMPTY: return W_ENOTEMPTY;
    case ENOTSUP: return W_ENOTSUP;
    case ENOTTY: return W_ENOTTY;
    case ENXIO: return W_ENXIO;
    case EOVERFLOW: return W_EOVERFLOW;
    case EPERM: return W_EPERM;
    case EPIPE: return W_EPIPE;
    case EROFS: return W_EROFS;
    case ESPIPE: return W_ESPIPE;
    case EXDEV: return W_EXDEV;
    default: return W_EIO;
    }
}

static uint8_t filetype_of(mode_t m) {
    if (S_ISREG(m)) return W_FT_REG;
    if (S_ISDIR(m)) return W_FT_DIR;
    if (S_ISCHR(m)) return W_FT_CHAR;
    if (S_ISBLK(m)) return W_FT_BLOCK;
    if (S_ISLNK(m)) return W_FT_SYMLINK;
    return W_FT_UNKNOWN;
}

static wfd *get_fd(iw_wasi *w, uint32_t fd) {
    if (fd >= WASI_MAX_FDS || w->fds[fd].host < 0) return NULL;
    return &w->fds[fd];
}

/* ------------------------------------------------------------------------ */
/* Host function plumbing.                                                  */

#define A32(i) ((uint32_t)args[i].of.i32)
#define A64(i) ((uint64_t)args[i].of.i64)
#define RET(v) do { results[0].of.i32 = (int32_t)(v); return IW_OK; } while (0)
#define WASI_FN(name)                                                        \
    static iw_status name(iw_call *call, const iw_val *args, iw_val *results, \
                          void *user)
#define SETUP                                                                \
    iw_wasi *w = (iw_wasi *)user;                                            \
    gmem g = mem_of(call);                                                   \
    (void)w; (void)g; (void)args

/* Writes a list of strings as argv/environ do: pointers then bytes. */
static int32_t put_strings(gmem *g, char **list, int n, uint32_t ptrs,
                           uint32_t buf) {
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += strlen(list[i]) + 1;
    if (!in_bounds(g, ptrs, 4ull * (uint64_t)n) || !in_bounds(g, buf, total))
        return W_EFAULT;
    uint32_t at = buf;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(list[i]) + 1;
        put_u32(g, ptrs + 4u * (uint32_t)i, at);
        memcpy(g->base + at, list[i], len);
        at += (uint32_t)len;
    }
    return W_ESUCCESS;
}

static int32_t put_sizes(gmem *g, char **list, int n, uint32_t pcount,
                         uint32_t psize) {
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += strlen(list[i]) + 1;
    if (!in_bounds(g, pcount, 4) || !in_bounds(g, psize, 4)) return W_EFAULT;
    put_u32(g, pcount, (uint32_t)n);
    put_u32(g, psize, (uint32_t)total);
    return W_ESUCCESS;
}

WASI_FN(w_args_get) { SETUP; RET(put_strings(&g, w->argv, w->argc, A32(0), A32(1))); }
WASI_FN(w_args_sizes_get) { SETUP; RET(put_sizes(&g, w->argv, w->argc, A32(0), A32(1))); }
WASI_FN(w_environ_get) { SETUP; RET(put_strings(&g, w->envp, w->envc, A32(0), A32(1))); }
WASI_FN(w_environ_sizes_get) { SETUP; RET(put_sizes(&g, w->envp, w->envc, A32(0), A32(1))); }

static int clock_of(uint32_t id, clockid_t *out) {
    switch (id) {
    case 0: *out = CLOCK_REALTIME; return 1;
    case 1: *out = CLOCK_MONOTONIC; return 1;
    case 2: *out = CLOCK_PROCESS_CPUTIME_ID; return 1;
    case 3: *out = CLOCK_THREAD_CPUTIME_ID; return 1;
    default: return 0;
    }
}

WASI_FN(w_clock_res_get) {
    SETUP;
    clockid_t c;
    struct timespec ts;
    if (!clock_of(A32(0), &c)) RET(W_EINVAL);
    if (!in_bounds(&g, A32(1), 8)) RET(W_EFAULT);
    if (clock_getres(c, &ts) != 0) RET(errno_to_wasi(errno));
    put_u64(&g, A32(1), (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    RET(W_ESUCCESS);
}

WASI_FN(w_clock_time_get) {
    SETUP;
    clockid_t c;
    struct timespec ts;
    if (!clock_of(A32(0), &c)) RET(W_EINVAL);
    if (!in_bounds(&g, A32(2), 8)) RET(W_EFAULT);
    if (clock_gettime(c, &ts) != 0) RET(errno_to_wasi(errno));
    put_u64(&g, A32(2), (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    RET(W_ESUCCESS);
}

WASI_FN(w_random_get) {
    SETUP;
    uint32_t p = A32(0), n = A32(1);
    if (!in_bounds(&g, p, n)) RET(W_EFAULT);
    while (n > 0) {
        size_t chunk = n > 256 ? 256 : n;
        if (getentropy(g.base + p, chunk) != 0) RET(W_EIO);
        p += (uint32_t)chunk;
        n -= (uint32_t)chunk;
    }
    RET(W_ESUCCESS);
}

WASI_FN(w_sched_yield) { SETUP; sched_yield(); RET(W_ESUCCESS); }

WASI_FN(w_proc_exit) {
    (void)args; (void)results; (void)user;
    return iw_call_exit(call, (int)A32(0));
}

/* Scatter/gather I/O: copies the guest's iovec array into host iovecs
 * (at most 64 at a time, which POSIX allows to be short). */
static int32_t gather(gmem *g, uint32_t iovs, uint32_t n, struct iovec *out,
                      int *cnt) {
    if (n > 64) n = 64;
    if (!in_bounds(g, iovs, 8ull * n)) return W_EFAULT;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t buf = get_u32(g, iovs + 8 * i), len = get_u32(g, iovs + 8 * i + 4);
        if (!in_bounds(g, buf, len)) return W_EFAULT;
        out[i].iov_base = g->base + buf;
        out[i].iov_len = len;
    }
    *cnt = (int)n;
    return W_ESUCCESS;
}

static int32_t do_rw(iw_wasi *w, gmem *g, const iw_val *args, int write,
                     int positioned) {
    struct iovec iov[64];
    int cnt = 0;
    uint32_t fd = A32(0), iovs = A32(1), n = A32(2);
    uint32_t pout = positioned ? A32(4) : A32(3);
    wfd *f = get_fd(w, fd);
    if (!f) return W_EBADF;
    if (f->preopen) return W_EISDIR;
    int32_t e = gather(g, iovs, n, iov, &cnt);
    if (e) return e;
    if (!in_bounds(g, pout, 4)) return W_EFAULT;
    ssize_t r;
    if (positioned) {
        off_t off = (off_t)A64(3);
        r = write ? pwritev(f->host, iov, cnt, off) : preadv(f->host, iov, cnt, off);
    } else {
        r = write ? writev(f->host, iov, cnt) : readv(f->host, iov, cnt);
    }
    if (r < 0) return errno_to_wasi(errno);
    put_u32(g, pout, (uint32_t)r);
    return W_ESUCCESS;
}

WASI_FN(w_fd_write) { SETUP; RET(do_rw(w, &g, args, 1, 0)); }
WASI_FN(w_fd_read) { SETUP; RET(do_rw(w, &g, args, 0, 0)); }
WASI_FN(w_fd_pwrite) { SETUP; RET(do_rw(w, &g, args, 1, 1)); }
WASI_FN(w_fd_pread) { SETUP; RET(do_rw(w, &g, args, 0, 1)); }

static void close_slot(wfd *f) {
    if (f->dir) closedir(f->dir); /* closes its own dup of the descriptor */
    if (!f->borrowed && f->host >= 0) close(f->host);
    iw__free(f->guest_path);
    memset(f, 0, sizeof *f);
    f->host = -1;
}

WASI_FN(w_fd_close) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    if (!f) RET(W_EBADF);
    close_slot(f);
    RET(W_ESUCCESS);
}

WASI_FN(w_fd_fdstat_get) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    uint32_t p = A32(1);
    struct stat st;
    if (!f) RET(W_EBADF);
    if (!in_bounds(&g, p, 24)) RET(W_EFAULT);
    if (fstat(f->host, &st) != 0) RET(errno_to_wasi(errno));
    int fl = fcntl(f->host, F_GETFL);
    uint16_t flags = 0;
    if (fl >= 0 && (fl & O_APPEND)) flags |= 1;
    if (fl >= 0 && (fl & O_NONBLOCK)) flags |= 4;
    /* Streams (terminals, pipes, sockets) cannot seek: without fd_seek and
     * fd_tell rights a character device is a tty for wasi-libc's isatty(),
     * which makes the guest's stdout line-buffered on a terminal. */
    uint64_t rights = WASI_ALL_RIGHTS;
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISBLK(st.st_mode))
        rights &= ~(WASI_RIGHT_FD_SEEK | WASI_RIGHT_FD_TELL);
    memset(g.base + p, 0, 24);
    put_u8(&g, p, filetype_of(st.st_mode));
    put_u16(&g, p + 2, flags);
    put_u64(&g, p + 8, rights);
    put_u64(&g, p + 16, WASI_ALL_RIGHTS);
    RET(W_ESUCCESS);
}

WASI_FN(w_fd_fdstat_set_flags) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    if (!f) RET(W_EBADF);
    int fl = fcntl(f->host, F_GETFL);
    if (fl < 0) RET(errno_to_wasi(errno));
    fl &= ~(O_APPEND | O_NONBLOCK);
    if (A32(1) & 1) fl |= O_APPEND;
    if (A32(1) & 4) fl |= O_NONBLOCK;
    if (fcntl(f->host, F_SETFL, fl) != 0) RET(errno_to_wasi(errno));
    RET(W_ESUCCESS);
}

static void put_filestat(gmem *g, uint32_t p, const struct stat *st) {
    memset(g->base + p, 0, 64);
    put_u64(g, p, (uint64_t)st->st_dev);
    put_u64(g, p + 8, (uint64_t)st->st_ino);
    put_u8(g, p + 16, filetype_of(st->st_mode));
    put_u64(g, p + 24, (uint64_t)st->st_nlink);
    put_u64(g, p + 32, (uint64_t)st->st_size);
    put_u64(g, p + 40, (uint64_t)st->st_atim.tv_sec * 1000000000ull + (uint64_t)st->st_atim.tv_nsec);
    put_u64(g, p + 48, (uint64_t)st->st_mtim.tv_sec * 1000000000ull + (uint64_t)st->st_mtim.tv_nsec);
    put_u64(g, p + 56, (uint64_t)st->st_ctim.tv_sec * 1000000000ull + (uint64_t)st->st_ctim.tv_nsec);
}

WASI_FN(w_fd_filestat_get) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    struct stat st;
    if (!f) RET(W_EBADF);
    if (!in_bounds(&g, A32(1), 64)) RET(W_EFAULT);
    if (fstat(f->host, &st) != 0) RET(errno_to_wasi(errno));
    put_filestat(&g, A32(1), &st);
    RET(W_ESUCCESS);
}

WASI_FN(w_fd_filestat_set_size) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    if (!f) RET(W_EBADF);
    if (ftruncate(f->host, (off_t)A64(1)) != 0) RET(errno_to_wasi(errno));
    RET(W_ESUCCESS);
}

WASI_FN(w_fd_seek) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    int whence;
    if (!f) RET(W_EBADF);
    switch (A32(2)) {
    case 0: whence = SEEK_SET; break;
    case 1: whence = SEEK_CUR; break;
    case 2: whence = SEEK_END; break;
    default: RET(W_EINVAL);
    }
    if (!in_bounds(&g, A32(3), 8)) RET(W_EFAULT);
    off_t r = lseek(f->host, (off_t)(int64_t)A64(1), whence);
    if (r < 0) RET(errno_to_wasi(errno));
    put_u64(&g, A32(3), (uint64_t)r);
    RET(W_ESUCCESS);
}

WASI_FN(w_fd_tell) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    if (!f) RET(W_EBADF);
    if (!in_bounds(&g, A32(1), 8)) RET(W_EFAULT);
    off_t r = lseek(f->host, 0, SEEK_CUR);
    if (r < 0) RET(errno_to_wasi(errno));
    put_u64(&g, A32(1), (uint64_t)r);
    RET(W_ESUCCESS);
}

WASI_FN(w_fd_sync) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    if (!f) RET(W_EBADF);
    if (fsync(f->host) != 0) RET(errno_to_wasi(errno));
    RET(W_ESUCCESS);
}

WASI_FN(w_fd_prestat_get) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    if (!f || !f->preopen) RET(W_EBADF);
    if (!in_bounds(&g, A32(1), 8)) RET(W_EFAULT);
    put_u32(&g, A32(1), 0); /* tag: directory */
    put_u32(&g, A32(1) + 4, (uint32_t)strlen(f->guest_path));
    RET(W_ESUCCESS);
}

WASI_FN(w_fd_prestat_dir_name) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    if (!f || !f->preopen) RET(W_EBADF);
    size_t len = strlen(f->guest_path);
    if (A32(2) < len) RET(W_ENAMETOOLONG);
    if (!in_bounds(&g, A32(1), len)) RET(W_EFAULT);
    memcpy(g.base + A32(1), f->guest_path, len);
    RET(W_ESUCCESS);
}

/* ------------------------------------------------------------------------ */
/* Confined path resolution.                                                */

/* 1 when `name` in directory `dirfd` is a symbolic link (not followed). */
static int is_symlink_at(int dirfd, const char *name) {
    struct stat st;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISLNK(st.st_mode);
}

/* Maps the errno of an openat(O_NOFOLLOW) of `name` below `dirfd`: a
 * symbolic link (ELOOP, or ENOTDIR with O_DIRECTORY) is a sandbox refusal,
 * ENOTCAPABLE, so that every escape attempt reads the same to the guest. */
static int32_t open_errno(int dirfd, const char *name, int e) {
    if ((e == ELOOP || e == EMLINK || e == ENOTDIR) && is_symlink_at(dirfd, name))
        return W_ENOTCAPABLE;
    return errno_to_wasi(e);
}

/* Resolves `path` (guest bytes, not NUL-terminated) below directory `dirfd`
 * and opens the parent directory of its last component.  On success
 * *parent is a new descriptor the caller closes and `last` holds the final
 * component ("." when the path names the directory itself).  Absolute paths,
 * ".." above the start and symbolic links along the way are refused with
 * ENOTCAPABLE (the final component is the caller's: it must not follow a
 * link either). */
static int32_t resolve(int dirfd, const uint8_t *path, uint32_t len,
                       int *parent, char *last, size_t lastcap) {
    int stack[WASI_MAX_DEPTH];
    int depth = 0;
    char comp[256];
    uint32_t i = 0;
    int cur = dup(dirfd);
    if (cur < 0) return errno_to_wasi(errno);
    if (len == 0) { close(cur); return W_ENOENT; }
    if (path[0] == '/') { close(cur); return W_ENOTCAPABLE; }
    if (memchr(path, 0, len)) { close(cur); return W_EINVAL; }
    snprintf(last, lastcap, ".");
    while (i < len) {
        uint32_t start = i;
        while (i < len && path[i] != '/') i++;
        uint32_t clen = i - start;
        while (i < len && path[i] == '/') i++;
        if (clen == 0 || (clen == 1 && path[start] == '.')) {
            if (i >= len && clen == 1) snprintf(last, lastcap, ".");
            continue;
        }
        if (clen >= sizeof comp || clen >= lastcap) {
            goto fail_name;
        }
        memcpy(comp, path + start, clen);
        comp[clen] = 0;
        int is_last = (i >= len);
        if (is_last && strcmp(comp, "..") != 0) {
            memcpy(last, comp, clen + 1);
            break;
        }
        if (strcmp(comp, "..") == 0) {
            if (depth == 0) goto fail_cap;
            close(cur);
            cur = stack[--depth];
            snprintf(last, lastcap, ".");
            continue;
        }
        if (depth >= WASI_MAX_DEPTH) goto fail_name;
        int next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            int32_t e = open_errno(cur, comp, errno);
            while (depth > 0) close(stack[--depth]);
            close(cur);
            return e;
        }
        stack[depth++] = cur;
        cur = next;
        snprintf(last, lastcap, ".");
    }
    while (depth > 0) close(stack[--depth]);
    *parent = cur;
    return W_ESUCCESS;
fail_cap:
    while (depth > 0) close(stack[--depth]);
    close(cur);
    return W_ENOTCAPABLE;
fail_name:
    while (depth > 0) close(stack[--depth]);
    close(cur);
    return W_ENAMETOOLONG;
}

/* Common prologue of the path_* calls: checks the directory descriptor and
 * the path pointer, then resolves it. */
static int32_t path_prologue(iw_wasi *w, gmem *g, uint32_t fd, uint32_t ptr,
                             uint32_t len, int *parent, char *last,
                             size_t lastcap) {
    wfd *f = get_fd(w, fd);
    if (!f) return W_EBADF;
    if (!in_bounds(g, ptr, len)) return W_EFAULT;
    return resolve(f->host, g->base + ptr, len, parent, last, lastcap);
}

static int alloc_fd(iw_wasi *w) {
    for (int i = 3; i < WASI_MAX_FDS; i++)
        if (w->fds[i].host < 0) return i;
    return -1;
}

WASI_FN(w_path_open) {
    SETUP;
    int parent;
    char last[256];
    uint32_t oflags = A32(4), fdflags = A32(7), out = A32(8);
    uint64_t rights = A64(5);
    int32_t e = path_prologue(w, &g, A32(0), A32(2), A32(3), &parent, last, sizeof last);
    if (e) RET(e);
    if (!in_bounds(&g, out, 4)) { close(parent); RET(W_EFAULT); }
    int slot = alloc_fd(w);
    if (slot < 0) { close(parent); RET(W_EMFILE); }
    int fl = O_NOFOLLOW | O_CLOEXEC;
    int rd = (rights & WASI_RIGHT_FD_READ) != 0;
    int wr = (rights & WASI_RIGHT_FD_WRITE) != 0;
    if (oflags & 2) fl |= O_DIRECTORY;
    if (wr && (oflags & 2) == 0) fl |= rd ? O_RDWR : O_WRONLY;
    else fl |= O_RDONLY;
    if (oflags & 1) fl |= O_CREAT;
    if (oflags & 4) fl |= O_EXCL;
    if (oflags & 8) fl |= O_TRUNC;
    if (fdflags & 1) fl |= O_APPEND;
    if (fdflags & 4) fl |= O_NONBLOCK;
    int h = openat(parent, last, fl, 0644);
    int err = errno;
    if (h < 0 && err == EISDIR && (fl & O_ACCMODE) != O_RDONLY) {
        /* Directories open read-only (libc asks for write rights broadly). */
        fl = (fl & ~O_ACCMODE) | O_RDONLY;
        h = openat(parent, last, fl, 0644);
        err = errno;
    }
    int32_t werr = h < 0 ? open_errno(parent, last, err) : W_ESUCCESS;
    close(parent);
    if (h < 0) RET(werr);
    w->fds[slot].host = h;
    put_u32(&g, out, (uint32_t)slot);
    RET(W_ESUCCESS);
}

WASI_FN(w_path_filestat_get) {
    SETUP;
    int parent;
    char last[256];
    struct stat st;
    int32_t e = path_prologue(w, &g, A32(0), A32(2), A32(3), &parent, last, sizeof last);
    if (e) RET(e);
    if (!in_bounds(&g, A32(4), 64)) { close(parent); RET(W_EFAULT); }
    int r = fstatat(parent, last, &st, AT_SYMLINK_NOFOLLOW);
    int err = errno;
    close(parent);
    if (r != 0) RET(errno_to_wasi(err));
    put_filestat(&g, A32(4), &st);
    RET(W_ESUCCESS);
}

WASI_FN(w_path_create_directory) {
    SETUP;
    int parent;
    char last[256];
    int32_t e = path_prologue(w, &g, A32(0), A32(1), A32(2), &parent, last, sizeof last);
    if (e) RET(e);
    int r = mkdirat(parent, last, 0755);
    int err = errno;
    close(parent);
    RET(r == 0 ? W_ESUCCESS : errno_to_wasi(err));
}

static int32_t unlink_common(iw_wasi *w, gmem *g, const iw_val *args, int flags) {
    int parent;
    char last[256];
    int32_t e = path_prologue(w, g, A32(0), A32(1), A32(2), &parent, last, sizeof last);
    if (e) return e;
    if (strcmp(last, ".") == 0) { close(parent); return W_EINVAL; }
    int r = unlinkat(parent, last, flags);
    int err = errno;
    close(parent);
    return r == 0 ? W_ESUCCESS : errno_to_wasi(err);
}

WASI_FN(w_path_unlink_file) { SETUP; RET(unlink_common(w, &g, args, 0)); }
WASI_FN(w_path_remove_directory) { SETUP; RET(unlink_common(w, &g, args, AT_REMOVEDIR)); }

WASI_FN(w_path_rename) {
    SETUP;
    int p1, p2;
    char l1[256], l2[256];
    int32_t e = path_prologue(w, &g, A32(0), A32(1), A32(2), &p1, l1, sizeof l1);
    if (e) RET(e);
    e = path_prologue(w, &g, A32(3), A32(4), A32(5), &p2, l2, sizeof l2);
    if (e) { close(p1); RET(e); }
    int r = renameat(p1, l1, p2, l2);
    int err = errno;
    close(p1);
    close(p2);
    RET(r == 0 ? W_ESUCCESS : errno_to_wasi(err));
}

/* fd_readdir: dirent header is d_next u64, d_ino u64, d_namlen u32,
 * d_type u8 (24 bytes), followed by the name; entries may be cut at the end
 * of the buffer, as the WASI ABI allows. */
WASI_FN(w_fd_readdir) {
    SETUP;
    wfd *f = get_fd(w, A32(0));
    uint32_t buf = A32(1), len = A32(2), pout = A32(4);
    uint64_t cookie = A64(3);
    if (!f) RET(W_EBADF);
    if (!in_bounds(&g, buf, len) || !in_bounds(&g, pout, 4)) RET(W_EFAULT);
    if (!f->dir || cookie < f->dir_pos) {
        if (f->dir) closedir(f->dir);
        int d = dup(f->host);
        if (d < 0) RET(errno_to_wasi(errno));
        f->dir = fdopendir(d);
        if (!f->dir) { close(d); RET(errno_to_wasi(errno)); }
        rewinddir(f->dir);
        f->dir_pos = 0;
    }
    struct dirent *de;
    while (f->dir_pos < cookie && (de = readdir(f->dir)) != NULL) f->dir_pos++;
    uint32_t used = 0;
    while (used < len) {
        long pos = telldir(f->dir);
        de = readdir(f->dir);
        if (!de) break;
        uint8_t hdr[24];
        size_t nlen = strlen(de->d_name);
        uint8_t type = W_FT_UNKNOWN;
        if (de->d_type == DT_REG) type = W_FT_REG;
        else if (de->d_type == DT_DIR) type = W_FT_DIR;
        else if (de->d_type == DT_LNK) type = W_FT_SYMLINK;
        else if (de->d_type == DT_CHR) type = W_FT_CHAR;
        uint64_t next = f->dir_pos + 1, ino = (uint64_t)de->d_ino;
        for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)(next >> (8 * i));
        for (int i = 0; i < 8; i++) hdr[8 + i] = (uint8_t)(ino >> (8 * i));
        for (int i = 0; i < 4; i++) hdr[16 + i] = (uint8_t)((uint32_t)nlen >> (8 * i));
        hdr[20] = type;
        hdr[21] = hdr[22] = hdr[23] = 0;
        uint32_t room = len - used;
        uint32_t n = room < 24 ? room : 24;
        memcpy(g.base + buf + used, hdr, n);
        used += n;
        room = len - used;
        n = room < nlen ? room : (uint32_t)nlen;
        memcpy(g.base + buf + used, de->d_name, n);
        used += n;
        if (used >= len) {
            /* Cut short: let the next call resume at this entry. */
            seekdir(f->dir, pos);
            break;
        }
        f->dir_pos++;
    }
    put_u32(&g, pout, used);
    RET(W_ESUCCESS);
}

/* poll_oneoff: clock subscriptions sleep; fd subscriptions report ready
 * (stdio and files never block here). */
WASI_FN(w_poll_oneoff) {
    SETUP;
    uint32_t in = A32(0), out = A32(1), n = A32(2), pn = A32(3);
    if (n == 0) RET(W_EINVAL);
    if (!in_bounds(&g, in, 48ull * n) || !in_bounds(&g, out, 32ull * n) ||
        !in_bounds(&g, pn, 4))
        RET(W_EFAULT);
    uint64_t min_wait = UINT64_MAX;
    uint32_t nev = 0;
    int have_fd = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = in + 48 * i;
        if (g.base[s + 8] != 0) have_fd = 1;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = in + 48 * i;
        uint8_t tag = g.base[s + 8];
        if (tag == 0) {
            uint32_t id = get_u32(&g, s + 16);
            uint64_t timeout = get_u64(&g, s + 24);
            uint16_t flags = (uint16_t)(g.base[s + 40] | (g.base[s + 41] << 8));
            clockid_t c;
            if (!clock_of(id, &c)) RET(W_EINVAL);
            if (flags & 1) { /* absolute */
                struct timespec now;
                clock_gettime(c, &now);
                uint64_t t = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
                timeout = timeout > t ? timeout - t : 0;
            }
            if (timeout < min_wait) min_wait = timeout;
        }
    }
    if (!have_fd && min_wait != UINT64_MAX && min_wait > 0) {
        struct timespec ts = {(time_t)(min_wait / 1000000000ull),
                              (long)(min_wait % 1000000000ull)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = in + 48 * i;
        uint8_t tag = g.base[s + 8];
        if (tag == 0 && have_fd) continue; /* fds are ready at once */
        uint32_t e = out + 32 * nev;
        memset(g.base + e, 0, 32);
        put_u64(&g, e, get_u64(&g, s));
        put_u8(&g, e + 10, tag);
        if (tag != 0) {
            wfd *f = get_fd(w, get_u32(&g, s + 16));
            put_u16(&g, e + 8, f ? W_ESUCCESS : W_EBADF);
        }
        nev++;
    }
    put_u32(&g, pn, nev);
    RET(W_ESUCCESS);
}

/* Stub for calls we do not implement: answers ENOSYS when the declared
 * result is one i32, nothing otherwise. */
static iw_status w_enosys(iw_call *call, const iw_val *args, iw_val *results,
                          void *user) {
    (void)call; (void)args;
    if ((uintptr_t)user == 1) results[0].of.i32 = W_ENOSYS;
    return IW_OK;
}

/* ------------------------------------------------------------------------ */
/* The call table.                                                          */

/* One list of the implemented calls: name, parameter and result types
 * ('i' i32, 'I' i64) and host function.  It yields both the link table and
 * the static name list of iw_wasi_implemented(). */
#define WASI_CALLS(X)                                                        \
    X(args_get, "ii", "i", w_args_get)                                       \
    X(args_sizes_get, "ii", "i", w_args_sizes_get)                           \
    X(environ_get, "ii", "i", w_environ_get)                                 \
    X(environ_sizes_get, "ii", "i", w_environ_sizes_get)                     \
    X(clock_res_get, "ii", "i", w_clock_res_get)                             \
    X(clock_time_get, "iIi", "i", w_clock_time_get)                          \
    X(random_get, "ii", "i", w_random_get)                                   \
    X(sched_yield, "", "i", w_sched_yield)                                   \
    X(proc_exit, "i", "", w_proc_exit)                                       \
    X(fd_write, "iiii", "i", w_fd_write)                                     \
    X(fd_read, "iiii", "i", w_fd_read)                                       \
    X(fd_pwrite, "iiiIi", "i", w_fd_pwrite)                                  \
    X(fd_pread, "iiiIi", "i", w_fd_pread)                                    \
    X(fd_close, "i", "i", w_fd_close)                                        \
    X(fd_fdstat_get, "ii", "i", w_fd_fdstat_get)                             \
    X(fd_fdstat_set_flags, "ii", "i", w_fd_fdstat_set_flags)                 \
    X(fd_filestat_get, "ii", "i", w_fd_filestat_get)                         \
    X(fd_filestat_set_size, "iI", "i", w_fd_filestat_set_size)               \
    X(fd_seek, "iIii", "i", w_fd_seek)                                       \
    X(fd_tell, "ii", "i", w_fd_tell)                                         \
    X(fd_sync, "i", "i", w_fd_sync)                                          \
    X(fd_datasync, "i", "i", w_fd_sync)                                      \
    X(fd_prestat_get, "ii", "i", w_fd_prestat_get)                           \
    X(fd_prestat_dir_name, "iii", "i", w_fd_prestat_dir_name)                \
    X(fd_readdir, "iiiIi", "i", w_fd_readdir)                                \
    X(path_open, "iiiiiIIii", "i", w_path_open)                              \
    X(path_filestat_get, "iiiii", "i", w_path_filestat_get)                  \
    X(path_create_directory, "iii", "i", w_path_create_directory)            \
    X(path_unlink_file, "iii", "i", w_path_unlink_file)                      \
    X(path_remove_directory, "iii", "i", w_path_remove_directory)            \
    X(path_rename, "iiiiii", "i", w_path_rename)                             \
    X(poll_oneoff, "iiii", "i", w_poll_oneoff)

typedef struct wasi_def {
    const char *name;
    const char *params;
    const char *results;
    iw_host_fn fn;
} wasi_def;

#define WASI_DEF(name, params, results, fn) {#name, params, results, fn},
static const wasi_def WASI_DEFS[] = {WASI_CALLS(WASI_DEF)};
#undef WASI_DEF

#define NDEFS (sizeof WASI_DEFS / sizeof WASI_DEFS[0])

const char *const *iw_wasi_implemented(void) {
#define WASI_NAME(name, params, results, fn) #name,
    static const char *const names[] = {WASI_CALLS(WASI_NAME) NULL};
#undef WASI_NAME
    return names;
}

static void types_of(const char *sig, uint8_t *out, uint32_t *n) {
    uint32_t k = 0;
    for (; sig[k]; k++) out[k] = sig[k] == 'I' ? IW_I64 : IW_I32;
    *n = k;
}

void iw_wasi_config_default(iw_wasi_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->stdin_fd = 0;
    cfg->stdout_fd = 1;
    cfg->stderr_fd = 2;
}

static char **copy_list(int n, const char *const *src) {
    char **out = iw__calloc((size_t)n + 1, sizeof *out);
    if (!out) return NULL;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(src[i]) + 1;
        out[i] = iw__malloc(len);
        if (!out[i]) {
            for (int j = 0; j < i; j++) iw__free(out[j]);
            iw__free(out);
            return NULL;
        }
        memcpy(out[i], src[i], len);
    }
    return out;
}

static void free_list(char **l, int n) {
    if (!l) return;
    for (int i = 0; i < n; i++) iw__free(l[i]);
    iw__free(l);
}

iw_status iw_wasi_new(const iw_wasi_config *cfg, iw_wasi **out, char *err,
                      size_t errlen) {
    iw_wasi *w = iw__calloc(1, sizeof *w);
    *out = NULL;
    if (!w) goto nomem;
    for (int i = 0; i < WASI_MAX_FDS; i++) w->fds[i].host = -1;
    w->argc = cfg->argc;
    w->envc = cfg->envc;
    w->argv = copy_list(cfg->argc, cfg->argv);
    w->envp = copy_list(cfg->envc, cfg->envp);
    if (!w->argv || !w->envp) goto nomem;
    int std[3] = {cfg->stdin_fd, cfg->stdout_fd, cfg->stderr_fd};
    for (int i = 0; i < 3; i++) {
        w->fds[i].host = std[i];
        w->fds[i].borrowed = 1;
    }
    if (cfg->ndirs > WASI_MAX_FDS - 3) {
        iw__errf(err, errlen, "too many granted directories (%d)", cfg->ndirs);
        iw_wasi_free(w);
        return IW_ARG;
    }
    for (int i = 0; i < cfg->ndirs; i++) {
        const iw_wasi_dir *d = &cfg->dirs[i];
        int h = open(d->host_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (h < 0) {
            iw__errf(err, errlen, "cannot open directory '%s': %s",
                     d->host_path, strerror(errno));
            iw_wasi_free(w);
            return IW_ARG;
        }
        wfd *f = &w->fds[3 + i];
        f->host = h;
        f->preopen = 1;
        const char *gp = d->guest_path ? d->guest_path : d->host_path;
        size_t len = strlen(gp) + 1;
        f->guest_path = iw__malloc(len);
        if (!f->guest_path) goto nomem;
        memcpy(f->guest_path, gp, len);
    }
    *out = w;
    return IW_OK;
nomem:
    iw__errf(err, errlen, "out of memory creating the WASI context");
    iw_wasi_free(w);
    return IW_NOMEM;
}

void iw_wasi_free(iw_wasi *w) {
    if (!w) return;
    for (int i = 0; i < WASI_MAX_FDS; i++)
        if (w->fds[i].host >= 0 || w->fds[i].guest_path) close_slot(&w->fds[i]);
    free_list(w->argv, w->argc);
    free_list(w->envp, w->envc);
    iw__free(w);
}

int iw_wasi_used(const iw_module *m) {
    uint32_t n = iw_module_import_count(m);
    for (uint32_t i = 0; i < n; i++) {
        iw_extern_desc d;
        if (iw_module_import(m, i, &d) == IW_OK && strcmp(d.module, WASI_MODULE) == 0)
            return 1;
    }
    return 0;
}

iw_status iw_wasi_link(iw_wasi *w, iw_store *s, const iw_module *m,
                       iw_extern *imports, char *err, size_t errlen) {
    uint32_t n = iw_module_import_count(m);
    for (uint32_t i = 0; i < n; i++) {
        iw_extern_desc d;
        if (iw_module_import(m, i, &d) != IW_OK) return IW_ARG;
        if (strcmp(d.module, WASI_MODULE) != 0) continue;
        if (d.kind != IW_EXTERN_FUNC) {
            iw__errf(err, errlen, "%s.%s: WASI exports only functions, not a %s",
                     d.module, d.name, iw_extern_kind_name(d.kind));
            return IW_LINK;
        }
        const wasi_def *def = NULL;
        for (size_t k = 0; k < NDEFS; k++)
            if (strcmp(WASI_DEFS[k].name, d.name) == 0) def = &WASI_DEFS[k];
        iw_func *f;
        if (def) {
            uint8_t p[16], r[2];
            uint32_t np, nr;
            types_of(def->params, p, &np);
            types_of(def->results, r, &nr);
            iw_functype want = {np, nr, p, r};
            if (!iw__functype_eq(&want, &d.func)) {
                iw__errf(err, errlen, "%s.%s: incompatible import type", d.module, d.name);
                return IW_LINK;
            }
            f = iw_func_new_host(s, p, np, r, nr, def->fn, w);
        } else {
            int one_i32 = d.func.nresults == 1 && d.func.results[0] == IW_I32;
            if (d.func.nresults != 0 && !one_i32) {
                iw__errf(err, errlen, "%s.%s: unknown WASI call with an unusual type",
                         d.module, d.name);
                return IW_LINK;
            }
            f = iw_func_new_host(s, d.func.params, d.func.nparams, d.func.results,
                                 d.func.nresults, w_enosys, (void *)(uintptr_t)one_i32);
        }
        if (!f) {
            iw__errf(err, errlen, "out of memory linking %s.%s", d.module, d.name);
            return IW_NOMEM;
        }
        imports[i].kind = IW_EXTERN_FUNC;
        imports[i].of.func = f;
    }
    return IW_OK;
}
