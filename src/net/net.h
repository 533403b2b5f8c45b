/*
 * net.h - the public API of isoflow's network layer: the frame format spoken
 * between nodes, the disk spool that keeps unacknowledged messages across
 * link failures and crashes, the certificate authority, and mutually
 * authenticated TLS 1.3 links driven by a libuv event loop.
 *
 * Prefix nt_ (internal nt__).  Ownership is stated at each declaration.
 * Everything that comes from the network is untrusted: decoders return
 * NT_EFRAME with a reason and never read out of bounds.
 */
#ifndef ISOFLOW_NET_H
#define ISOFLOW_NET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NT_API __attribute__((visibility("default")))
#else
#define NT_API
#endif

#define NT_STATUS_MAP(X)                                                     \
    X(OK, "ok")                                                              \
    X(AGAIN, "need more bytes")                                              \
    X(EFRAME, "bad frame")                                                   \
    X(EIO, "input/output error")                                             \
    X(ENOMEM, "out of memory")                                               \
    X(EFULL, "spool full")                                                   \
    X(ECORRUPT, "spool corrupt")                                             \
    X(ETLS, "TLS error")                                                     \
    X(EAUTH, "peer refused")                                                 \
    X(EARG, "invalid argument")                                              \
    X(ECLOSED, "connection closed")

typedef enum nt_status {
#define NT__S(name, msg) NT_##name,
    NT_STATUS_MAP(NT__S)
#undef NT__S
    NT_STATUS_COUNT
} nt_status;

NT_API const char *nt_status_msg(nt_status s);

/* ------------------------------------------------------------------------ */
/* Frames.
 *
 * Every frame: a 12-byte header, then the payload.  Little-endian.
 *   0  2  magic 'I' 'F'
 *   2  1  version (NT_VERSION)
 *   3  1  type (nt_frame_type)
 *   4  4  payload length (<= NT_MAX_PAYLOAD)
 *   8  4  CRC-32 (IEEE) of the payload
 * Payloads by type:
 *   HELLO    u8 role, u8 name_len, name, u64 flow_hash, u64 last_seq_seen
 *            (the highest link sequence number the sender has delivered
 *            from the peer, for resumption)
 *   WELCOME  same layout as HELLO (the accepting side's answer)
 *   REFUSE   u8 reason_len, reason (UTF-8), then the connection closes
 *   DATA     u32 count, then count messages (nt_msg):
 *              u64 seq (link sequence number, consecutive per direction)
 *              u32 origin (device index), u64 origin_seq, u64 ts_ns,
 *              u16 stage (destination stage index in the flow graph),
 *              u8 kind (0 data downstream, 1 actuation upstream),
 *              u8 topic_len, topic, u32 len, len bytes
 *   ACK      u64 seq: every message with link seq <= seq has been taken
 *            over by the receiver (cumulative)
 *   CREDIT   u32 stage, u32 credits: the receiver grants that many more
 *            messages for that stage (demand mode across links)
 *   PULL     u32 stage: the consumer asks the stage's sources for data
 *   PING/PONG u64 nonce (heartbeats)
 *   BYE      empty: orderly close
 *   CTL      u32 id, u32 json_len, json (UTF-8, <= NT_MAX_CTL_JSON bytes),
 *            then a blob (the rest of the payload, may be empty): a control
 *            request (deploy, versions, rollback; docs/DEPLOY.md) from an
 *            operator, or forwarded by the node a device connects to
 *   CTL_REPLY same layout: an answer or progress event for request `id`
 */
#define NT_VERSION 1
#define NT_HEADER 12u
#define NT_MAX_PAYLOAD (1u << 20)  /* 1 MiB */
#define NT_MAX_MSG (64u * 1024u)   /* one message's bytes (FL__MAX_MSG) */
#define NT_MAX_NAME 63u
#define NT_MAX_TOPIC 31u
#define NT_MAX_CTL_JSON (64u * 1024u) /* JSON part of a CTL frame */

typedef enum nt_frame_type {
    NT_HELLO = 1,
    NT_WELCOME = 2,
    NT_REFUSE = 3,
    NT_DATA = 4,
    NT_ACK = 5,
    NT_CREDIT = 6,
    NT_PULL = 7,
    NT_PING = 8,
    NT_PONG = 9,
    NT_BYE = 10,
    NT_CTL = 11,
    NT_CTL_REPLY = 12
} nt_frame_type;

typedef enum nt_role {
    NT_ROLE_DEVICE = 1,
    NT_ROLE_EDGE = 2,
    NT_ROLE_CLOUD = 3,
    NT_ROLE_OPERATOR = 4
} nt_role;

