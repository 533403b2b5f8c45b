/*
 * test_spool.c - cmocka tests of the disk spool (src/net/spool.c): appends,
 * reads and acks across segment files, reopen, torn tails and corrupted
 * middles with exact counts and messages, both full policies, the sync
 * policies, the directory lock, a performance figure per sync policy and a
 * crash simulation (a child SIGKILLed while appending).  Every test runs in
 * its own temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net.h"
#include "net_int.h"

#define MAXSEG 64

typedef struct tctx {
    char base[256]; /* the temporary directory (removed at teardown) */
    char dir[300];  /* base/sp: the spool directory (created by open) */
} tctx;

static char g_err[1024];

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                 */

/* Removes path and everything below it. */
static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state)
{
    tctx *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(t->base, sizeof t->base, "%s/isoflow-spool-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(t->base)) {
        free(t);
        return -1;
    }
    snprintf(t->dir, sizeof t->dir, "%s/sp", t->base);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    tctx *t = *state;
    rm_rf(t->base);
    free(t);
    return 0;
}

#define BIG_FIXED ((size_t)-1) /* pattern size: crash-test mix */
#define BIG_MAX (256u * 1024u)

/* The payload of record seq: `fixed` bytes; or 1..200 by seq when 0; or,
 * with BIG_FIXED, every tenth record 100,000..100,999 bytes (large writes
 * can be cut short by SIGKILL: torn tails). */
static size_t pattern(uint64_t seq, uint8_t *buf, size_t fixed)
{
    size_t len = 1 + (size_t)((seq * 2654435761u) % 200u);
    if (fixed == BIG_FIXED)
        len = seq % 10 == 0 ? 100000 + (size_t)(seq % 1000) : len;
    else if (fixed)
        len = fixed;
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seq * 7u + i * 13u);
    return len;
}

static nt_spool *open_ok(const char *dir, const nt_spool_opts *o)
{
    nt_spool *sp = NULL;
    g_err[0] = '\0';
    nt_status st = nt_spool_open(dir, o, &sp, g_err, sizeof g_err);
    if (st != NT_OK)
        fprintf(stderr, "open failed: %s\n", g_err);
    assert_int_equal(st, NT_OK);
    assert_non_null(sp);
    return sp;
}

/* Appends n records with the pattern (fixed size or variable), checking
 * that they get consecutive numbers. */
static void append_n(nt_spool *sp, uint64_t n, size_t fixed)
{
    uint8_t buf[256];
    for (uint64_t i = 0; i < n; i++) {
        nt_spool_stats s;
        nt_spool_stats_get(sp, &s);
        size_t len = pattern(s.next_seq, buf, fixed);
        uint64_t seq = 0;
        nt_status st = nt_spool_append(sp, buf, len, &seq);
        if (st != NT_OK)
            fprintf(stderr, "append: %s\n", nt__spool_errmsg(sp));
        assert_int_equal(st, NT_OK);
        assert_int_equal(seq, s.next_seq);
    }
}

/* What nt_spool_read delivered. */
typedef struct col {
    uint64_t first, last, n; /* seqs seen */
    size_t fixed;            /* pattern size */
    int bad;                 /* out of order or wrong payload */
    uint64_t stop_after;     /* return 1 after this many (0: never) */
} col;

static int collect(void *user, uint64_t seq, const uint8_t *rec, size_t len)
{
    col *c = user;
    static uint8_t want[BIG_MAX];
    size_t wl = pattern(seq, want, c->fixed);
    if (c->n == 0)
        c->first = seq;
    else if (seq != c->last + 1)
        c->bad = 1;
    if (len != wl || memcmp(rec, want, wl) != 0)
        c->bad = 1;
    c->last = seq;
    c->n++;
    return c->stop_after && c->n >= c->stop_after;
}

/* Reads from `from` and checks that exactly first..last came, intact. */
static void assert_reads(nt_spool *sp, uint64_t from, size_t fixed,
                         uint64_t first, uint64_t last)
{
    col c = {0, 0, 0, fixed, 0, 0};
    assert_int_equal(nt_spool_read(sp, from, collect, &c), NT_OK);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.n, last >= first ? last - first + 1 : 0);
    if (c.n) {
        assert_int_equal(c.first, first);
        assert_int_equal(c.last, last);
    }
}

static void assert_stats(nt_spool *sp, uint64_t first, uint64_t next,
                         uint64_t bytes, uint64_t records)
{
    nt_spool_stats s;
    nt_spool_stats_get(sp, &s);
    assert_int_equal(s.first_seq, first);
    assert_int_equal(s.next_seq, next);
    assert_int_equal(s.bytes, bytes);
    assert_int_equal(s.records, records);
}

/* The directory's *.seg files, sorted, as "start:size" in out (joined by
 * spaces), e.g. "1:72 3:72". */
