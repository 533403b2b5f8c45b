/*
 * platform.c - POSIX implementations of the shared OS calls (platform.h).
 */
#define _DEFAULT_SOURCE /* madvise */
#include "platform.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define PL_PATH_CAP 4096

int pl_mkdirs(const char *dir)
{
    char p[PL_PATH_CAP];
    size_t n = strlen(dir);
    struct stat st;

    if (n == 0 || n >= sizeof p) {
        errno = n == 0 ? ENOENT : ENAMETOOLONG;
        return -1;
    }
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return -1;
        p[i] = i == n ? '\0' : '/';
    }
    if (stat(dir, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int pl_name_ok(const char *name, size_t max)
{
    size_t n;
    if (name == NULL)
        return 0;
    n = strlen(name);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}

/* ---- Warm heap. --------------------------------------------------------- */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#define PL_WARM_MAX ((size_t)64 << 20)

static pthread_once_t heap_once = PTHREAD_ONCE_INIT;

static void heap_keep(void)
{
#ifdef __GLIBC__
    /* Freed memory up to 16 MiB stays with the process, and blocks up to
     * 1 MiB (frames, modules, TLS buffers) come from the arenas rather
     * than from a fresh mmap each time (which glibc would otherwise only
     * learn after the first few). */
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
}

#ifdef __GLIBC__
/* Faults [p, p + n) in: one madvise for its whole pages (a page fault
 * each costs ~20 us on some VMs), writing them on older kernels. */
static void populate(uint8_t *p, size_t n, uintptr_t pg)
{
    uintptr_t a = (uintptr_t)p, e = a + n;
    a = (a + pg - 1) & ~(pg - 1);
    e &= ~(pg - 1);
    if (e <= a || madvise((void *)a, e - a, MADV_POPULATE_WRITE) != 0)
        memset(p, 0, n);
}
#endif

void pl_heap_warm(size_t bytes)
{
    pthread_once(&heap_once, heap_keep);
#ifdef __GLIBC__
    /* In pieces below the mmap threshold (heap_keep), so that they come
     * from this thread's arena and stay there once freed (a single block
     * of 1 MiB or more would be an mmap of its own, unmapped at free). */
    enum { PIECE = 256 * 1024, MAXP = PL_WARM_MAX / PIECE };
    uint8_t *pieces[MAXP];
    size_t np = 0;
    long pg = sysconf(_SC_PAGESIZE);
    if (bytes > PL_WARM_MAX)
        bytes = PL_WARM_MAX;
    while (np * PIECE < bytes && (pieces[np] = malloc(PIECE)) != NULL) {
        populate(pieces[np], PIECE, pg > 0 ? (uintptr_t)pg : 4096u);
        np++;
    }
    while (np > 0)
        free(pieces[--np]);
#else
    (void)bytes;
#endif
}