NT_API const char *nt_role_name(int role);      /* "device", ... or "?" */
NT_API int nt_role_parse(const char *name);     /* nt_role or 0 */

/* A frame located in a buffer (payload borrowed from that buffer). */
typedef struct nt_frame {
    uint8_t type;
    uint32_t len;
    const uint8_t *payload;
} nt_frame;

/* One message of a DATA frame (data/topic borrowed from the frame). */
typedef struct nt_msg {
    uint64_t seq;
    uint32_t origin;
    uint64_t origin_seq;
    uint64_t ts_ns;
    uint16_t stage;
    uint8_t kind;          /* 0 downstream data, 1 actuation */
    uint8_t topic_len;
    const char *topic;
    uint32_t len;
    const uint8_t *data;
} nt_msg;

typedef struct nt_hello {
    uint8_t role;
    char name[NT_MAX_NAME + 1]; /* NUL-terminated */
    uint64_t flow_hash;
    uint64_t last_seq_seen;
} nt_hello;

/* Looks for one complete frame at the start of buf.  Returns NT_OK with
 * *frame filled and *frame_len = header + payload, NT_AGAIN when more bytes
 * are needed, or NT_EFRAME with a reason in err (bad magic, version, type,
 * oversized length, CRC mismatch) after which the connection must close. */
NT_API nt_status nt_frame_parse(const uint8_t *buf, size_t avail,
                                nt_frame *frame /* OUT */,
                                size_t *frame_len /* OUT */, char *err,
                                size_t errlen);

/* Payload decoders: NT_OK or NT_EFRAME with the reason (what, at which byte
 * of the payload). */
NT_API nt_status nt_hello_decode(const nt_frame *f, nt_hello *out /* OUT */,
                                 char *err, size_t errlen);
NT_API nt_status nt_u64_decode(const nt_frame *f, uint64_t *out /* OUT */,
                               char *err, size_t errlen); /* ACK, PING, PONG */
NT_API nt_status nt_credit_decode(const nt_frame *f, uint32_t *stage,
                                  uint32_t *credits, char *err,
                                  size_t errlen);
NT_API nt_status nt_refuse_decode(const nt_frame *f, char *reason,
                                  size_t cap, char *err, size_t errlen);
NT_API nt_status nt_pull_decode(const nt_frame *f, uint32_t *stage,
                                char *err, size_t errlen);
/* CTL / CTL_REPLY: json and blob point into f's payload (not
 * NUL-terminated); the JSON bytes are checked to be UTF-8 without NUL. */
NT_API nt_status nt_ctl_decode(const nt_frame *f, uint32_t *id,
                               const char **json, size_t *json_len,
                               const uint8_t **blob, size_t *blob_len,
                               char *err, size_t errlen);

/* Iterates the messages of a DATA frame: start with *off = 0; returns
 * NT_OK with *m filled, NT_AGAIN at the end (after exactly `count`
 * messages), NT_EFRAME on any inconsistency (count, lengths, trailing
 * bytes). */
NT_API nt_status nt_data_next(const nt_frame *f, size_t *off,
                              nt_msg *m /* OUT */, char *err, size_t errlen);

/* A bounded, growable output buffer for encoding frames. */
typedef struct nt_buf {
    uint8_t *data;   /* owned; free with nt_buf_free */
    size_t len, cap;
    size_t max;      /* growth limit in bytes (0: NT_HEADER + NT_MAX_PAYLOAD) */
    size_t frame_start; /* internal: start of the frame being built */
    uint32_t count;     /* internal: messages in the DATA frame being built */
} nt_buf;

NT_API void nt_buf_init(nt_buf *b, size_t max);
NT_API void nt_buf_free(nt_buf *b);
NT_API void nt_buf_reset(nt_buf *b); /* len = 0, keeps the memory */

/* Encoders append one complete frame; NT_ENOMEM or NT_EARG (too large, bad
 * field) leave the buffer as it was. */
NT_API nt_status nt_put_hello(nt_buf *b, uint8_t type /* HELLO/WELCOME */,
                              const nt_hello *h);
NT_API nt_status nt_put_refuse(nt_buf *b, const char *reason);
NT_API nt_status nt_put_u64(nt_buf *b, uint8_t type /* ACK/PING/PONG */,
                            uint64_t v);