static void seg_list(const char *dir, char *out, size_t cap)
{
    char names[MAXSEG][300];
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".seg") == 0 && n < MAXSEG)
            snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: same-width names */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char tmp[300];
            memcpy(tmp, names[j], sizeof tmp);
            memcpy(names[j], names[j - 1], sizeof tmp);
            memcpy(names[j - 1], tmp, sizeof tmp);
        }
    out[0] = '\0';
    size_t used = 0;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    for (int i = 0; i < n; i++) {
        struct stat st;
        assert_int_equal(fstatat(dfd, names[i], &st, 0), 0);
        int w = snprintf(out + used, cap - used, "%s%llu:%lld",
                         i ? " " : "", strtoull(names[i], NULL, 10),
                         (long long)st.st_size);
        assert_true(w > 0 && (size_t)w < cap - used);
        used += (size_t)w;
    }
    close(dfd);
}

static void assert_segs(const char *dir, const char *want)
{
    char got[2048];
    seg_list(dir, got, sizeof got);
    assert_string_equal(got, want);
}

static void seg_path(const tctx *t, uint64_t start, char *p, size_t cap)
{
    snprintf(p, cap, "%s/%020" PRIu64 ".seg", t->dir, start);
}

/* Overwrites one byte of a file at offset with its complement. */
static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b = (uint8_t)~b;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static nt_spool_opts small_opts(uint32_t seg, uint64_t max, uint8_t full)
{
    nt_spool_opts o;
    nt_spool_opts_default(&o);
    o.segment_bytes = seg;
    o.max_bytes = max;
    o.full = full;
    o.sync = NT_SYNC_NONE;
    return o;
}

/* ------------------------------------------------------------------------ */
/* Basics.                                                                  */

static void test_defaults(void **state)
{
    (void)state;
    nt_spool_opts o;
    memset(&o, 0xab, sizeof o);
    nt_spool_opts_default(&o);
    assert_int_equal(o.max_bytes, 64u * 1024 * 1024);
    assert_int_equal(o.segment_bytes, 4u * 1024 * 1024);
    assert_int_equal(o.sync, NT_SYNC_BATCH);
    assert_int_equal(o.sync_interval_ms, 50);
    assert_int_equal(o.full, NT_FULL_REJECT);
}

/* Open creates missing parents with 0700; segment and ack files are 0600. */
static void test_create_and_perms(void **state)
{
    tctx *t = *state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/a/b/spool", t->base);
    nt_spool *sp = open_ok(dir, NULL);
    assert_stats(sp, 1, 1, 0, 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char p[512];
    snprintf(p, sizeof p, "%s/a", t->base);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    append_n(sp, 1, 10);
    snprintf(p, sizeof p, "%s/00000000000000000001.seg", dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 26);
    assert_int_equal(nt_spool_ack(sp, 1), NT_OK);
    snprintf(p, sizeof p, "%s/ack", dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 16);
    nt_spool_close(sp);
}

/* Records of 36 bytes, segments of 100: two records per file. */
static void test_segments_read_ack(void **state)
{
    tctx *t = *state;
    nt_spool_opts o = small_opts(100, 1u << 20, NT_FULL_REJECT);
    nt_spool *sp = open_ok(t->dir, &o);
    append_n(sp, 7, 20);
    assert_stats(sp, 1, 8, 252, 7);
    assert_segs(t->dir, "1:72 3:72 5:72 7:36");
    assert_reads(sp, 0, 20, 1, 7);
    assert_reads(sp, 4, 20, 4, 7);
    assert_reads(sp, 7, 20, 7, 7);
    assert_reads(sp, 8, 20, 1, 0); /* nothing at or after next_seq */
    col c = {0, 0, 0, 20, 0, 2};   /* stops after two */
    assert_int_equal(nt_spool_read(sp, 3, collect, &c), NT_OK);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.first, 3);
    assert_int_equal(c.last, 4);

    /* Ack 3: file 1 goes, file 3 still holds 4. */
    assert_int_equal(nt_spool_ack(sp, 3), NT_OK);
    assert_segs(t->dir, "3:72 5:72 7:36");
    assert_stats(sp, 4, 8, 180, 4);
    assert_reads(sp, 1, 20, 4, 7); /* from below the ack point: clamped */
    assert_int_equal(nt_spool_ack(sp, 2), NT_OK); /* old ack: no-op */
    assert_stats(sp, 4, 8, 180, 4);
    assert_int_equal(nt_spool_ack(sp, 4), NT_OK);
    assert_segs(t->dir, "5:72 7:36");
    assert_int_equal(nt_spool_ack(sp, 8), NT_EARG);
    assert_non_null(strstr(nt__spool_errmsg(sp),
                           "ack of seq 8 beyond the last record appended "
                           "(7)"));
    assert_stats(sp, 5, 8, 108, 3);

    /* Ack of everything deletes every segment, the active one too. */
    assert_int_equal(nt_spool_ack(sp, 7), NT_OK);
    assert_segs(t->dir, "");
    assert_stats(sp, 8, 8, 0, 0);
    assert_reads(sp, 0, 20, 1, 0);
    append_n(sp, 3, 20);
    assert_segs(t->dir, "8:72 10:36");
    assert_reads(sp, 0, 20, 8, 10);
    nt_spool_close(sp);
}

