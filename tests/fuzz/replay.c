/*
 * replay.c - runs saved fuzz inputs through LLVMFuzzerTestOneInput without
 * libFuzzer, so that the corpus doubles as a regression test (CTest
 * "fuzz-replay").  Arguments are files or directories (read
 * non-recursively, in sorted order).
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long g_replayed, g_failed;

/* Reads a whole file into a malloc'ed buffer; returns 0 on success. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL, *nb;
    size_t cap = 0, n = 0, got;

    if (f == NULL)
        return -1;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;
}

/* Replays one file, counting it as replayed or failed (unreadable). */
static void replay_file(const char *path)
{
    uint8_t *data = NULL;
    size_t len = 0;

    if (read_file(path, &data, &len) != 0) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path,
                strerror(errno));
        g_failed++;
        return;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    g_replayed++;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Replays every regular file directly inside `dir`, sorted by name. */
static void replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL, **nn;
    size_t n = 0, cap = 0, i;

    if (d == NULL) {
        fprintf(stderr, "replay: cannot open %s: %s\n", dir, strerror(errno));
        g_failed++;
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue; /* ".", ".." and hidden files */
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            nn = realloc(names, cap * sizeof *names);
            if (nn == NULL)
                goto nomem;
            names = nn;
        }
        names[n] = malloc(strlen(dir) + strlen(de->d_name) + 2);
        if (names[n] == NULL)
            goto nomem;
        sprintf(names[n], "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    d = NULL;
    qsort(names, n, sizeof *names, cmp_str);
    for (i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            replay_file(names[i]);
    }
    goto cleanup;
nomem:
    fprintf(stderr, "replay: out of memory listing %s\n", dir);
    g_failed++;
cleanup:
    if (d != NULL)
        closedir(d);
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int main(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            g_failed++;
        } else if (S_ISDIR(st.st_mode)) {
            replay_dir(argv[i]);
        } else {
            replay_file(argv[i]);
        }
    }
    printf("replayed %lu inputs\n", g_replayed);
    printf("%lu passed, %lu failed\n", g_replayed, g_failed);
    return g_failed ? 1 : 0;
}