NT_API nt_status nt_put_credit(nt_buf *b, uint32_t stage, uint32_t credits);
NT_API nt_status nt_put_pull(nt_buf *b, uint32_t stage);
NT_API nt_status nt_put_bye(nt_buf *b);
/* type NT_CTL or NT_CTL_REPLY; json_len <= NT_MAX_CTL_JSON (UTF-8, no
 * NUL), 8 + json_len + blob_len <= NT_MAX_PAYLOAD, else NT_EARG. */
NT_API nt_status nt_put_ctl(nt_buf *b, uint8_t type, uint32_t id,
                            const char *json, size_t json_len,
                            const uint8_t *blob, size_t blob_len);
/* nt_put_ctl without copying the blob: appends the frame's header, id and
 * JSON (the length and CRC already count the blob); the caller sends b's
 * new bytes, then the blob's, unchanged in between (a 100 KB module need
 * not be copied into the frame). */
NT_API nt_status nt_put_ctl_head(nt_buf *b, uint8_t type, uint32_t id,
                                 const char *json, size_t json_len,
                                 const uint8_t *blob, size_t blob_len);
/* DATA frames are built message by message: begin, add (NT_EFULL when the
 * frame would exceed NT_MAX_PAYLOAD: end it and start another), end. */
NT_API nt_status nt_data_begin(nt_buf *b);
NT_API nt_status nt_data_add(nt_buf *b, const nt_msg *m);
NT_API nt_status nt_data_end(nt_buf *b);

NT_API uint32_t nt_crc32(const void *data, size_t len);

/* ------------------------------------------------------------------------ */
/* The spool: an append-only, crash-safe log of records on disk, bounded in
 * size, used for messages not yet acknowledged by the next node.
 *
 * Records get consecutive sequence numbers from 1.  A record is durable
 * according to the sync policy once nt_spool_append returns.  nt_spool_ack
 * drops records <= seq (whole segment files are deleted when fully
 * acknowledged).  On open, segments are scanned, each record's CRC checked,
 * and a torn tail (a crash in the middle of a write) is truncated; records
 * before it survive. */
typedef struct nt_spool nt_spool;

typedef enum nt_sync {
    NT_SYNC_NONE = 0,    /* the OS decides (fast; loses the tail on power loss) */
    NT_SYNC_BATCH = 1,   /* fdatasync at most every sync_interval_ms */
    NT_SYNC_ALWAYS = 2   /* fdatasync after every append */
} nt_sync;

typedef enum nt_full {
    NT_FULL_REJECT = 0,      /* append returns NT_EFULL: back-pressure */
    NT_FULL_DROP_OLDEST = 1  /* the oldest unacknowledged records are dropped
                                (counted) to make room */
} nt_full;

typedef struct nt_spool_opts {
    uint64_t max_bytes;        /* total size bound (default 64 MiB) */
    uint32_t segment_bytes;    /* segment file size (default 4 MiB) */
    uint8_t sync;              /* nt_sync (default NT_SYNC_BATCH) */
    uint32_t sync_interval_ms; /* for NT_SYNC_BATCH (default 50) */
    uint8_t full;              /* nt_full (default NT_FULL_REJECT) */
    uint32_t write_buffer;     /* bytes of appends held in memory until the
                                  next read, sync, flush or close (default
                                  0: every append is written before it
                                  returns); not under NT_SYNC_ALWAYS.  A
                                  process crash loses the buffered ones. */
} nt_spool_opts;

NT_API void nt_spool_opts_default(nt_spool_opts *o /* OUT */);

/* Opens (creating) the spool in directory dir (created if missing).  On
 * success *out is owned by the caller (nt_spool_close). */
NT_API nt_status nt_spool_open(const char *dir, const nt_spool_opts *o,
                               nt_spool **out /* OUT */, char *err,
                               size_t errlen);
NT_API void nt_spool_close(nt_spool *sp);

/* Appends one record (len <= NT_MAX_PAYLOAD); *seq gets its number. */
NT_API nt_status nt_spool_append(nt_spool *sp, const void *rec, size_t len,
                                 uint64_t *seq /* OUT */);
/* Forces buffered records to disk now (fdatasync). */
NT_API nt_status nt_spool_sync(nt_spool *sp);
/* Writes the appends held by the write_buffer option (no fdatasync): after
 * it, they survive a process crash. */
NT_API nt_status nt_spool_flush(nt_spool *sp);
/* Acknowledges every record with a sequence number <= seq. */
NT_API nt_status nt_spool_ack(nt_spool *sp, uint64_t seq);

/* Reads the records with seq >= from, in order, calling fn for each until
 * fn returns non-zero or the end; `rec` is valid during the call only. */
typedef int (*nt_spool_fn)(void *user, uint64_t seq, const uint8_t *rec,
                           size_t len);