/* Variable-size records spread over many segments, acked in steps. */
static void test_many_segments(void **state)
{
    tctx *t = *state;
    nt_spool_opts o = small_opts(1000, 1u << 20, NT_FULL_REJECT);
    nt_spool *sp = open_ok(t->dir, &o);
    append_n(sp, 500, 0);
    assert_reads(sp, 0, 0, 1, 500);
    for (uint64_t a = 37; a <= 500; a += 37) {
        assert_int_equal(nt_spool_ack(sp, a), NT_OK);
        assert_reads(sp, 0, 0, a + 1, 500);
        assert_reads(sp, a + 20, 0, a + 20 > 500 ? 501 : a + 20, 500);
    }
    nt_spool_close(sp);
    sp = open_ok(t->dir, &o);
    assert_reads(sp, 0, 0, 482, 500);
    nt_spool_stats s;
    nt_spool_stats_get(sp, &s);
    assert_int_equal(s.first_seq, 482);
    assert_int_equal(s.records, 19);
    assert_int_equal(s.truncated, 0);
    nt_spool_close(sp);
}

/* Reopen resumes next_seq and keeps only unacknowledged records; with
 * everything acknowledged (no segment left) next_seq comes from the ack
 * file. */
static void test_reopen(void **state)
{
    tctx *t = *state;
    nt_spool *sp = open_ok(t->dir, NULL);
    append_n(sp, 10, 20);
    assert_int_equal(nt_spool_ack(sp, 4), NT_OK);
    nt_spool_close(sp);

    sp = open_ok(t->dir, NULL);
    assert_stats(sp, 5, 11, 360, 6);
    assert_reads(sp, 0, 20, 5, 10);
    append_n(sp, 1, 20); /* gets 11 */
    assert_int_equal(nt_spool_ack(sp, 11), NT_OK);
    nt_spool_close(sp);
    assert_segs(t->dir, "");

    sp = open_ok(t->dir, NULL);
    assert_stats(sp, 12, 12, 0, 0);
    append_n(sp, 2, 20);
    assert_segs(t->dir, "12:72");
    nt_spool_close(sp);
}

/* ------------------------------------------------------------------------ */
/* Torn tails: truncated exactly, the rest kept.                            */

static void check_torn(tctx *t, uint64_t n_before, uint64_t trunc,
                       uint64_t keep, uint64_t bytes_left)
{
    nt_spool *sp = open_ok(t->dir, NULL);
    nt_spool_stats s;
    nt_spool_stats_get(sp, &s);
    assert_int_equal(s.truncated, trunc);
    assert_int_equal(s.next_seq, keep + 1);
    assert_int_equal(s.records, keep);
    assert_int_equal(s.bytes, bytes_left);
    assert_reads(sp, 0, 20, 1, keep);
    char p[512];
    seg_path(t, 1, p, sizeof p);
    assert_int_equal(file_size(p), (off_t)bytes_left);
    /* Appends continue after the kept records, and survive a reopen. */
    append_n(sp, 2, 20);
    nt_spool_close(sp);
    sp = open_ok(t->dir, NULL);
    nt_spool_stats_get(sp, &s);
    assert_int_equal(s.truncated, 0);
    assert_int_equal(s.next_seq, keep + 3);
    assert_reads(sp, 0, 20, 1, keep + 2);
    nt_spool_close(sp);
    (void)n_before;
}

static void make_five(tctx *t)
{
    nt_spool *sp = open_ok(t->dir, NULL);
    append_n(sp, 5, 20); /* 5 x 36 = 180 bytes */
    nt_spool_close(sp);
}

static void test_torn_truncated_record(void **state)
{
    tctx *t = *state;
    make_five(t);
    char p[512];
    seg_path(t, 1, p, sizeof p);
    assert_int_equal(truncate(p, 170), 0); /* record 5 lost 10 bytes */
    check_torn(t, 5, 26, 4, 144);
}

static void test_torn_partial_header(void **state)
{
    tctx *t = *state;
    make_five(t);
    char p[512];
    seg_path(t, 1, p, sizeof p);
    assert_int_equal(truncate(p, 144 + 7), 0); /* 7 header bytes */
    check_torn(t, 5, 7, 4, 144);
}

