/*
 * test_wasm_mutations.c - robustness test of the WebAssembly engine against
 * damaged binaries: every .wasm of the converted spec suite is loaded whole,
 * truncated at (nearly) every length and randomly byte-flipped; accepted
 * variants are instantiated with dummy imports and their exports run under
 * fuel.  The engine must never crash, and must reject/accept consistently.
 *
 * Usage: test_wasm_mutations DIR_OR_FILE...   (e.g. build/tests/spec/core)
 * Env:   MUT_SAVE=path  write each input to `path` before running it (after a
 *        crash the file holds the culprit); MUT_FLIPS=n flips per file.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wasm.h"
#include "wasm_dummy.h"

#define FLIPS_PER_FILE 16
#define FULL_TRUNC_LIMIT 4096 /* every cut point below this size */
#define TRUNC_SAMPLES 512     /* sampled cut points above it */
#define RUN_FUEL 10000

static unsigned long g_files, g_valid_files, g_truncs, g_flips;
static unsigned long g_accepted, g_rejected, g_failed;
static const char *g_save_path;

/* Deterministic xorshift64 generator. */
static uint64_t g_rng;
static uint64_t rng_next(void)
{
    uint64_t x = g_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    g_rng = x;
    return x;
}

/* Seeds the generator from the file's name so results do not depend on the
 * order or number of files (FNV-1a). */
static void rng_seed(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (; *name; name++) {
        h ^= (uint8_t)*name;
        h *= 1099511628211ull;
    }
    g_rng = h ? h : 0x9E3779B97F4A7C15ull;
}

static void fail(const char *file, const char *what, size_t arg,
                 const char *why)
{
    fprintf(stderr, "FAIL %s (%s %zu): %s\n", file, what, arg, why);
    g_failed++;
}

/* Reads a whole file; returns a malloc'ed buffer (at least 1 byte) or NULL. */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long sz;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0)
        goto out;
    buf = malloc((size_t)sz + 1);
    if (buf == NULL)
        goto out;
    if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
        goto out;
    }
    *len = (size_t)sz;
out:
    fclose(f);
    return buf;
}

static void save_input(const uint8_t *p, size_t n)
{
    FILE *f;
    if (g_save_path == NULL)
        return;
    f = fopen(g_save_path, "wb");
    if (f == NULL)
        return;
    if (n > 0)
        (void)fwrite(p, 1, n, f);
    fclose(f);
}

/* Instantiates an accepted module with dummy imports in a small store and
 * runs its exports.  Checks the instantiation status; returns 0 if fine. */
static int run_module(const iw_module *m, const char **why)
{
    iw_store *s;
    iw_config cfg;
    iw_extern *imports = NULL;
    size_t nimports = 0;
    iw_instance *inst = NULL;
    iw_status st;
    char err[256];
    int rc = 0;

    iw_config_default(&cfg);
    cfg.max_memory_pages = 64;
    cfg.max_table_elems = 10000;
    cfg.stack_slots = 16u * 1024u;
    cfg.max_call_depth = 500;
    s = iw_store_new(&cfg);
    if (s == NULL)
        return 0; /* out of memory is not an engine bug here */
    if (wd_make_imports(s, m, &imports, &nimports, err, sizeof err) != IW_OK)
        goto cleanup; /* e.g. a dummy above the caps */
    iw_store_set_fuel(s, RUN_FUEL);
    err[0] = '\0';
    st = iw_instantiate(s, m, imports, nimports, &inst, err, sizeof err);
    if (st == IW_OK) {
        if (inst == NULL) {
            *why = "iw_instantiate returned OK without an instance";
            rc = -1;
        } else {
            wd_run_exports(s, inst, m, RUN_FUEL);
        }
    } else if (st != IW_LINK && st != IW_TRAP && st != IW_NOMEM) {
        *why = "iw_instantiate returned an unexpected status";
        rc = -1;
    } else if (err[0] == '\0') {
        *why = "iw_instantiate failed with an empty message";
        rc = -1;
    }
cleanup:
    free(imports);
    iw_store_free(s);
    return rc;
}

/* Loads one (possibly damaged) binary and, when accepted, runs it.  Returns
 * the load status, or IW_STATUS_COUNT after recording a failure. */
static iw_status try_input(const char *file, const char *what, size_t arg,
                           const uint8_t *p, size_t n)
{
    iw_module *m = NULL;
    iw_status st;
    const char *why = NULL;
    char err[256];

    save_input(p, n);
    err[0] = '\0';
    st = iw_module_load(p, n, &m, err, sizeof err);
    if (st == IW_OK) {
        if (m == NULL) {
            fail(file, what, arg, "load returned OK without a module");
            return IW_STATUS_COUNT;
        }
        g_accepted++;
        if (run_module(m, &why) != 0)
            fail(file, what, arg, why);
        iw_module_free(m);
        return st;
    }
    g_rejected++;
    if (st != IW_MALFORMED && st != IW_INVALID && st != IW_NOMEM) {
        fail(file, what, arg, "load returned an unexpected status");
        return IW_STATUS_COUNT;
    }
    if (err[0] == '\0') {
        fail(file, what, arg, "load failed with an empty message");
        return IW_STATUS_COUNT;
    }
    return st;
}

/* Lenient unsigned LEB128 (at most 5 bytes) for the section walk below. */
static int leb_u32(const uint8_t *p, size_t n, size_t *pos, uint32_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    int i;
    for (i = 0; i < 5; i++) {
        uint8_t b;
        if (*pos >= n)
            return 0;
        b = p[(*pos)++];
        v |= (uint64_t)(b & 0x7F) << shift;
        shift += 7;
        if (!(b & 0x80)) {
            *out = (uint32_t)v;
            return 1;
        }
    }
    return 0;
}