NT_API nt_status nt_spool_read(nt_spool *sp, uint64_t from, nt_spool_fn fn,
                               void *user);

typedef struct nt_spool_stats {
    uint64_t first_seq;   /* oldest unacknowledged record (next_seq if none) */
    uint64_t next_seq;    /* sequence number of the next append */
    uint64_t bytes;       /* bytes on disk */
    uint64_t records;     /* unacknowledged records */
    uint64_t dropped;     /* dropped by NT_FULL_DROP_OLDEST */
    uint64_t truncated;   /* bytes of torn tail removed at open */
} nt_spool_stats;
NT_API void nt_spool_stats_get(const nt_spool *sp, nt_spool_stats *out);

/* ------------------------------------------------------------------------ */
/* Certificates (OpenSSL).  A CA directory holds ca.crt and ca.key (0600).
 * Node and operator certificates carry the node name as CN and the role in
 * the subject's OU as "role:<name>" (device|edge|cloud|operator); keys are
 * Ed25519. */

/* Creates a CA in dir (fails with NT_EARG if one exists). */
NT_API nt_status nt_ca_init(const char *dir, const char *name, char *err,
                            size_t errlen);
/* Issues NAME's key and certificate signed by the CA in ca_dir, written to
 * out_dir/NAME.crt and out_dir/NAME.key (0600).  days: validity (0 = 825).
 * valid_from_offset_s shifts notBefore/notAfter (tests make expired
 * certificates with a negative offset). */