static void test_torn_garbage(void **state)
{
    tctx *t = *state;
    make_five(t);
    char p[512];
    seg_path(t, 1, p, sizeof p);
    int fd = open(p, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    uint8_t g[50];
    for (size_t i = 0; i < sizeof g; i++)
        g[i] = (uint8_t)(i * 37u + 11u);
    g[0] = 8; /* a plausible small length: still not a record */
    g[1] = g[2] = g[3] = 0;
    assert_int_equal(write(fd, g, sizeof g), (ssize_t)sizeof g);
    close(fd);
    check_torn(t, 5, 50, 5, 180);
}

static void test_torn_flipped_payload(void **state)
{
    tctx *t = *state;
    make_five(t);
    char p[512];
    seg_path(t, 1, p, sizeof p);
    flip_byte(p, 144 + 16 + 3); /* record 5's payload */
    check_torn(t, 5, 36, 4, 144);
}

static void test_torn_flipped_length(void **state)
{
    tctx *t = *state;
    make_five(t);
    char p[512];
    seg_path(t, 1, p, sizeof p);
    flip_byte(p, 144 + 3); /* record 5's length becomes huge */
    check_torn(t, 5, 36, 4, 144);
}

/* Only the last segment's tail is cut; earlier segments stay whole. */
static void test_torn_last_segment(void **state)
{
    tctx *t = *state;
    nt_spool_opts o = small_opts(100, 1u << 20, NT_FULL_REJECT);
    nt_spool *sp = open_ok(t->dir, &o);
    append_n(sp, 6, 20);
    nt_spool_close(sp);
    char p[512];
    seg_path(t, 5, p, sizeof p);
    assert_int_equal(truncate(p, 36 + 20), 0);
    sp = open_ok(t->dir, &o);
    nt_spool_stats s;
    nt_spool_stats_get(sp, &s);
    assert_int_equal(s.truncated, 20);
    assert_int_equal(s.next_seq, 6);
    assert_reads(sp, 0, 20, 1, 5);
    assert_segs(t->dir, "1:72 3:72 5:36");
    append_n(sp, 1, 20);
    assert_segs(t->dir, "1:72 3:72 5:72");
    nt_spool_close(sp);
}

/* ------------------------------------------------------------------------ */
/* Corrupted middles.                                                       */

/* A damaged unacknowledged record followed by valid ones: the open is
 * refused with the file, offset, reason and lost range; nothing changes. */
static void test_corrupt_middle_refused(void **state)
{
    tctx *t = *state;
    nt_spool *sp = open_ok(t->dir, NULL);
    append_n(sp, 10, 20);
    nt_spool_close(sp);
    char p[512];
    seg_path(t, 1, p, sizeof p);
    flip_byte(p, 2 * 36 + 16 + 5); /* record 3's payload */
    sp = (nt_spool *)1;
    assert_int_equal(nt_spool_open(t->dir, NULL, &sp, g_err, sizeof g_err),
                     NT_ECORRUPT);
    assert_null(sp);
    char want[1024];
    snprintf(want, sizeof want,
             "spool corrupt: %s/00000000000000000001.seg: bad record at "
             "offset 72 (CRC mismatch; expected seq 3); the next valid "
             "record (seq 4) is at offset 108: unacknowledged records 3..3 "
             "would be lost",
             t->dir);
    assert_string_equal(g_err, want);
    assert_int_equal(file_size(p), 360);

    /* A damaged sequence number (valid length, bad CRC) reads the same. */
    flip_byte(p, 2 * 36 + 16 + 5);
    flip_byte(p, 4 * 36 + 8); /* record 5's seq */
    assert_int_equal(nt_spool_open(t->dir, NULL, &sp, g_err, sizeof g_err),
                     NT_ECORRUPT);
    assert_non_null(strstr(g_err, "offset 144 (unexpected sequence number; "
                                  "expected seq 5)"));
    assert_non_null(strstr(g_err, "records 5..5 would be lost"));
}

/* The same damage inside the acknowledged part is skipped. */
static void test_corrupt_acked_skipped(void **state)
{
    tctx *t = *state;
    nt_spool *sp = open_ok(t->dir, NULL);
    append_n(sp, 10, 20);
    assert_int_equal(nt_spool_ack(sp, 5), NT_OK);
    nt_spool_close(sp);
    char p[512];
    seg_path(t, 1, p, sizeof p);
    flip_byte(p, 2 * 36 + 1); /* record 3's length */
    sp = open_ok(t->dir, NULL);
    assert_stats(sp, 6, 11, 360, 5);
    nt_spool_stats s;
    nt_spool_stats_get(sp, &s);
    assert_int_equal(s.truncated, 0);
    assert_reads(sp, 0, 20, 6, 10);
    assert_reads(sp, 8, 20, 8, 10);
    nt_spool_close(sp);
}

/* A bad tail in a segment that is not the last one. */
static void test_corrupt_segment_tail(void **state)
{
    tctx *t = *state;
    nt_spool_opts o = small_opts(100, 1u << 20, NT_FULL_REJECT);
    nt_spool *sp = open_ok(t->dir, &o);
    append_n(sp, 6, 20);
    nt_spool_close(sp);
    char p[512];
    seg_path(t, 3, p, sizeof p);
    flip_byte(p, 36 + 20); /* record 4, the last of file 3 */
    assert_int_equal(nt_spool_open(t->dir, &o, &sp, g_err, sizeof g_err),
                     NT_ECORRUPT);
    char want[1024];
    snprintf(want, sizeof want,
             "spool corrupt: %s/00000000000000000003.seg: bad record at "
             "offset 36 (CRC mismatch; expected seq 4): unacknowledged records "
             "4..4 "
             "cannot be read",
             t->dir);
    assert_string_equal(g_err, want);
    assert_segs(t->dir, "1:72 3:72 5:72");
}

/* A missing middle segment file. */
static void test_corrupt_missing_segment(void **state)
{
    tctx *t = *state;
    nt_spool_opts o = small_opts(100, 1u << 20, NT_FULL_REJECT);
    nt_spool *sp = open_ok(t->dir, &o);
    append_n(sp, 6, 20);
    nt_spool_close(sp);
    char p[512];
    seg_path(t, 3, p, sizeof p);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(nt_spool_open(t->dir, &o, &sp, g_err, sizeof g_err),
                     NT_ECORRUPT);
    char want[1024];
    snprintf(want, sizeof want,
             "spool corrupt: %s/00000000000000000005.seg starts at seq 5: "
             "unacknowledged records 3..4 are missing",
             t->dir);
    assert_string_equal(g_err, want);
}

/* A damaged ack file: every record on disk is unacknowledged again
 * (duplicates, not loss); with no segment left, the open is refused. */
static void test_damaged_ack_file(void **state)
{
    tctx *t = *state;
    nt_spool *sp = open_ok(t->dir, NULL);
    append_n(sp, 10, 20);
    assert_int_equal(nt_spool_ack(sp, 5), NT_OK);
    nt_spool_close(sp);
    char p[512];
    snprintf(p, sizeof p, "%s/ack", t->dir);
    flip_byte(p, 9);
    sp = open_ok(t->dir, NULL);
    assert_stats(sp, 1, 11, 360, 10);
    assert_reads(sp, 0, 20, 1, 10);
    assert_int_equal(nt_spool_ack(sp, 10), NT_OK);
    nt_spool_close(sp);
    assert_segs(t->dir, "");
    flip_byte(p, 9);
    assert_int_equal(nt_spool_open(t->dir, NULL, &sp, g_err, sizeof g_err),
                     NT_ECORRUPT);
    assert_non_null(strstr(g_err, "/ack is damaged and no segment is left"));
}

/* ------------------------------------------------------------------------ */
/* The size bound.                                                          */

/* 50-byte records, 200-byte segments, 1000 bytes in all: 20 records. */
static void test_full_reject(void **state)
{
    tctx *t = *state;
    nt_spool_opts o = small_opts(200, 1000, NT_FULL_REJECT);
    nt_spool *sp = open_ok(t->dir, &o);
    append_n(sp, 20, 34);
    assert_stats(sp, 1, 21, 1000, 20);
    uint8_t buf[64];
    uint64_t seq = 99;
    size_t len = pattern(21, buf, 34);
    assert_int_equal(nt_spool_append(sp, buf, len, &seq), NT_EFULL);
    assert_int_equal(seq, 99);
    assert_non_null(strstr(nt__spool_errmsg(sp), "full (1000 of 1000"));
    assert_stats(sp, 1, 21, 1000, 20);
    assert_segs(t->dir, "1:200 5:200 9:200 13:200 17:200");
    /* Nothing freed until a whole segment is acknowledged. */
    assert_int_equal(nt_spool_ack(sp, 3), NT_OK);
    assert_int_equal(nt_spool_append(sp, buf, len, &seq), NT_EFULL);
    assert_int_equal(nt_spool_ack(sp, 4), NT_OK);
    append_n(sp, 4, 34);
    assert_int_equal(nt_spool_append(sp, buf, len, &seq), NT_EFULL);
    assert_stats(sp, 5, 25, 1000, 20);
    assert_segs(t->dir, "5:200 9:200 13:200 17:200 21:200");
    assert_reads(sp, 0, 34, 5, 24);
    /* A record that can never fit, and one over the payload limit. */
    static uint8_t big[NT_MAX_PAYLOAD + 1];
    assert_int_equal(nt_spool_append(sp, big, 985, &seq), NT_EFULL);
    assert_non_null(strstr(nt__spool_errmsg(sp), "never fits"));
    assert_int_equal(nt_spool_append(sp, big, sizeof big, &seq), NT_EARG);
    assert_int_equal(nt_spool_append(sp, NULL, 3, &seq), NT_EARG);
    assert_stats(sp, 5, 25, 1000, 20);
    nt_spool_close(sp);
}

static void test_full_drop_oldest(void **state)
{
    tctx *t = *state;
    nt_spool_opts o = small_opts(200, 1000, NT_FULL_DROP_OLDEST);
    nt_spool *sp = open_ok(t->dir, &o);
    append_n(sp, 20, 34);
    assert_int_equal(nt_spool_ack(sp, 2), NT_OK);
    append_n(sp, 10, 34); /* drops files 1 (2 unacked), 5 and 9 (4 each) */
    nt_spool_stats s;
    nt_spool_stats_get(sp, &s);
    assert_int_equal(s.dropped, 10);
    assert_stats(sp, 13, 31, 900, 18);
    assert_segs(t->dir, "13:200 17:200 21:200 25:200 29:100");
    assert_reads(sp, 0, 34, 13, 30);
    nt_spool_close(sp);
    /* The drop point persists. */
    sp = open_ok(t->dir, &o);
    nt_spool_stats_get(sp, &s);
    assert_int_equal(s.dropped, 0);
    assert_stats(sp, 13, 31, 900, 18);
    nt_spool_close(sp);
}

/* The only segment (the one being appended to) is dropped. */
static void test_drop_active_segment(void **state)
{
    tctx *t = *state;
    nt_spool_opts o = small_opts(100, 100, NT_FULL_DROP_OLDEST);
    nt_spool *sp = open_ok(t->dir, &o);
    append_n(sp, 3, 34);
    nt_spool_stats s;
    nt_spool_stats_get(sp, &s);
    assert_int_equal(s.dropped, 2);
    assert_stats(sp, 3, 4, 50, 1);
    assert_segs(t->dir, "3:50");
    assert_reads(sp, 0, 34, 3, 3);
    nt_spool_close(sp);
}

/* ------------------------------------------------------------------------ */
/* Sync policies, options, lock, errors.                                    */

static void test_sync_policies(void **state)
{
    tctx *t = *state;
    nt_spool_opts o;
    nt_spool_opts_default(&o);

    o.sync = NT_SYNC_NONE;
    nt_spool *sp = open_ok(t->dir, &o);
    append_n(sp, 10, 8);
    assert_int_equal(nt__spool_syncs(sp), 0);
    assert_int_equal(nt_spool_sync(sp), NT_OK);
    assert_int_equal(nt__spool_syncs(sp), 1);
    assert_int_equal(nt_spool_sync(sp), NT_OK); /* nothing new */
    assert_int_equal(nt__spool_syncs(sp), 1);
    nt_spool_close(sp);

    o.sync = NT_SYNC_ALWAYS;
    sp = open_ok(t->dir, &o);
    append_n(sp, 10, 8);
    assert_int_equal(nt__spool_syncs(sp), 10);
    nt_spool_close(sp);

    o.sync = NT_SYNC_BATCH;
    o.sync_interval_ms = 10000;
    sp = open_ok(t->dir, &o);
    append_n(sp, 10, 8);
    assert_int_equal(nt__spool_syncs(sp), 0);
    assert_int_equal(nt_spool_sync(sp), NT_OK);
    assert_int_equal(nt__spool_syncs(sp), 1);
    nt_spool_close(sp);

    o.sync_interval_ms = 50;
    sp = open_ok(t->dir, &o);
    append_n(sp, 5, 8);
    assert_int_equal(nt__spool_syncs(sp), 0);
    struct timespec ts = {0, 60 * 1000000L};
    nanosleep(&ts, NULL);
    append_n(sp, 1, 8); /* the interval has passed: this append syncs */
    assert_int_equal(nt__spool_syncs(sp), 1);
    append_n(sp, 3, 8);
    assert_int_equal(nt__spool_syncs(sp), 1);
    nt_spool_close(sp);

    sp = open_ok(t->dir, &o);
    assert_stats(sp, 1, 40, 39 * 24, 39);
    nt_spool_close(sp);
}

static void test_bad_arguments(void **state)
{
    tctx *t = *state;
    nt_spool *sp = NULL;
    nt_spool_opts o;
    nt_spool_opts_default(&o);
    o.sync = 3;
    assert_int_equal(nt_spool_open(t->dir, &o, &sp, g_err, sizeof g_err),
                     NT_EARG);
    assert_non_null(strstr(g_err, "invalid options (sync 3, full 0)"));
    assert_int_equal(nt_spool_open(NULL, NULL, &sp, g_err, sizeof g_err),
                     NT_EARG);

    /* A regular file where the directory should be, and under a parent. */
    char p[512];
    snprintf(p, sizeof p, "%s/file", t->base);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(nt_spool_open(p, NULL, &sp, g_err, sizeof g_err),
                     NT_EIO);
    char want[2048];
    snprintf(want, sizeof want, "spool %s: not a directory", p);
    assert_string_equal(g_err, want);
    char q[600];
    snprintf(q, sizeof q, "%s/sub", p);
    assert_int_equal(nt_spool_open(q, NULL, &sp, g_err, sizeof g_err),
                     NT_EIO);
    snprintf(want, sizeof want,
             "spool %s: cannot create directory %s: %s", q, q,
             strerror(ENOTDIR));
    assert_string_equal(g_err, want);

    assert_int_equal(nt_spool_append(NULL, "x", 1, NULL), NT_EARG);
    assert_int_equal(nt_spool_ack(NULL, 1), NT_EARG);
    assert_int_equal(nt_spool_sync(NULL), NT_EARG);
}

/* A second process cannot open a spool in use. */
static void test_lock(void **state)
{
    tctx *t = *state;
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        nt_spool *sp = NULL;
        char e[256];
        close(go[1]);
        close(ready[0]);
        int ok = nt_spool_open(t->dir, NULL, &sp, e, sizeof e) == NT_OK;
        char c = ok ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1)
            _exit(2);
        if (read(go[0], &c, 1) < 0) /* parent closes: EOF */
            _exit(2);
        nt_spool_close(sp);
        _exit(ok ? 0 : 1);
    }
    close(go[0]);
    close(ready[1]);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    nt_spool *sp = NULL;
    assert_int_equal(nt_spool_open(t->dir, NULL, &sp, g_err, sizeof g_err),
                     NT_EIO);
    char want[1024];
    snprintf(want, sizeof want, "spool %s is in use by process %ld", t->dir,
             (long)pid);
    assert_string_equal(g_err, want);
    close(go[1]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(ready[0]);
    sp = open_ok(t->dir, NULL);
    nt_spool_close(sp);
}

