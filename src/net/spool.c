/*
 * spool.c - the disk spool of net.h: an append-only log of records in
 * segment files, bounded in size, crash-safe (a CRC per record, torn tails
 * truncated at open), with a persisted acknowledgement point.
 *
 * On disk, in the spool directory (0700):
 *   NNNNNNNNNNNNNNNNNNNN.seg  segment files (0600), named by the sequence
 *       number of their first record (20 decimal digits), holding records
 *       back to back, little-endian:
 *         0  u32 len      payload bytes (<= NT_MAX_PAYLOAD)
 *         4  u32 crc      CRC-32 (IEEE) of seq (8 bytes), len (4), payload
 *         8  u64 seq      consecutive from 1 over the whole spool
 *        16  payload
 *   ack   16 bytes: "IFAK", u32 CRC-32 of the next 8 bytes, u64 ack point
 *       (every record <= it was acknowledged or dropped).  Replaced
 *       atomically (ack.tmp, then rename).  It also keeps next_seq when
 *       every segment has been deleted.
 *   lock  holds a POSIX write lock (fcntl) while a process has the spool
 *       open; a second process gets an error naming the holder.
 *
 * Durability.  NT_SYNC_ALWAYS: fdatasync after every append and on every
 * ack-file write (plus the directory when a file is created or renamed).
 * NT_SYNC_BATCH: an append fdatasyncs when sync_interval_ms has passed since
 * the last sync (there is no timer: the caller calls nt_spool_sync from its
 * own timer to bound the window when appends stop); ack-file writes are
 * made durable at that sync point, except before segments are deleted,
 * which is always preceded by a durable ack write.  NT_SYNC_NONE: no syncs
 * (nt_spool_sync still syncs).  A process crash loses nothing that an
 * append returned under any policy (the page cache survives it), except
 * with the write_buffer option: appends are then copied to a buffer and
 * written with one write at the next read, sync, nt_spool_flush, segment
 * roll-over or close, or when the buffer is full (dropped unwritten when
 * the last segment is retired: acknowledged); a crash loses what the
 * buffer held, never a record that was read.
 *
 * Recovery on open.  Segments whose every record is <= the ack point are
 * deleted unread.  The others are scanned in order; each record is checked
 * (length bound, fits in the file, CRC, seq consecutive).  At a bad record
 * the scan searches the rest of the file for the next valid record with a
 * higher sequence number:
 *   - none, in the last segment: a torn tail (a crash in the middle of a
 *     write, or garbage after the last record).  It is truncated
 *     (ftruncate) and its bytes are counted in stats.truncated.
 *   - found, and every record in between is acknowledged: skipped (those
 *     records are not needed any more).
 *   - otherwise unacknowledged records would be lost: the open fails with
 *     NT_ECORRUPT and a message naming the file, the byte offset, the reason
 *     and the sequence numbers concerned.  Nothing is modified; an operator
 *     decides (inspect, or move the directory away to start afresh).
 * Missing sequence numbers between two segment files are treated the same
 * way.  Records missing before the oldest segment are taken as acknowledged:
 * the spool deletes only acknowledged (or dropped) segments, oldest first,
 * after writing the ack point.  A damaged ack file makes every record on
 * disk unacknowledged again (duplicates, never loss); with no segment left
 * it is NT_ECORRUPT, since next_seq is then unknown.
 *
 * A spool is used by one thread at a time (the caller serialises calls);
 * the callback of nt_spool_read must not call back into the same spool.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "net_int.h"
#include "platform.h"

#define SP_HDR 16u                       /* record header bytes */
#define SP_NAME_DIGITS 20                /* digits of a segment name */
#define SP_ACK_BYTES 16u                 /* size of the ack file */
#define SP_READ_CHUNK (64u * 1024u)      /* minimum read-buffer size */
#define SP_ERR 512                       /* size of the last-error text */

static const char SP_ACK[] = "ack";
static const char SP_ACK_TMP[] = "ack.tmp";
static const char SP_LOCK[] = "lock";

/* One segment file. */
typedef struct sp_seg {
    uint64_t start;    /* sequence number in the file name */
    uint64_t size;     /* file size in bytes */
    uint64_t end;      /* end of its valid records (== size but for a
                          skipped damaged tail of an acknowledged part) */
    uint64_t read_off; /* offset where a reader may start walking */
    uint64_t read_seq; /* sequence number of the record there */
} sp_seg;

/* A read cursor: where an nt_spool_read walk stopped (the record with
 * sequence number seq starts at byte off of the segment named seg_start),
 * with that segment's file kept open, so the next read that starts at or
 * after seq goes on from there instead of re-walking the segment from its
 * start (sending is then linear in the records sent, not quadratic in the
 * unacknowledged backlog).  Two cursors: the sender's walk and another
 * reader (the device's acknowledgement count) do not evict each other. */
typedef struct sp_cur {
    int fd;             /* read-only fd of the segment, or -1: unused */
    uint64_t seg_start; /* its segment */
    uint64_t off;       /* file offset of the record seq */
    uint64_t seq;
    uint64_t used;      /* sp->cur_tick at the last use */
} sp_cur;

#define SP_NCUR 2

struct nt_spool {
    char *dir;            /* owned: the directory path (for messages) */
    int dirfd;            /* the directory, for *at calls and fsync */
    int lockfd;           /* holds the fcntl lock */
    int ackfd;            /* the ack file open for in-place updates, or -1 */
    int fd;               /* last segment open for appending, or -1 */
    nt_spool_opts o;      /* effective options */
    sp_seg *segs;         /* owned: segments by ascending start */
    size_t nseg, segcap;
    uint64_t ack;         /* every record <= ack is acknowledged/dropped */
    uint64_t next_seq;    /* sequence number of the next append */
    uint64_t bytes;       /* sum of segment file sizes */
    uint64_t dropped;     /* records dropped by NT_FULL_DROP_OLDEST */
    uint64_t truncated;   /* torn-tail bytes removed at open */
    uint64_t syncs;       /* fdatasync calls on segment data */
    uint64_t last_sync_ns;/* monotonic time of the last sync point */
    int dirty;            /* appended data not yet synced */
    int ack_dirty;        /* ack file written but not yet synced */
    int dir_dirty;        /* directory entries changed since last sync */
    int broken;           /* an I/O error left the state unknown */
    uint8_t *rbuf;        /* owned: read buffer (scan and nt_spool_read) */
    size_t rcap;
    sp_cur cur[SP_NCUR];  /* where recent nt_spool_read walks stopped */
    uint64_t cur_tick;    /* use counter (least recently used cursor) */
    uint8_t *wb;          /* owned: appends not yet written (write_buffer
                             option; the last segment's tail), or NULL */
    size_t wblen;
    char err[SP_ERR];     /* last error text */
};

