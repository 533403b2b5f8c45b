/* fsops.c - WASI test guest for the other calls wasi-libc makes: seek, tell,
 * positioned I/O, truncate, stat, mkdir/rmdir, rename, unlink, a directory
 * listing long enough to need several fd_readdir calls, clocks, random
 * bytes and a short sleep.  Works in the directory given as argv[1] and
 * prints one line per check ("name: ok" or what went wrong). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE 1 /* getentropy */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NFILES 150

static int failures;

static void report(const char *name, int ok, const char *why) {
    if (ok) {
        printf("%s: ok\n", name);
    } else {
        printf("%s: FAILED (%s)\n", name, why ? why : strerror(errno));
        failures++;
    }
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : ".";
    char path[512], p2[512], buf[64];

    /* seek, tell, pread, pwrite, ftruncate, fstat */
    snprintf(path, sizeof path, "%s/data.bin", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    report("open", fd >= 0, NULL);
    if (fd < 0) return 1;
    report("write", write(fd, "0123456789", 10) == 10, NULL);
    report("tell", lseek(fd, 0, SEEK_CUR) == 10, "position is not 10");
    report("seek", lseek(fd, 3, SEEK_SET) == 3 && read(fd, buf, 2) == 2 &&
                       memcmp(buf, "34", 2) == 0, "read after seek");
    report("pwrite", pwrite(fd, "ab", 2, 8) == 2, NULL);
    report("pread", pread(fd, buf, 4, 6) == 4 && memcmp(buf, "67ab", 4) == 0,
           "pread content");
    report("pread keeps offset", lseek(fd, 0, SEEK_CUR) == 5, "offset moved");
    report("ftruncate", ftruncate(fd, 4) == 0, NULL);
    struct stat st;
    report("fstat", fstat(fd, &st) == 0 && st.st_size == 4 && S_ISREG(st.st_mode),
           "size or type");
    report("seek end", lseek(fd, 0, SEEK_END) == 4, "end is not 4");
    close(fd);

    /* mkdir, stat, rename, unlink, rmdir */
    snprintf(path, sizeof path, "%s/sub", dir);
    report("mkdir", mkdir(path, 0755) == 0, NULL);
    report("mkdir again", mkdir(path, 0755) != 0 && errno == EEXIST, "no EEXIST");
    report("stat dir", stat(path, &st) == 0 && S_ISDIR(st.st_mode), "not a dir");
    snprintf(path, sizeof path, "%s/data.bin", dir);
    snprintf(p2, sizeof p2, "%s/sub/moved.bin", dir);
    report("rename", rename(path, p2) == 0, NULL);
    report("old name gone", stat(path, &st) != 0 && errno == ENOENT, "still there");
    report("new name", stat(p2, &st) == 0 && st.st_size == 4, "missing");
    snprintf(path, sizeof path, "%s/sub", dir);
    report("rmdir non-empty", rmdir(path) != 0 && errno == ENOTEMPTY, "no ENOTEMPTY");
    report("unlink", unlink(p2) == 0, NULL);
    report("rmdir", rmdir(path) == 0, NULL);
    snprintf(path, sizeof path, "%s/sub", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/../sub2", dir); /* ".." inside */
    report("mkdir via ..", mkdir(path, 0755) == 0, NULL);
    snprintf(path, sizeof path, "%s/sub2", dir);
    report("rmdir sub2", rmdir(path) == 0, NULL);
    snprintf(path, sizeof path, "%s/sub", dir);
    rmdir(path);

    /* a long listing: many fd_readdir calls with cookies */
    snprintf(path, sizeof path, "%s/many", dir);
    mkdir(path, 0755);
    for (int i = 0; i < NFILES; i++) {
        snprintf(p2, sizeof p2, "%s/many/file-with-a-long-name-%03d.txt", dir, i);
        FILE *f = fopen(p2, "w");
        if (f) fclose(f);
    }
    DIR *d = opendir(path);
    int seen[NFILES] = {0}, count = 0, dots = 0, dups = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            int n;
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                dots++;
                continue;
            }
            if (sscanf(e->d_name, "file-with-a-long-name-%d.txt", &n) == 1 &&
                n >= 0 && n < NFILES) {
                if (seen[n]++) dups++;
                count++;
            }
        }
        closedir(d);
    }
    snprintf(buf, sizeof buf, "%d entries, %d duplicates", count, dups);
    report("readdir", count == NFILES && dups == 0 && dots == 2, buf);
    for (int i = 0; i < NFILES; i++) {
        snprintf(p2, sizeof p2, "%s/many/file-with-a-long-name-%03d.txt", dir, i);
        unlink(p2);
    }
    report("rmdir many", rmdir(path) == 0, NULL);

    /* clocks, random, sleep */
    struct timespec t0, t1, rt;
    report("clock monotonic", clock_gettime(CLOCK_MONOTONIC, &t0) == 0, NULL);
    report("clock realtime", clock_gettime(CLOCK_REALTIME, &rt) == 0 &&
                                 rt.tv_sec > 1600000000, "before 2020");
    struct timespec nap = {0, 20 * 1000 * 1000};
    report("nanosleep", nanosleep(&nap, NULL) == 0, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (long)(t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    report("slept 20 ms", ms >= 19 && ms < 2000, "wrong duration");
    unsigned char r1[32] = {0}, r2[32] = {0};
    report("random", getentropy(r1, sizeof r1) == 0 && getentropy(r2, sizeof r2) == 0 &&
                         memcmp(r1, r2, sizeof r1) != 0, "same bytes twice");

    printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