/* ------------------------------------------------------------------------ */
/* Performance sanity (printed, not asserted) and the crash simulation.    */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void perf_run(tctx *t, uint8_t sync, uint64_t n, const char *what)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/perf-%u", t->base, (unsigned)sync);
    nt_spool_opts o;
    nt_spool_opts_default(&o);
    o.sync = sync;
    nt_spool *sp = open_ok(dir, &o);
    uint8_t buf[32];
    memset(buf, 0x5a, sizeof buf);
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++) {
        uint64_t seq;
        buf[0] = (uint8_t)i;
        assert_int_equal(nt_spool_append(sp, buf, sizeof buf, &seq), NT_OK);
    }
    assert_int_equal(nt_spool_sync(sp), NT_OK);
    double dt = now_s() - t0;
    printf("spool perf: %-6s %7" PRIu64 " appends of 32 bytes: %.3f s, "
           "%.0f appends/s (%" PRIu64 " fdatasyncs)\n",
           what, n, dt, (double)n / dt, nt__spool_syncs(sp));
    nt_spool_stats s;
    nt_spool_stats_get(sp, &s);
    assert_int_equal(s.records, n);
    assert_int_equal(s.bytes, n * 48);
    nt_spool_close(sp);
}

static void test_perf(void **state)
{
    tctx *t = *state;
    const char *e = getenv("SPOOL_PERF_ALWAYS_N");
    uint64_t always_n = e ? strtoull(e, NULL, 10) : 1000;
    perf_run(t, NT_SYNC_NONE, 100000, "NONE");
    perf_run(t, NT_SYNC_BATCH, 100000, "BATCH");
    perf_run(t, NT_SYNC_ALWAYS, always_n, "ALWAYS");
}