/* Marks in `bound` (n+1 flags) every offset where a section of the binary
 * ends (and the end of the 8-byte header): the only places where a
 * truncated module can possibly be well-formed. */
static void section_bounds(const uint8_t *p, size_t n, uint8_t *bound)
{
    size_t pos = 8;
    uint32_t sz;
    memset(bound, 0, n + 1);
    if (n < 8)
        return;
    bound[8] = 1;
    while (pos < n) {
        pos++; /* section id */
        if (!leb_u32(p, n, &pos, &sz) || sz > n - pos)
            return;
        pos += sz;
        bound[pos] = 1;
    }
}

/* Truncation, flip and consistency checks for one file. */
static void test_file(const char *path, const char *name)
{
    uint8_t *orig, *buf = NULL, *bound = NULL;
    size_t len = 0, cut, i, step;
    unsigned k, nflips = FLIPS_PER_FILE;
    const char *env = getenv("MUT_FLIPS");
    iw_status st;

    if (env != NULL)
        nflips = (unsigned)strtoul(env, NULL, 10);
    orig = read_file(path, &len);
    if (orig == NULL) {
        fail(name, "read", 0, "cannot read file");
        return;
    }
    g_files++;
    rng_seed(name);
    buf = malloc(len + 1);
    bound = malloc(len + 1);
    if (buf == NULL || bound == NULL) {
        fail(name, "alloc", len, "out of memory");
        goto cleanup;
    }

    /* 1. The file as it is. */
    st = try_input(name, "whole", len, orig, len);
    if (st == IW_OK)
        g_valid_files++;

    /* 2. Truncations: every cut for small files, a sample for big ones
     *    (always including each section boundary and its neighbours). */
    section_bounds(orig, len, bound);
    step = len < FULL_TRUNC_LIMIT ? 1 : len / TRUNC_SAMPLES;
    for (cut = 0; cut < len; cut++) {
        int near = bound[cut] || bound[cut + 1] || (cut > 0 && bound[cut - 1]);
        if (step > 1 && cut % step != 0 && !near)
            continue;
        memcpy(buf, orig, cut);
        g_truncs++;
        st = try_input(name, "truncated at", cut, buf, cut);
        if (st == IW_OK && !bound[cut])
            fail(name, "truncated at", cut,
                 "accepted a module truncated inside a section");
    }

    /* 3. Random flips: 1-4 bytes each XORed or set to a LEB-interesting
     *    value. */
    for (k = 0; k < nflips && len > 0; k++) {
        unsigned nb = 1 + (unsigned)(rng_next() % 4), j;
        memcpy(buf, orig, len);
        for (j = 0; j < nb; j++) {
            static const uint8_t special[] = {0x00, 0x7F, 0x80, 0xFF,
                                              0x40, 0x01, 0x0B, 0x41};
            uint64_t r = rng_next();
            i = (size_t)(r % len);
            if ((r >> 32) & 1)
                buf[i] = special[(r >> 40) % sizeof special];
            else
                buf[i] ^= (uint8_t)(1u + (r >> 48) % 255u);
        }
        g_flips++;
        (void)try_input(name, "flip", k, buf, len);
    }

cleanup:
    free(orig);
    free(buf);
    free(bound);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int has_wasm_suffix(const char *s)
{
    size_t n = strlen(s);
    return n > 5 && strcmp(s + n - 5, ".wasm") == 0;
}

/* Tests every *.wasm file directly inside `dir`, in sorted order. */
static void test_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL, **nn;
    size_t n = 0, cap = 0, i;
    char *path;

    if (d == NULL) {
        fail(dir, "opendir", 0, "cannot open directory");
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (!has_wasm_suffix(de->d_name))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            nn = realloc(names, cap * sizeof *names);
            if (nn == NULL)
                break;
            names = nn;
        }
        names[n] = malloc(strlen(de->d_name) + 1);
        if (names[n] == NULL)
            break;
        strcpy(names[n], de->d_name);
        n++;
    }
    closedir(d);
    if (names != NULL)
        qsort(names, n, sizeof *names, cmp_str);
    for (i = 0; i < n; i++) {
        path = malloc(strlen(dir) + strlen(names[i]) + 2);
        if (path == NULL) {
            fail(names[i], "alloc", 0, "out of memory");
            continue;
        }
        sprintf(path, "%s/%s", dir, names[i]);
        test_file(path, names[i]);
        free(path);
    }
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int main(int argc, char **argv)
{
    int i;
    unsigned long total;

    if (argc < 2) {
        fprintf(stderr, "usage: %s SPEC_WASM_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    g_save_path = getenv("MUT_SAVE");
    for (i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0)
            fail(argv[i], "stat", 0, "no such file or directory");
        else if (S_ISDIR(st.st_mode))
            test_dir(argv[i]);
        else
            test_file(argv[i], argv[i]);
    }
    if (g_files == 0)
        fail("(arguments)", "files", 0, "no .wasm files found");
    total = g_truncs + g_flips;
    printf("files %lu (valid %lu), truncations %lu, flips %lu, "
           "accepted %lu, rejected %lu\n",
           g_files, g_valid_files, g_truncs, g_flips, g_accepted, g_rejected);
    printf("%lu passed, %lu failed\n", total - (g_failed < total ? g_failed : total),
           g_failed);
    return g_failed ? 1 : 0;
}
