/*
 * net_int.h - declarations shared by the files of src/net/ only (never by
 * users of libisoflow): each part of the network layer keeps its additions
 * in its own marked block.  Internal names use the nt__ prefix.
 */
#ifndef ISOFLOW_NET_INT_H
#define ISOFLOW_NET_INT_H

#include <stddef.h>

#include "net.h"

/* ---- shared by every file of src/net/ ----------------------------------- */

/* Writes a message into err (nothing when err is NULL or errlen is 0). */
void nt__errf(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The reason of this thread's most recent OpenSSL error ("unknown OpenSSL
 * error" when there is none); clears the thread's error queue (tls.c). */
const char *nt__ossl_reason(void);

/* ---- N3: certificates and TLS contexts (ca.c, tls.c) ------------------- */

#include <openssl/ssl.h>

/* 1 when `name` is a valid node name: 1..NT_MAX_NAME characters from
 * [A-Za-z0-9._-], starting with a letter or digit (it is also a file name
 * and a DNS subjectAltName). */
int nt__cert_name_ok(const char *name);

/* The SSL_CTX of a TLS context (borrowed; lives as long as t).  Link code
 * creates its SSL objects from it (SSL_new); the context already requires
 * TLS 1.3 and a peer certificate chaining to the CA, in both directions. */
SSL_CTX *nt__tls_ctx(nt_tls *t);

/* Installs an identity's own certificate and key (nt_tls_new_identity) on
 * an SSL object made from nt__tls_ctx(t); nothing for other contexts.
 * Returns 0 or -1. */
int nt__tls_apply(const nt_tls *t, SSL *ssl,
                  const char *target /* outgoing: address; else NULL */);

/* The name (CN) and role of the context's own certificate, e.g. for HELLO.
 * name gets at most cap-1 characters (cap >= NT_MAX_NAME + 1 suffices). */
void nt__tls_self(const nt_tls *t, char *name, size_t cap, int *role);

/* After a completed handshake: checks that the peer presented a certificate
 * that passed verification and extracts its CN into name (cap >=
 * NT_MAX_NAME + 1) and its role (OU "role:<name>") into *role.  Returns
 * NT_OK, or NT_EAUTH with a precise reason in err: "peer sent no
 * certificate", "certificate refused: <verify reason>", "certificate has no
 * common name", "certificate has no role", "unknown role 'x'", ... */
nt_status nt__tls_peer_identity(SSL *ssl, char *name, size_t cap, int *role,
                                char *err, size_t errlen);

/* The text of an X509 verify result (SSL_get_verify_result): "certificate
 * has expired", "self-signed certificate", "unable to get local issuer
 * certificate", ...  Static storage. */
const char *nt__tls_verify_text(long result);

/* Why a TLS operation on ssl failed (SSL_do_handshake, SSL_read, SSL_write
 * returned ret <= 0): a verify failure of the peer's certificate ("peer
 * certificate refused: certificate has expired"), the peer's alert
 * ("peer refused our certificate: tlsv1 alert unknown ca"), or OpenSSL's
 * reason ("peer did not return a certificate").  Writes into err and clears this thread's
 * OpenSSL error queue.  Returns NT_EAUTH for certificate problems, NT_ECLOSED
 * for a clean close or EOF, NT_AGAIN when ret only means "want
 * read/write", NT_ETLS otherwise. */
nt_status nt__tls_failure(SSL *ssl, int ret, char *err, size_t errlen);

/* ---- end N3 ------------------------------------------------------------- */

/* ---- N1: frames (frame.c) --------------------------------------------- */

/* "HELLO", "WELCOME", ... "BYE" for frame types 1..10, "?" otherwise
 * (static storage; for log messages). */
const char *nt__frame_type_name(unsigned type);

/* ---- end N1 ------------------------------------------------------------- */

/* ---- N4: links (link.c) ------------------------------------------------ */

/* Timing and bounds of the links of one loop (nt__loop_tune); tests shorten
 * them.  Defaults in brackets. */
typedef struct nt__link_tuning {
    uint32_t ping_ms;        /* PING after this much send-idleness [2000] */
    uint32_t idle_ms;        /* close after this long with no byte received,
                                and the handshake deadline [6000] */
    uint32_t backoff_min_ms; /* first reconnect delay [100] */
    uint32_t backoff_max_ms; /* reconnect delay cap [10000] */
    size_t sendq_max;        /* bytes queued per connection before
                                nt_conn_send says NT_EFULL [8 MiB] */
} nt__link_tuning;

void nt__link_tuning_default(nt__link_tuning *t /* OUT */);
/* Applies t to the loop's connections made from now on (and its heartbeat
 * sweep); thread-safe.  NT_EARG for zero intervals or max < min. */
nt_status nt__loop_tune(nt_loop *l, const nt__link_tuning *t);

/* Where the network layer's log lines go: fn(user, line) with the line
 * without "[net] " and newline, from any thread (calls are serialised).
 * NULL restores the default, "[net] line" on stderr. */
typedef void (*nt__log_fn)(void *user, const char *line);
void nt__set_log(nt__log_fn fn, void *user);
/* Logs one line through the hook (printf format). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 1, 2)))
#endif
void nt__log(const char *fmt, ...);

/* ---- end N4 ------------------------------------------------------------- */

/* ---- N2: the spool (spool.c) ------------------------------------------ */

/* The text of the spool's last error (append, sync, ack, read): the path,
 * what failed and strerror.  Borrowed; valid until the next call on sp. */
const char *nt__spool_errmsg(const nt_spool *sp);

/* How many times the spool has fdatasynced segment data since it was opened
 * (tests check the sync policies with it). */
uint64_t nt__spool_syncs(const nt_spool *sp);

/* ---- end N2 ------------------------------------------------------------- */

#endif /* ISOFLOW_NET_INT_H */