/* Progress a crash child shares with the parent (a MAP_SHARED file). */
typedef struct crash_prog {
    volatile uint64_t appended;     /* last seq whose append returned */
    volatile uint64_t ack_inflight; /* ack being made */
    volatile uint64_t ack_done;     /* last ack that returned */
} crash_prog;

static void crash_child(const char *dir, uint8_t sync, crash_prog *pg)
{
    nt_spool_opts o;
    nt_spool_opts_default(&o);
    o.sync = sync;
    o.segment_bytes = 2048;
    nt_spool *sp = NULL;
    char e[512];
    if (nt_spool_open(dir, &o, &sp, e, sizeof e) != NT_OK)
        _exit(2);
    static uint8_t buf[BIG_MAX];
    for (;;) {
        nt_spool_stats s;
        nt_spool_stats_get(sp, &s);
        size_t len = pattern(s.next_seq, buf, BIG_FIXED);
        uint64_t seq;
        if (nt_spool_append(sp, buf, len, &seq) != NT_OK)
            _exit(3);
        pg->appended = seq;
        if (seq % 4 == 0) {
            pg->ack_inflight = seq - 3;
            if (nt_spool_ack(sp, seq - 3) != NT_OK)
                _exit(4);
            pg->ack_done = seq - 3;
        }
    }
}