/* ------------------------------------------------------------------------ */
/* Small helpers.                                                           */

/* CRC-32 (IEEE, reflected 0xEDB88320), incremental: start with crc = 0
 * and feed the pieces in order.  Slicing by 8 (eight 256-entry tables,
 * built once): the spool checks every record it appends and every record
 * it hands to a reader, so this is on the path of every message twice.
 * sp_crc_tab[0][i] is i shifted through the polynomial 8 times;
 * sp_crc_tab[k][i] extends sp_crc_tab[k-1][i] by one zero byte. */
static uint32_t sp_crc_tab[8][256];
static pthread_once_t sp_crc_once = PTHREAD_ONCE_INIT;

static void sp_crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int b = 0; b < 8; b++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        sp_crc_tab[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (uint32_t i = 0; i < 256; i++)
            sp_crc_tab[k][i] = (sp_crc_tab[k - 1][i] >> 8) ^
                               sp_crc_tab[0][sp_crc_tab[k - 1][i] & 0xFFu];
}

static uint32_t crc_update(uint32_t crc, const uint8_t *p, size_t n)
{
    (void)pthread_once(&sp_crc_once, sp_crc_init);
    uint32_t c = ~crc;
    while (n >= 8) {
        uint32_t a = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                          (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t b = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
                     (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        c = sp_crc_tab[7][a & 0xFFu] ^ sp_crc_tab[6][(a >> 8) & 0xFFu] ^
            sp_crc_tab[5][(a >> 16) & 0xFFu] ^ sp_crc_tab[4][a >> 24] ^
            sp_crc_tab[3][b & 0xFFu] ^ sp_crc_tab[2][(b >> 8) & 0xFFu] ^
            sp_crc_tab[1][(b >> 16) & 0xFFu] ^ sp_crc_tab[0][b >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = sp_crc_tab[0][(c ^ *p++) & 0xFFu] ^ (c >> 8);
    return ~c;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The CRC of a record: over seq (8 bytes LE), len (4 bytes LE), payload. */
static uint32_t rec_crc(uint64_t seq, uint32_t len, const uint8_t *payload)
{
    uint8_t h[12];
    put64(h, seq);
    put32(h + 8, len);
    return crc_update(crc_update(0, h, sizeof h), payload, len);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define SP_ERRF(sp, ...) nt__errf((sp)->err, sizeof (sp)->err, __VA_ARGS__)

static void seg_name(char *buf, size_t cap, uint64_t start)
{
    snprintf(buf, cap, "%020" PRIu64 ".seg", start);
}

/* Parses a segment file name; returns its start seq or 0 when the name is
 * not exactly 20 digits + ".seg". */
static uint64_t seg_parse(const char *name)
{
    uint64_t v = 0;
    for (int i = 0; i < SP_NAME_DIGITS; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return strcmp(name + SP_NAME_DIGITS, ".seg") == 0 ? v : 0;
}

/* The last sequence number segment k may hold: the next one's start - 1,
 * or next_seq - 1 for the last segment. */
static uint64_t seg_last(const nt_spool *sp, size_t k)
{
    return k + 1 < sp->nseg ? sp->segs[k + 1].start - 1 : sp->next_seq - 1;
}

static int seg_push(nt_spool *sp, const sp_seg *s)
{
    if (sp->nseg == sp->segcap) {
        size_t cap = sp->segcap ? sp->segcap * 2 : 16;
        sp_seg *n = realloc(sp->segs, cap * sizeof *n);
        if (!n)
            return -1;
        sp->segs = n;
        sp->segcap = cap;
    }
    sp->segs[sp->nseg++] = *s;
    return 0;
}

static int seg_cmp(const void *a, const void *b)
{
    uint64_t x = ((const sp_seg *)a)->start, y = ((const sp_seg *)b)->start;
    return x < y ? -1 : x > y;
}

/* fdatasync with EINTR retried; 0 or -1 with errno. */
static int sync_fd(int fd)
{
    int r;
    do
        r = fdatasync(fd);
    while (r != 0 && errno == EINTR);
    return r;
}

/* ------------------------------------------------------------------------ */
/* A buffered sequential reader over one file (pread; sp->rbuf).           */

typedef struct sp_rd {
    nt_spool *sp;
    int fd;
    size_t lo, hi;   /* valid bytes: sp->rbuf[lo..hi) */
    uint64_t pos;    /* file offset of rbuf[lo] */
    uint64_t limit;  /* never read at or beyond this offset */
} sp_rd;

/* Makes n bytes (n <= SP_HDR + NT_MAX_PAYLOAD) available at rbuf + lo, or
 * fewer when the limit comes first.  Returns the bytes available, or -1 on a
 * read or allocation error (message in sp->err). */
static long rd_need(sp_rd *r, size_t n, const char *name)
{
    nt_spool *sp = r->sp;
    if (r->hi - r->lo >= n)
        return (long)(r->hi - r->lo);
    if (r->lo > 0) {
        memmove(sp->rbuf, sp->rbuf + r->lo, r->hi - r->lo);
        r->hi -= r->lo;
        r->lo = 0;
    }
    if (sp->rcap < n) {
        size_t cap = n < SP_READ_CHUNK ? SP_READ_CHUNK : n;
        uint8_t *b = realloc(sp->rbuf, cap);
        if (!b) {
            SP_ERRF(sp, "spool %s: out of memory", sp->dir);
            return -1;
        }
        sp->rbuf = b;
        sp->rcap = cap;
    }
    while (r->hi < n) {
        uint64_t off = r->pos + r->hi;
        if (off >= r->limit)
            break;
        size_t want = sp->rcap - r->hi;
        if ((uint64_t)want > r->limit - off)
            want = (size_t)(r->limit - off);
        ssize_t got = pread(r->fd, sp->rbuf + r->hi, want, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            SP_ERRF(sp, "spool %s/%s: read: %s", sp->dir, name,
                    strerror(errno));
            return -1;
        }
        if (got == 0)
            break;
        r->hi += (size_t)got;
    }
    return (long)(r->hi - r->lo);
}

static void rd_skip(sp_rd *r, size_t n)
{
    r->lo += n;
    r->pos += n;
}

/* Checks the record at the reader's position, which should carry seq in
 * [seq_lo, seq_hi] and end by r->limit.  Returns 1 when valid (*seq, *len
 * set; the record's bytes are at rbuf + lo), 0 when not (*why says how),
 * -1 on a read error. */
static int rec_check(sp_rd *r, const char *name, uint64_t seq_lo,
                     uint64_t seq_hi, uint64_t *seq, uint32_t *len,
                     const char **why)
{
    long avail = rd_need(r, SP_HDR, name);
    if (avail < 0)
        return -1;
    if ((size_t)avail < SP_HDR) {
        *why = "incomplete record header";
        return 0;
    }
    const uint8_t *p = r->sp->rbuf + r->lo;
    uint32_t n = get32(p);
    uint64_t s = get64(p + 8);
    if (n > NT_MAX_PAYLOAD) {
        *why = "record length exceeds the maximum";
        return 0;
    }
    if (r->limit - r->pos < (uint64_t)SP_HDR + n) {
        *why = "record runs past the end of the file";
        return 0;
    }
    if (s < seq_lo || s > seq_hi) {
        /* Checked before the CRC only to make the resync search cheap; a
         * record that fails both reports the sequence first. */
        *why = "unexpected sequence number";
        return 0;
    }
    avail = rd_need(r, SP_HDR + n, name);
    if (avail < 0)
        return -1;
    if ((size_t)avail < SP_HDR + n) {
        *why = "record runs past the end of the file";
        return 0;
    }
    p = r->sp->rbuf + r->lo;
    if (rec_crc(s, n, p + SP_HDR) != get32(p + 4)) {
        *why = "CRC mismatch";
        return 0;
    }
    *seq = s;
    *len = n;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* The ack file and sync points.                                            */

/* Replaces the ack file with value `ack`; durable: fdatasync the file before
 * the rename and fsync the directory after it.  NT_OK or NT_EIO. */
static nt_status ack_write(nt_spool *sp, uint64_t ack, int durable)
{
    uint8_t b[SP_ACK_BYTES];
    memcpy(b, "IFAK", 4);
    put64(b + 8, ack);
    put32(b + 4, crc_update(0, b + 8, 8));
    int e = 0;
    int fd = openat(sp->dirfd, SP_ACK_TMP,
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = errno;
    } else {
        ssize_t w;
        do
            w = write(fd, b, sizeof b);
        while (w < 0 && errno == EINTR);
        if (w != (ssize_t)sizeof b)
            e = w < 0 ? errno : EIO;
        else if (durable && sync_fd(fd) != 0)
            e = errno;
        if (close(fd) != 0 && e == 0)
            e = errno;
    }
    if (e == 0 && renameat(sp->dirfd, SP_ACK_TMP, sp->dirfd, SP_ACK) != 0)
        e = errno;
    if (e == 0 && sp->ackfd >= 0) { /* it names the replaced file now */
        close(sp->ackfd);
        sp->ackfd = -1;
    }
    if (e == 0 && durable && fsync(sp->dirfd) != 0)
        e = errno;
    if (e != 0) {
        SP_ERRF(sp, "spool %s/%s: cannot write the ack point: %s", sp->dir,
                SP_ACK, strerror(e));
        return NT_EIO;
    }
    if (durable) {
        sp->ack_dirty = 0;
    } else {
        sp->ack_dirty = 1;
        sp->dir_dirty = 1;
    }
    return NT_OK;
}

/* Moves the ack point without deleting segments: overwrites the 16 bytes
 * of the ack file in place (one pwrite on a kept descriptor instead of a
 * create + rename per acknowledgement); durable: fdatasync it.  A write
 * torn by a power loss leaves a damaged ack file, which recovery treats
 * as "nothing acknowledged" (duplicates, never loss); segments exist
 * whenever this runs (the ack point is below next_seq and no segment is
 * deleted), so the damaged file never hides next_seq.  Falls back to
 * ack_write when the file is missing.  NT_OK or NT_EIO. */
static nt_status ack_update(nt_spool *sp, uint64_t ack, int durable)
{
    if (sp->ackfd < 0)
        sp->ackfd = openat(sp->dirfd, SP_ACK, O_RDWR | O_CLOEXEC);
    if (sp->ackfd < 0)
        return ack_write(sp, ack, durable);
    uint8_t b[SP_ACK_BYTES];
    memcpy(b, "IFAK", 4);
    put64(b + 8, ack);
    put32(b + 4, crc_update(0, b + 8, 8));
    ssize_t w;
    do
        w = pwrite(sp->ackfd, b, sizeof b, 0);
    while (w < 0 && errno == EINTR);
    int e = w == (ssize_t)sizeof b ? 0 : w < 0 ? errno : EIO;
    if (e == 0 && durable && sync_fd(sp->ackfd) != 0)
        e = errno;
    if (e != 0) {
        SP_ERRF(sp, "spool %s/%s: cannot write the ack point: %s", sp->dir,
                SP_ACK, strerror(e));
        return NT_EIO;
    }
    if (!durable)
        sp->ack_dirty = 1;
    return NT_OK;
}

/* Writes the buffered appends (write_buffer option) to the last segment
 * with one write (looping on short writes).  Those appends have returned
 * NT_OK, so a failure breaks the spool (their records would be lost).
 * NT_OK or NT_EIO. */
static nt_status wb_flush(nt_spool *sp)
{
    size_t off = 0;
    while (off < sp->wblen) {
        ssize_t w = write(sp->fd, sp->wb + off, sp->wblen - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            sp->broken = 1;
            SP_ERRF(sp, "spool %s: write of %zu buffered bytes: %s", sp->dir,
                    sp->wblen - off, w < 0 ? strerror(errno) : "no progress");
            return NT_EIO;
        }
        off += (size_t)w;
    }
    sp->wblen = 0;
    return NT_OK;
}

/* A sync point: fdatasync of the appended data, the ack file and the
 * directory, whatever is pending.  A failed data sync breaks the spool
 * (after a failed fdatasync the kernel may have dropped the pages). */
static nt_status sync_now(nt_spool *sp)
{
    if (sp->wblen && wb_flush(sp) != NT_OK)
        return NT_EIO;
    if (sp->fd >= 0 && sp->dirty) {
        if (sync_fd(sp->fd) != 0) {
            sp->broken = 1;
            SP_ERRF(sp, "spool %s: fdatasync: %s", sp->dir, strerror(errno));
            return NT_EIO;
        }
        sp->syncs++;
    }
    sp->dirty = 0;
    if (sp->ack_dirty) {
        int fd = openat(sp->dirfd, SP_ACK, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || sync_fd(fd) != 0) {
            SP_ERRF(sp, "spool %s/%s: fsync: %s", sp->dir, SP_ACK,
                    strerror(errno));
            if (fd >= 0)
                close(fd);
            return NT_EIO;
        }
        close(fd);
        sp->ack_dirty = 0;
    }
    if (sp->dir_dirty) {
        if (fsync(sp->dirfd) != 0) {
            SP_ERRF(sp, "spool %s: fsync of the directory: %s", sp->dir,
                    strerror(errno));
            return NT_EIO;
        }
        sp->dir_dirty = 0;
    }
    sp->last_sync_ns = now_ns();
    return NT_OK;
}

static void cur_prune(nt_spool *sp);

/* Deletes the n oldest segments after making `ack` (>= their last seq) the
 * durable (unless NT_SYNC_NONE) ack point.  NT_OK or NT_EIO (message in
 * sp->err; segments not yet unlinked stay). */
static nt_status retire(nt_spool *sp, size_t n, uint64_t ack)
{
    nt_status st = ack_write(sp, ack, sp->o.sync != NT_SYNC_NONE);
    if (st != NT_OK)
        return st;
    sp->ack = ack;
    size_t done = 0;
    for (; done < n; done++) {
        char name[32];
        seg_name(name, sizeof name, sp->segs[done].start);
        if (done == sp->nseg - 1 && sp->fd >= 0) {
            sp->wblen = 0; /* acknowledged: never needs writing */
            close(sp->fd);
            sp->fd = -1;
            sp->dirty = 0;
        }
        if (unlinkat(sp->dirfd, name, 0) != 0 && errno != ENOENT) {
            SP_ERRF(sp, "spool %s/%s: cannot delete: %s", sp->dir, name,
                    strerror(errno));
            st = NT_EIO;
            break;
        }
        sp->bytes -= sp->segs[done].size;
    }
    if (done > 0) {
        memmove(sp->segs, sp->segs + done,
                (sp->nseg - done) * sizeof *sp->segs);
        sp->nseg -= done;
        cur_prune(sp);
        if (sp->o.sync != NT_SYNC_NONE)
            sp->dir_dirty = 1;
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* Open and recovery.                                                       */

void nt_spool_opts_default(nt_spool_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->max_bytes = 64u * 1024u * 1024u;
    o->segment_bytes = 4u * 1024u * 1024u;
    o->sync = NT_SYNC_BATCH;
    o->sync_interval_ms = 50;
    o->full = NT_FULL_REJECT;
}

/* Creates dir and its missing parents with mode 0700 (like mkdir -p) and
 * checks that it is a directory.  0, or -1 with the message in err. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
    if (pl_mkdirs(dir) != 0) {
        int e = errno;
        struct stat st;
        if (e == ENOTDIR && stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
            nt__errf(err, errlen, "spool %s: not a directory", dir);
        else
            nt__errf(err, errlen, "spool %s: cannot create directory %s: %s",
                     dir, dir, strerror(e));
        return -1;
    }
    return 0;
}

/* Takes the fcntl write lock on dir/lock.  NT_OK, or NT_EIO naming the
 * process that holds it. */
static nt_status take_lock(nt_spool *sp, char *err, size_t errlen)
{
    sp->lockfd = openat(sp->dirfd, SP_LOCK, O_RDWR | O_CREAT | O_CLOEXEC,
                        0600);
    if (sp->lockfd < 0) {
        nt__errf(err, errlen, "spool %s/%s: %s", sp->dir, SP_LOCK,
             strerror(errno));
        return NT_EIO;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(sp->lockfd, F_SETLK, &fl) == 0)
        return NT_OK;
    int e = errno;
    if (e == EACCES || e == EAGAIN) {
        memset(&fl, 0, sizeof fl);
        fl.l_type = F_WRLCK;
        fl.l_whence = SEEK_SET;
        long pid = fcntl(sp->lockfd, F_GETLK, &fl) == 0 ? (long)fl.l_pid : 0;
        nt__errf(err, errlen, "spool %s is in use by process %ld", sp->dir, pid);
    } else {
        nt__errf(err, errlen, "spool %s/%s: cannot lock: %s", sp->dir, SP_LOCK,
             strerror(e));
    }
    return NT_EIO;
}

/* Reads the ack file: 1 with *ack when valid, 0 when missing, -1 when
 * present but damaged, -2 on a read error (message in err). */
static int ack_read(nt_spool *sp, uint64_t *ack, char *err, size_t errlen)
{
    int fd = openat(sp->dirfd, SP_ACK, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        nt__errf(err, errlen, "spool %s/%s: %s", sp->dir, SP_ACK,
             strerror(errno));
        return -2;
    }
    uint8_t b[SP_ACK_BYTES + 1];
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, b + got, sizeof b - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            nt__errf(err, errlen, "spool %s/%s: read: %s", sp->dir, SP_ACK,
                 strerror(errno));
            close(fd);
            return -2;
        }
        if (r == 0 || (got += (size_t)r) == sizeof b)
            break;
    }
    close(fd);
    if (got != SP_ACK_BYTES || memcmp(b, "IFAK", 4) != 0 ||
        get32(b + 4) != crc_update(0, b + 8, 8))
        return -1;
    *ack = get64(b + 8);
    return 1;
}

/* Lists the segment files of the directory into sp->segs (sorted) with
 * their sizes.  NT_OK, NT_EIO/NT_ENOMEM, or NT_ECORRUPT for a segment named
 * 0 (message in err). */
static nt_status list_segments(nt_spool *sp, char *err, size_t errlen)
{
    int dfd = dup(sp->dirfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        nt__errf(err, errlen, "spool %s: cannot list: %s", sp->dir,
             strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return NT_EIO;
    }
    rewinddir(d);
    nt_status st = NT_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n != SP_NAME_DIGITS + 4 || strcmp(e->d_name + n - 4, ".seg") != 0)
            continue;
        sp_seg s;
        memset(&s, 0, sizeof s);
        s.start = seg_parse(e->d_name);
        if (s.start == 0) {
            nt__errf(err, errlen, "spool %s/%s: bad segment file name", sp->dir,
                 e->d_name);
            st = NT_ECORRUPT;
            break;
        }
        struct stat sb;
        if (fstatat(sp->dirfd, e->d_name, &sb, 0) != 0) {
            nt__errf(err, errlen, "spool %s/%s: %s", sp->dir, e->d_name,
                 strerror(errno));
            st = NT_EIO;
            break;
        }
        if (!S_ISREG(sb.st_mode)) {
            nt__errf(err, errlen, "spool %s/%s: not a regular file", sp->dir,
                 e->d_name);
            st = NT_ECORRUPT;
            break;
        }
        s.size = s.end = (uint64_t)sb.st_size;
        s.read_seq = s.start;
        if (seg_push(sp, &s) != 0) {
            nt__errf(err, errlen, "spool %s: out of memory", sp->dir);
            st = NT_ENOMEM;
            break;
        }
    }
    closedir(d);
    if (st == NT_OK && sp->nseg > 1)
        qsort(sp->segs, sp->nseg, sizeof *sp->segs, seg_cmp);
    return st;
}

/* Scans segment k from its start, expecting sequence number *expect first
 * (updated to the one after its last valid record).  Fills the segment's
 * end/read_off/read_seq; *torn_at gets the offset of a torn tail (a bad
 * record with no valid one after it) or UINT64_MAX, *torn_why its reason.  Returns NT_OK, NT_EIO,
 * NT_ENOMEM, or NT_ECORRUPT when unacknowledged records would be lost
 * (message in err). */
static nt_status scan_segment(nt_spool *sp, size_t k, uint64_t *expect,
                              uint64_t *torn_at, const char **torn_why,
                              char *err, size_t errlen)
{
    sp_seg *s = &sp->segs[k];
    char name[32];
    seg_name(name, sizeof name, s->start);
    *torn_at = UINT64_MAX;
    int fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        nt__errf(err, errlen, "spool %s/%s: %s", sp->dir, name, strerror(errno));
        return NT_EIO;
    }
    sp_rd r = {sp, fd, 0, 0, 0, s->size};
    uint64_t e = *expect;
    s->read_off = 0;
    s->read_seq = e;
    nt_status st = NT_OK;
    while (r.pos < s->size) {
        uint64_t seq;
        uint32_t len;
        const char *why = NULL;
        int ok = rec_check(&r, name, e, e, &seq, &len, &why);
        if (ok < 0) {
            nt__errf(err, errlen, "%s", sp->err);
            st = NT_EIO;
            break;
        }
        if (ok) {
            rd_skip(&r, SP_HDR + len);
            e++;
            continue;
        }
        /* A bad record at `bad`: look for the next valid one. */
        uint64_t bad = r.pos;
        int found = 0;
        while (r.pos < s->size) {
            const char *w2;
            ok = rec_check(&r, name, e, e + s->size, &seq, &len, &w2);
            if (ok < 0) {
                nt__errf(err, errlen, "%s", sp->err);
                st = NT_EIO;
                goto out;
            }
            if (ok) {
                found = 1;
                break;
            }
            rd_skip(&r, 1);
        }
        if (!found) {
            *torn_at = bad;
            *torn_why = why;
            s->end = bad;
            break;
        }
        if (seq - 1 > sp->ack) {
            nt__errf(err, errlen,
                 "spool corrupt: %s/%s: bad record at offset %" PRIu64
                 " (%s; expected seq %" PRIu64 "); the next valid record "
                 "(seq %" PRIu64 ") is at offset %" PRIu64
                 ": unacknowledged records %" PRIu64 "..%" PRIu64
                 " would be lost",
                 sp->dir, name, bad, why, e, seq, r.pos,
                 e > sp->ack ? e : sp->ack + 1, seq - 1);
            st = NT_ECORRUPT;
            break;
        }
        /* Everything in between is acknowledged: start reads past it. */
        s->read_off = r.pos;
        s->read_seq = seq;
        e = seq;
    }
out:
    close(fd);
    *expect = e;
    return st;
}

/* Truncates segment k to `end` bytes (a torn tail).  NT_OK or NT_EIO. */
static nt_status truncate_tail(nt_spool *sp, size_t k, uint64_t end,
                               char *err, size_t errlen)
{
    char name[32];
    seg_name(name, sizeof name, sp->segs[k].start);
    int fd = openat(sp->dirfd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)end) != 0 ||
        (sp->o.sync != NT_SYNC_NONE && sync_fd(fd) != 0)) {
        nt__errf(err, errlen, "spool %s/%s: cannot truncate the torn tail: %s",
             sp->dir, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NT_EIO;
    }
    close(fd);
    sp->truncated += sp->segs[k].size - end;
    sp->bytes -= sp->segs[k].size - end;
    sp->segs[k].size = sp->segs[k].end = end;
    return NT_OK;
}

/* Recovers the spool state from the directory (see the file comment). */
static nt_status recover(nt_spool *sp, char *err, size_t errlen)
{
    uint64_t ack = 0;
    int have = ack_read(sp, &ack, err, errlen);
    if (have == -2)
        return NT_EIO;
    nt_status st = list_segments(sp, err, errlen);
    if (st != NT_OK)
        return st;
    if (have == -1 && sp->nseg == 0) {
        nt__errf(err, errlen,
             "spool corrupt: %s/%s is damaged and no segment is left: the "
             "next sequence number is unknown",
             sp->dir, SP_ACK);
        return NT_ECORRUPT;
    }
    if (have != 1)
        ack = sp->nseg ? sp->segs[0].start - 1 : 0;
    else if (sp->nseg && sp->segs[0].start - 1 > ack)
        ack = sp->segs[0].start - 1; /* deleted after an ack: see above */
    sp->ack = ack;

    /* Segments wholly acknowledged (known from the next file's name). */
    size_t drop = 0;
    while (drop + 1 < sp->nseg && sp->segs[drop + 1].start - 1 <= ack)
        drop++;

    /* Scan the others. */
    uint64_t expect = drop < sp->nseg ? sp->segs[drop].start : ack + 1;
    uint64_t torn_at = UINT64_MAX;
    const char *torn_why = "";
    for (size_t k = drop; k < sp->nseg; k++) {
        sp_seg *s = &sp->segs[k];
        char name[32];
        seg_name(name, sizeof name, s->start);
        if (s->start < expect) {
            nt__errf(err, errlen,
                 "spool corrupt: %s/%s starts at seq %" PRIu64
                 " but the previous segment holds records up to %" PRIu64,
                 sp->dir, name, s->start, expect - 1);
            return NT_ECORRUPT;
        }
        if (s->start > expect && s->start - 1 > ack) {
            nt__errf(err, errlen,
                 "spool corrupt: %s/%s starts at seq %" PRIu64
                 ": unacknowledged records %" PRIu64 "..%" PRIu64
                 " are missing",
                 sp->dir, name, s->start, expect > ack ? expect : ack + 1,
                 s->start - 1);
            return NT_ECORRUPT;
        }
        expect = s->start;
        st = scan_segment(sp, k, &expect, &torn_at, &torn_why, err, errlen);
        if (st != NT_OK)
            return st;
        if (torn_at != UINT64_MAX && k + 1 < sp->nseg &&
            sp->segs[k + 1].start - 1 > ack) {
            nt__errf(err, errlen,
                 "spool corrupt: %s/%s: bad record at offset %" PRIu64
                 " (%s; expected seq %" PRIu64 "): unacknowledged records %"
                 PRIu64 "..%" PRIu64 " cannot be read",
                 sp->dir, name, torn_at, torn_why, expect,
                 expect > ack ? expect : ack + 1, sp->segs[k + 1].start - 1);
            return NT_ECORRUPT;
        }
    }

    /* The scan is clean: apply.  Bytes first (retire subtracts). */
    sp->next_seq = expect > ack + 1 ? expect : ack + 1;
    for (size_t k = 0; k < sp->nseg; k++)
        sp->bytes += sp->segs[k].size;
    if (torn_at != UINT64_MAX) {
        st = truncate_tail(sp, sp->nseg - 1, torn_at, err, errlen);
        if (st != NT_OK)
            return st;
    }
    /* Everything acknowledged: delete the last segments too. */
    if (sp->next_seq - 1 <= ack)
        drop = sp->nseg;
    if (drop > 0 || have != 1) {
        st = retire(sp, drop, ack);
        if (st != NT_OK) {
            nt__errf(err, errlen, "%s", sp->err);
            return st;
        }
    }
    /* The last segment takes the appends. */
    if (sp->nseg > 0) {
        sp_seg *s = &sp->segs[sp->nseg - 1];
        char name[32];
        seg_name(name, sizeof name, s->start);
        sp->fd = openat(sp->dirfd, name, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (sp->fd < 0) {
            nt__errf(err, errlen, "spool %s/%s: %s", sp->dir, name,
                 strerror(errno));
            return NT_EIO;
        }
    }
    return NT_OK;
}

/* Releases everything sp holds (no sync); closing the lock file releases
 * the lock. */
static void sp_free(nt_spool *sp)
{
    if (sp->fd >= 0)
        close(sp->fd);
    if (sp->lockfd >= 0)
        close(sp->lockfd);
    if (sp->ackfd >= 0)
        close(sp->ackfd);
    if (sp->dirfd >= 0)
        close(sp->dirfd);
    for (int i = 0; i < SP_NCUR; i++)
        if (sp->cur[i].fd >= 0)
            close(sp->cur[i].fd);
    free(sp->segs);
    free(sp->rbuf);
    free(sp->wb);
    free(sp->dir);
    free(sp);
}

/* Opens the spool (see net.h and the recovery policy at the top of this
 * file).  o may be NULL (defaults); zero sizes and interval mean their
 * defaults.  Errors: NT_EARG (bad arguments or options), NT_EIO (the
 * directory cannot be created, read or locked: the path and strerror in
 * err), NT_ECORRUPT (unacknowledged records would be lost), NT_ENOMEM. */
nt_status nt_spool_open(const char *dir, const nt_spool_opts *o,
                        nt_spool **out, char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (!dir || !*dir || !out) {
        nt__errf(err, errlen, "spool: no directory given");
        return NT_EARG;
    }
    nt_spool_opts def;
    nt_spool_opts_default(&def);
    nt_spool_opts opt = o ? *o : def;
    if (opt.max_bytes == 0)
        opt.max_bytes = def.max_bytes;
    if (opt.segment_bytes == 0)
        opt.segment_bytes = def.segment_bytes;
    if (opt.sync_interval_ms == 0)
        opt.sync_interval_ms = def.sync_interval_ms;
    if (opt.sync > NT_SYNC_ALWAYS || opt.full > NT_FULL_DROP_OLDEST) {
        nt__errf(err, errlen, "spool %s: invalid options (sync %u, full %u)", dir,
             (unsigned)opt.sync, (unsigned)opt.full);
        return NT_EARG;
    }
    nt_spool *sp = calloc(1, sizeof *sp);
    size_t n = strlen(dir);
    if (!sp || !(sp->dir = malloc(n + 1))) {
        free(sp);
        nt__errf(err, errlen, "spool %s: out of memory", dir);
        return NT_ENOMEM;
    }
    memcpy(sp->dir, dir, n + 1);
    while (n > 1 && sp->dir[n - 1] == '/') /* messages: no "dir//file" */
        sp->dir[--n] = '\0';
    sp->o = opt;
    sp->dirfd = sp->lockfd = sp->fd = sp->ackfd = -1;
    for (int i = 0; i < SP_NCUR; i++)
        sp->cur[i].fd = -1;
    nt_status st = NT_EIO;
    if (make_dirs(dir, err, errlen) != 0)
        goto fail;
    sp->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dirfd < 0) {
        nt__errf(err, errlen, "spool %s: %s", dir, strerror(errno));
        goto fail;
    }
    st = take_lock(sp, err, errlen);
    if (st != NT_OK)
        goto fail;
    if (unlinkat(sp->dirfd, SP_ACK_TMP, 0) != 0 && errno != ENOENT) {
        nt__errf(err, errlen, "spool %s/%s: %s", sp->dir, SP_ACK_TMP,
             strerror(errno));
        st = NT_EIO;
        goto fail;
    }
    st = recover(sp, err, errlen);
    if (st != NT_OK)
        goto fail;
    if (opt.write_buffer && !(sp->wb = malloc(opt.write_buffer))) {
        nt__errf(err, errlen, "spool %s: out of memory", dir);
        st = NT_ENOMEM;
        goto fail;
    }
    sp->last_sync_ns = now_ns();
    *out = sp;
    return NT_OK;
fail:
    sp_free(sp);
    return st;
}

/* Syncs what is pending (unless NT_SYNC_NONE or broken), releases the lock
 * and frees sp. */
void nt_spool_close(nt_spool *sp)
{
    if (!sp)
        return;
    if (!sp->broken && sp->wblen)
        (void)wb_flush(sp);
    if (!sp->broken && sp->o.sync != NT_SYNC_NONE &&
        (sp->dirty || sp->ack_dirty || sp->dir_dirty))
        (void)sync_now(sp);
    sp_free(sp);
}

/* ------------------------------------------------------------------------ */
/* Append, sync, ack.                                                       */

/* Makes room for a record of recsize bytes under NT_FULL_DROP_OLDEST:
 * drops the fewest oldest segments that free enough space, counting their
 * unacknowledged records, and makes their end the ack point. */
static nt_status drop_oldest(nt_spool *sp, uint64_t recsize)
{
    uint64_t bytes = sp->bytes;
    size_t n = 0;
    while (n < sp->nseg && bytes + recsize > sp->o.max_bytes)
        bytes -= sp->segs[n++].size;
    uint64_t last = seg_last(sp, n - 1);
    uint64_t lost = last > sp->ack ? last - sp->ack : 0;
    nt_status st = retire(sp, n, last > sp->ack ? last : sp->ack);
    if (st == NT_OK)
        sp->dropped += lost;
    return st;
}

/* Starts a new segment named next_seq for appending. */
static nt_status new_segment(nt_spool *sp)
{
    char name[32];
    seg_name(name, sizeof name, sp->next_seq);
    sp_seg s = {sp->next_seq, 0, 0, 0, sp->next_seq};
    if (seg_push(sp, &s) != 0) {
        SP_ERRF(sp, "spool %s: out of memory", sp->dir);
        return NT_ENOMEM;
    }
    sp->fd = openat(sp->dirfd, name,
                    O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
    if (sp->fd < 0) {
        SP_ERRF(sp, "spool %s/%s: cannot create: %s", sp->dir, name,
                strerror(errno));
        sp->nseg--;
        return NT_EIO;
    }
    if (sp->o.sync == NT_SYNC_ALWAYS) {
        if (fsync(sp->dirfd) != 0) {
            SP_ERRF(sp, "spool %s: fsync of the directory: %s", sp->dir,
                    strerror(errno));
            return NT_EIO; /* the (empty) segment stays; harmless */
        }
    } else if (sp->o.sync == NT_SYNC_BATCH) {
        sp->dir_dirty = 1;
    }
    return NT_OK;
}

/* Writes header + payload with one writev (looping on short writes).  On
 * failure the file is cut back to its previous size; if even that fails
 * the spool is broken.  NT_OK, NT_EFULL when the disk is full (ENOSPC,
 * EDQUOT: back-pressure like a full spool), or NT_EIO. */
static nt_status write_record(nt_spool *sp, const uint8_t *hdr,
                              const void *rec, size_t len)
{
    sp_seg *s = &sp->segs[sp->nseg - 1];
    struct iovec iov[2];
    iov[0].iov_base = (void *)hdr;
    iov[0].iov_len = SP_HDR;
    iov[1].iov_base = (void *)rec;
    iov[1].iov_len = len;
    int first = 0;
    size_t left = SP_HDR + len;
    while (left > 0) {
        ssize_t w = writev(sp->fd, iov + first, 2 - first);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            char name[32];
            seg_name(name, sizeof name, s->start);
            SP_ERRF(sp, "spool %s/%s: write: %s", sp->dir, name, strerror(e));
            if (ftruncate(sp->fd, (off_t)s->size) != 0) {
                sp->broken = 1;
                SP_ERRF(sp,
                        "spool %s/%s: write: %s; cannot cut back the "
                        "partial record: %s",
                        sp->dir, name, strerror(e), strerror(errno));
            }
            if (sp->broken)
                return NT_EIO;
            return e == ENOSPC || e == EDQUOT ? NT_EFULL : NT_EIO;
        }
        left -= (size_t)w;
        while (first < 2 && (size_t)w >= iov[first].iov_len) {
            w -= (ssize_t)iov[first].iov_len;
            iov[first].iov_len = 0;
            first++;
        }
        if (first < 2) {
            iov[first].iov_base = (uint8_t *)iov[first].iov_base + w;
            iov[first].iov_len -= (size_t)w;
        }
    }
    return NT_OK;
}

/* Appends one record (see net.h): makes room by the full policy, rolls
 * to a new segment when this one would pass segment_bytes, writes the
 * record with one writev and syncs by policy.  NT_EARG (len above
 * NT_MAX_PAYLOAD), NT_EFULL (bound reached under NT_FULL_REJECT, a record
 * larger than the bound, or the disk full) and NT_EIO leave the spool as it
 * was; an NT_EIO from the sync after the write breaks the spool (every
 * later call fails), since the record's durability is then unknown. */
nt_status nt_spool_append(nt_spool *sp, const void *rec, size_t len,
                          uint64_t *seq)
{
    if (!sp || (!rec && len > 0) || !seq)
        return NT_EARG;
    if (sp->broken)
        return NT_EIO;
    if (len > NT_MAX_PAYLOAD) {
        SP_ERRF(sp, "spool %s: record of %zu bytes exceeds %u", sp->dir, len,
                NT_MAX_PAYLOAD);
        return NT_EARG;
    }
    uint64_t recsize = SP_HDR + (uint64_t)len;
    if (recsize > sp->o.max_bytes) {
        SP_ERRF(sp, "spool %s: record of %zu bytes never fits in %" PRIu64,
                sp->dir, len, sp->o.max_bytes);
        return NT_EFULL;
    }
    nt_status st;
    if (sp->bytes + recsize > sp->o.max_bytes) {
        if (sp->o.full == NT_FULL_REJECT) {
            SP_ERRF(sp, "spool %s: full (%" PRIu64 " of %" PRIu64 " bytes)",
                    sp->dir, sp->bytes, sp->o.max_bytes);
            return NT_EFULL;
        }
        st = drop_oldest(sp, recsize);
        if (st != NT_OK)
            return st;
    }
    /* Roll over to a new segment when this one would grow past its size. */
    if (sp->fd >= 0 && sp->segs[sp->nseg - 1].size > 0 &&
        sp->segs[sp->nseg - 1].size + recsize > sp->o.segment_bytes) {
        if (sp->wblen && (st = wb_flush(sp)) != NT_OK)
            return st;
        if (sp->o.sync != NT_SYNC_NONE && sp->dirty) {
            if (sync_fd(sp->fd) != 0) {
                sp->broken = 1;
                SP_ERRF(sp, "spool %s: fdatasync: %s", sp->dir,
                        strerror(errno));
                return NT_EIO;
            }
            sp->syncs++;
        }
        sp->dirty = 0;
        close(sp->fd);
        sp->fd = -1;
    }
    if (sp->fd < 0 && (st = new_segment(sp)) != NT_OK)
        return st;

    uint8_t hdr[SP_HDR];
    put32(hdr, (uint32_t)len);
    put32(hdr + 4, rec_crc(sp->next_seq, (uint32_t)len, rec));
    put64(hdr + 8, sp->next_seq);
    if (sp->wb && sp->o.sync != NT_SYNC_ALWAYS &&
        recsize <= sp->o.write_buffer) {
        /* Buffered: written at the next read, sync, flush or close, or
         * when the buffer is full (nt_spool_flush in net.h). */
        if (sp->wblen + recsize > sp->o.write_buffer &&
            (st = wb_flush(sp)) != NT_OK)
            return st;
        memcpy(sp->wb + sp->wblen, hdr, SP_HDR);
        memcpy(sp->wb + sp->wblen + SP_HDR, rec, len);
        sp->wblen += recsize;
    } else {
        if (sp->wblen && (st = wb_flush(sp)) != NT_OK)
            return st;
        st = write_record(sp, hdr, rec, len);
        if (st != NT_OK)
            return st;
    }
    sp_seg *s = &sp->segs[sp->nseg - 1];
    s->size += recsize;
    s->end = s->size;
    sp->bytes += recsize;
    *seq = sp->next_seq++;
    sp->dirty = 1;
    if (sp->o.sync == NT_SYNC_ALWAYS) {
        if (sync_fd(sp->fd) != 0) {
            sp->broken = 1;
            SP_ERRF(sp, "spool %s: fdatasync: %s", sp->dir, strerror(errno));
            return NT_EIO;
        }
        sp->syncs++;
        sp->dirty = 0;
    } else if (sp->o.sync == NT_SYNC_BATCH &&
               now_ns() - sp->last_sync_ns >=
                   (uint64_t)sp->o.sync_interval_ms * 1000000u) {
        return sync_now(sp);
    }
    return NT_OK;
}

nt_status nt_spool_sync(nt_spool *sp)
{
    if (!sp)
        return NT_EARG;
    if (sp->broken)
        return NT_EIO;
    return sync_now(sp);
}

nt_status nt_spool_flush(nt_spool *sp)
{
    if (!sp)
        return NT_EARG;
    if (sp->broken)
        return NT_EIO;
    return sp->wblen ? wb_flush(sp) : NT_OK;
}

/* Moves the ack point to seq (a lower seq is a no-op; one not yet appended
 * is NT_EARG, as it can only come from a confused peer) and deletes the
 * segments it covers, after the ack file.  NT_OK, NT_EARG or NT_EIO. */
nt_status nt_spool_ack(nt_spool *sp, uint64_t seq)
{
    if (!sp)
        return NT_EARG;
    if (sp->broken)
        return NT_EIO;
    if (seq <= sp->ack)
        return NT_OK;
    if (seq >= sp->next_seq) {
        SP_ERRF(sp,
                "spool %s: ack of seq %" PRIu64
                " beyond the last record appended (%" PRIu64 ")",
                sp->dir, seq, sp->next_seq - 1);
        return NT_EARG;
    }
    size_t n = 0;
    while (n < sp->nseg && seg_last(sp, n) <= seq)
        n++;
    if (n > 0)
        return retire(sp, n, seq);
    nt_status st = ack_update(sp, seq, sp->o.sync == NT_SYNC_ALWAYS);
    if (st == NT_OK)
        sp->ack = seq;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Reading and statistics.                                                  */

/* Forgets cursor i (closing its file). */
static void cur_drop(nt_spool *sp, int i)
{
    if (sp->cur[i].fd >= 0)
        close(sp->cur[i].fd);
    sp->cur[i].fd = -1;
}

/* Forgets the cursors on segments that no longer exist (retired). */
static void cur_prune(nt_spool *sp)
{
    for (int i = 0; i < SP_NCUR; i++)
        if (sp->cur[i].fd >= 0 &&
            (sp->nseg == 0 || sp->cur[i].seg_start < sp->segs[0].start))
            cur_drop(sp, i);
}

/* Walks the records >= max(from, first_seq) in order.  Each record handed
 * to fn has its CRC and sequence number checked (damage after open is
 * NT_ECORRUPT with the file and offset in the last-error text); records
 * before `from` are only stepped over (length and sequence number).  Stops
 * early, with NT_OK, when fn returns non-zero: that record is where the
 * walk stopped.  The walk starts at the closest cursor at or before `from`
 * in from's segment (else at the segment's start) and leaves a cursor where
 * it stopped, so a reader that goes on where it stopped reads each record
 * once. */
nt_status nt_spool_read(nt_spool *sp, uint64_t from, nt_spool_fn fn,
                        void *user)
{
    if (!sp || !fn)
        return NT_EARG;
    if (sp->wblen && wb_flush(sp) != NT_OK)
        return NT_EIO;
    if (from <= sp->ack)
        from = sp->ack + 1;
    if (from >= sp->next_seq || sp->nseg == 0)
        return NT_OK;
    size_t k = 0;
    while (k + 1 < sp->nseg && sp->segs[k + 1].read_seq <= from)
        k++;
    /* The best cursor: in segment k, at or before from, the highest. */
    int ci = -1;
    for (int i = 0; i < SP_NCUR; i++) {
        const sp_cur *c = &sp->cur[i];
        if (c->fd >= 0 && c->seg_start == sp->segs[k].start &&
            c->seq <= from && c->seq >= sp->segs[k].read_seq &&
            c->off <= sp->segs[k].end && (ci < 0 || c->seq > sp->cur[ci].seq))
            ci = i;
    }
    if (ci < 0) { /* reuse the least recently used slot */
        ci = 0;
        for (int i = 1; i < SP_NCUR; i++)
            if (sp->cur[i].used < sp->cur[ci].used)
                ci = i;
        cur_drop(sp, ci);
    }
    sp_cur *cur = &sp->cur[ci];
    cur->used = ++sp->cur_tick;
    nt_status ret = NT_OK;
    int stop = 0;
    for (; k < sp->nseg && !stop; k++) {
        sp_seg *s = &sp->segs[k];
        char name[32];
        seg_name(name, sizeof name, s->start);
        uint64_t off = s->read_off, e = s->read_seq;
        if (cur->fd >= 0 && cur->seg_start == s->start) {
            off = cur->off;
            e = cur->seq;
        } else {
            cur_drop(sp, ci);
            cur->fd = openat(sp->dirfd, name, O_RDONLY | O_CLOEXEC);
            if (cur->fd < 0) {
                SP_ERRF(sp, "spool %s/%s: %s", sp->dir, name, strerror(errno));
                return NT_EIO;
            }
            cur->seg_start = s->start;
        }
        sp_rd r = {sp, cur->fd, 0, 0, off, s->end};
        while (r.pos < s->end) {
            uint64_t seq = 0;
            uint32_t len;
            const char *why = NULL;
            int ok;
            if (e < from) { /* stepped over: header checks only */
                long avail = rd_need(&r, SP_HDR, name);
                if (avail < 0) {
                    ret = NT_EIO;
                    break;
                }
                const uint8_t *h = sp->rbuf + r.lo;
                len = (size_t)avail >= SP_HDR ? get32(h) : 0;
                ok = (size_t)avail >= SP_HDR && get64(h + 8) == e &&
                     len <= NT_MAX_PAYLOAD &&
                     s->end - r.pos >= (uint64_t)SP_HDR + len;
                why = "bad record header";
            } else {
                ok = rec_check(&r, name, e, e, &seq, &len, &why);
                if (ok < 0) {
                    ret = NT_EIO;
                    break;
                }
            }
            if (!ok) {
                SP_ERRF(sp,
                        "spool corrupt: %s/%s: bad record at offset %" PRIu64
                        " (%s; expected seq %" PRIu64 ")",
                        sp->dir, name, r.pos, why, e);
                ret = NT_ECORRUPT;
                break;
            }
            if (e >= from &&
                fn(user, e, sp->rbuf + r.lo + SP_HDR, len) != 0) {
                stop = 1;
                break;
            }
            if (SP_HDR + (size_t)len <= r.hi - r.lo) {
                rd_skip(&r, SP_HDR + len);
            } else { /* stepped over without reading the payload */
                r.pos += SP_HDR + len;
                r.lo = r.hi = 0;
            }
            e++;
        }
        if (ret != NT_OK) {
            cur_drop(sp, ci);
            return ret;
        }
        cur->off = r.pos;
        cur->seq = e;
        if (stop || k + 1 == sp->nseg)
            break;
    }
    return NT_OK;
}

void nt_spool_stats_get(const nt_spool *sp, nt_spool_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!sp)
        return;
    out->first_seq = sp->ack + 1;
    out->next_seq = sp->next_seq;
    out->bytes = sp->bytes;
    out->records = sp->next_seq - 1 - sp->ack;
    out->dropped = sp->dropped;
    out->truncated = sp->truncated;
}

const char *nt__spool_errmsg(const nt_spool *sp)
{
    return sp ? sp->err : "no spool";
}

uint64_t nt__spool_syncs(const nt_spool *sp)
{
    return sp ? sp->syncs : 0;
}
