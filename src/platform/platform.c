/*
 * platform.c - POSIX implementations of the shared OS calls (platform.h).
 */
#include "platform.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

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