static void test_crash_kill9(void **state)
{
    tctx *t = *state;
    char pf[400];
    snprintf(pf, sizeof pf, "%s/progress", t->base);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    printf("crash test seed %u\n", seed);
    srand(seed);
    uint64_t total_trunc = 0, total_records = 0, kills_torn = 0;
    int fd = open(pf, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, sizeof(crash_prog)), 0);
    crash_prog *pg = mmap(NULL, sizeof *pg, PROT_READ | PROT_WRITE,
                          MAP_SHARED, fd, 0);
    assert_true(pg != MAP_FAILED);
    close(fd);
    for (int iter = 0; iter < 20; iter++) {
        /* The spool carries on from the previous iteration; the sync
         * policy rotates. */
        uint8_t sync = (uint8_t)(iter % 3);
        pg->appended = 0;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            crash_child(t->dir, sync, pg);
        /* Wait for the first append, then kill at a random moment. */
        for (int i = 0; i < 5000 && pg->appended == 0; i++) {
            struct timespec ts = {0, 1000000L};
            nanosleep(&ts, NULL);
        }
        assert_true(pg->appended > 0);
        struct timespec ts = {0, (long)(rand() % 50000) * 1000L};
        nanosleep(&ts, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        uint64_t c = pg->appended, ad = pg->ack_done,
                 ai = pg->ack_inflight;

        nt_spool *sp = open_ok(t->dir, NULL);
        nt_spool_stats s;
        nt_spool_stats_get(sp, &s);
        /* Every append that returned is there; at most one more. */
        assert_true(s.next_seq - 1 >= c && s.next_seq - 1 <= c + 1);
        /* The ack point is the last finished ack or the one under way. */
        assert_true(s.first_seq - 1 == ad || s.first_seq - 1 == ai);
        col cl = {0, 0, 0, BIG_FIXED, 0, 0};
        assert_int_equal(nt_spool_read(sp, 0, collect, &cl), NT_OK);
        assert_int_equal(cl.bad, 0);
        assert_int_equal(cl.n, s.records);
        if (cl.n) {
            assert_int_equal(cl.first, s.first_seq);
            assert_int_equal(cl.last, s.next_seq - 1);
        }
        if (getenv("SPOOL_CRASH_VERBOSE"))
            printf("kill %d (sync %u): next_seq %" PRIu64 ", ack %" PRIu64
                   ", truncated %" PRIu64 "\n",
                   iter, (unsigned)sync, s.next_seq, s.first_seq - 1,
                   s.truncated);
        total_trunc += s.truncated;
        kills_torn += s.truncated > 0;
        total_records = s.next_seq - 1;
        /* The next child starts from this state. */
        pg->ack_done = pg->ack_inflight = s.first_seq - 1;
        nt_spool_close(sp);
    }
    munmap(pg, sizeof *pg);
    printf("crash test: 20 kills, %" PRIu64 " records appended in all, %"
           PRIu64 " torn bytes truncated after %" PRIu64 " kills\n",
           total_records, total_trunc, kills_torn);
}