NT_API nt_status nt_ca_issue(const char *ca_dir, const char *name, int role,
                             int days, long valid_from_offset_s,
                             const char *out_dir, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* TLS contexts and links.                                                  */

typedef struct nt_tls nt_tls;

/* A TLS 1.3 context that presents cert/key and accepts only peers whose
 * certificate chains to ca (both directions: mutual authentication).
 * Caller frees with nt_tls_free. */
NT_API nt_status nt_tls_new(const char *ca_file, const char *cert_file,
                            const char *key_file, nt_tls **out /* OUT */,
                            char *err, size_t errlen);
/* The same from PEM text in memory (three NUL-terminated strings: the CA
 * certificate(s), our certificate, our private key); same checks, messages
 * name "(memory)".  Caller frees with nt_tls_free. */
NT_API nt_status nt_tls_new_mem(const char *ca_pem, const char *cert_pem,
                                const char *key_pem, nt_tls **out /* OUT */,
                                char *err, size_t errlen);
/* Another identity on base's context, for one process holding many
 * identities (a load generator: one certificate per simulated device):
 * shares base's context (CA, settings) by reference and presents cert_pem
 * instead (checked: chains to base's CA, has a CN and a role, matches the
 * key).  key_pem NULL: base's private key (the certificate was issued for
 * base's key pair).  Costs a parsed certificate, not a context.  Caller
 * frees with nt_tls_free (before or after base). */
NT_API nt_status nt_tls_new_identity(nt_tls *base, const char *cert_pem,
                                     const char *key_pem,
                                     nt_tls **out /* OUT */, char *err,
                                     size_t errlen);
/* nt_tls_new for a short-lived command that only connects out (isoflow
 * deploy): the three files must be readable now, but they are parsed and
 * checked (the same checks, the same messages) only when a handshake needs
 * them; a resumed session (nt_tls_session_cache) needs none, which saves
 * about 1 ms of OpenSSL.  A file found bad then fails that connection
 * with the reason.  Caller frees with nt_tls_free. */
NT_API nt_status nt_tls_new_lazy(const char *ca_file, const char *cert_file,
                                 const char *key_file,
                                 nt_tls **out /* OUT */, char *err,
                                 size_t errlen);
NT_API void nt_tls_free(nt_tls *t);
/* Once, at the start of a process, before any other OpenSSL use: OpenSSL
 * without its exit-time cleanup (a process frees nothing at exit). */
NT_API void nt_tls_process_init(void);
/* Node side: operator connections get a TLS 1.3 session ticket (lifetime
 * 1 h), so that an operator's next command resumes (no certificates, no
 * signatures).  The ticket key is key_file (80 random bytes, mode 0600):
 * created when missing, replaced when older than a day; a node restarted
 * within that time still accepts its tickets.  Device links get none. */
NT_API nt_status nt_tls_operator_tickets(nt_tls *t, const char *key_file,
                                         char *err, size_t errlen);
/* Client side: outgoing connections offer the session cached for their
 * address in dir (created 0700; one file per identity and address, mode
 * 0600) and cache the tickets they receive.  A missing, expired or refused
 * session means a full handshake, never an error. */
NT_API nt_status nt_tls_session_cache(nt_tls *t, const char *dir, char *err,
                                      size_t errlen);

typedef struct nt_loop nt_loop;   /* an event loop on its own thread */
typedef struct nt_conn nt_conn;   /* one authenticated connection */
typedef struct nt_listener nt_listener;

/* Callbacks run on the loop's thread.  `user` is the pointer given at
 * listen/connect time. */
typedef struct nt_callbacks {
    /* The TLS handshake completed and the peer's certificate passed: its
     * name (CN) and role.  Return 0 to accept, else the connection closes
     * (refused, with the reason logged). */
    int (*on_open)(void *user, nt_conn *c, const char *peer, int role);
    /* One complete, CRC-checked frame (payload valid during the call). */
    void (*on_frame)(void *user, nt_conn *c, const nt_frame *f);
    /* The connection is gone (after on_open, or a failed attempt); reason
     * says why.  An accepted connection's handle must not be used
     * afterwards.  An outgoing one (nt_connect) keeps its handle: it
     * reconnects by itself and calls on_open again; its handle is invalid
     * only after nt_conn_close. */
    void (*on_close)(void *user, nt_conn *c, const char *reason);
} nt_callbacks;

/* Starts an event loop thread.  Caller frees with nt_loop_free (stops it,
 * closes every connection). */
NT_API nt_status nt_loop_new(nt_loop **out /* OUT */, char *err,
                             size_t errlen);
NT_API void nt_loop_free(nt_loop *l);
/* Runs fn(arg) on the loop's thread soon (thread-safe). */
NT_API nt_status nt_loop_call(nt_loop *l, void (*fn)(void *), void *arg);

/* Listens on "host:port" (port 0: any; nt_listener_port tells).  Accepts
 * peers whose role bit (1 << role) is in allowed_roles; others are refused
 * with a logged reason.  tls NULL = plaintext (only with an explicit
 * --insecure; prints a warning). */
NT_API nt_status nt_listen(nt_loop *l, nt_tls *tls, const char *addr,
                           unsigned allowed_roles, const nt_callbacks *cb,
                           void *user, nt_listener **out /* OUT */,
                           char *err, size_t errlen);
NT_API int nt_listener_port(const nt_listener *ls);

/* Connects to "host:port" expecting a peer of role expect_role; on failure
 * or loss the connection is retried with exponential backoff (100 ms
 * doubling to 10 s, +-20% jitter) until nt_conn_close. */
NT_API nt_status nt_connect(nt_loop *l, nt_tls *tls, const char *addr,
                            int expect_role, const nt_callbacks *cb,
                            void *user, nt_conn **out /* OUT */, char *err,
                            size_t errlen);

/* nt_connect from a given local address: every attempt's socket is bound
 * to local_ip (a numeric IPv4/IPv6 address, e.g. "127.0.0.2"; the port is
 * chosen at connect time, IP_BIND_ADDRESS_NO_PORT on Linux) before
 * connecting.  Lets one process open more connections to one listener
 * than a source address has ephemeral ports (~28,000 on Linux).
 * local_ip NULL: as nt_connect.  NT_EARG for an address that does not
 * parse. */
NT_API nt_status nt_connect_from(nt_loop *l, nt_tls *tls, const char *addr,
                                 const char *local_ip, int expect_role,
                                 const nt_callbacks *cb, void *user,
                                 nt_conn **out /* OUT */, char *err,
                                 size_t errlen);

/* Queues bytes (whole frames) for sending; thread-safe.  NT_ECLOSED when
 * the connection is down (the caller keeps the data: it is in its spool).
 * Bounded: NT_EFULL when more than the connection's send buffer limit is
 * queued (back-pressure). */
NT_API nt_status nt_conn_send(nt_conn *c, const uint8_t *data, size_t len);
/* nt_conn_send of data then data2, queued together (a frame's head from
 * nt_put_ctl_head and its blob, without building the whole frame). */
NT_API nt_status nt_conn_send2(nt_conn *c, const uint8_t *data, size_t len,
                               const uint8_t *data2, size_t len2);
/* Closes (and stops reconnecting); thread-safe. */
NT_API void nt_conn_close(nt_conn *c);
NT_API const char *nt_conn_peer(const nt_conn *c);
/* 1 when the connection resumed an earlier TLS session (on_open and
 * later; see nt_tls_session_cache), else 0. */
NT_API int nt_conn_resumed(const nt_conn *c);

#ifdef __cplusplus
}
#endif
#endif /* ISOFLOW_NET_H */