/* write_buffer: appends are held in memory (the segment file does not
 * grow) until a read, flush, sync or close writes them; a process killed
 * after nt_spool_flush keeps every flushed record, and loses only those
 * appended after it (never a torn or corrupt spool). */
static void test_write_buffer(void **state)
{
    tctx *t = *state;
    char seg[400];
    nt_spool_opts o = small_opts(1u << 20, 1u << 20, NT_FULL_REJECT);
    o.write_buffer = 4096;
    nt_spool *sp = open_ok(t->dir, &o);
    seg_path(t, 1, seg, sizeof seg);
    append_n(sp, 5, 20);
    assert_stats(sp, 1, 6, 180, 5); /* counted, not yet written */
    assert_int_equal(file_size(seg), 0);
    assert_reads(sp, 0, 20, 1, 5);  /* a read writes them first */
    assert_int_equal(file_size(seg), 180);
    append_n(sp, 2, 20);
    assert_int_equal(file_size(seg), 180);
    assert_int_equal(nt_spool_flush(sp), NT_OK);
    assert_int_equal(file_size(seg), 252);
    /* More than the buffer holds at once: written as it fills. */
    append_n(sp, 200, 20);
    assert_true(file_size(seg) >= 252 + 7200 - 4096);
    nt_spool_close(sp);             /* close writes the rest */
    assert_int_equal(file_size(seg), 252 + 7200);
    sp = open_ok(t->dir, &o);
    assert_stats(sp, 1, 208, 252 + 7200, 207);
    assert_reads(sp, 0, 20, 1, 207);
    nt_spool_close(sp);

    /* A child flushes 3 records, appends 4 more and is killed: the spool
     * reopens with exactly the flushed ones after the first 207. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        nt_spool *c = NULL;
        char e[256];
        if (nt_spool_open(t->dir, &o, &c, e, sizeof e) != NT_OK)
            _exit(2);
        uint8_t rec[20] = {0};
        uint64_t q;
        for (int i = 0; i < 3; i++)
            if (nt_spool_append(c, rec, sizeof rec, &q) != NT_OK)
                _exit(3);
        if (nt_spool_flush(c) != NT_OK)
            _exit(4);
        for (int i = 0; i < 4; i++)
            if (nt_spool_append(c, rec, sizeof rec, &q) != NT_OK)
                _exit(5);
        raise(SIGKILL);
        _exit(6);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    sp = open_ok(t->dir, &o);
    nt_spool_stats st;
    nt_spool_stats_get(sp, &st);
    assert_int_equal(st.next_seq, 211);
    assert_int_equal(st.truncated, 0);
    nt_spool_close(sp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_create_and_perms, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_read_ack, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_truncated_record, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_torn_partial_header, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_torn_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_flipped_payload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_torn_flipped_length, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_torn_last_segment, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_middle_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_acked_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_segment_tail, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_missing_segment, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_damaged_ack_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_reject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_drop_oldest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drop_active_segment, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sync_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_perf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_kill9, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
