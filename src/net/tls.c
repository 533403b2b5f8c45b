/*
 * tls.c - TLS 1.3 contexts for mutually authenticated links (OpenSSL 3):
 * loads and checks the CA, certificate and key of a node, and helps the
 * link code judge a peer (identity from CN and OU "role:<name>") and turn
 * OpenSSL failures into precise reasons.  The handshakes themselves are
 * driven by link.c over memory BIOs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net_int.h"

struct nt_tls {
    SSL_CTX *ctx;                 /* owned */
    char name[NT_MAX_NAME + 1];   /* our certificate's CN */
    int role;                     /* our certificate's role */
};

/* The reason of this thread's most recent OpenSSL error; clears the queue. */
const char *nt__ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown OpenSSL error";
}

/* A PEM password callback that never prompts: encrypted keys fail. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Copies s into out (cap bytes) keeping printable ASCII only (others become
 * '?'), truncated: for quoting untrusted text in messages. */
static void printable(const unsigned char *s, size_t n, char *out, size_t cap)
{
    size_t i;
    for (i = 0; i < n && i + 1 < cap; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    out[i] = '\0';
}

/*
 * The identity of a certificate: its single CN (a valid node name) into
 * name and the role of its single OU "role:<name>" into *role.  Returns
 * NT_OK or NT_EAUTH with the reason in err.
 */
static nt_status cert_identity(X509 *x, char *name, size_t cap, int *role,
                               char *err, size_t errlen)
{
    X509_NAME *subj = X509_get_subject_name(x);
    unsigned char *u = NULL;
    int pos, len, found = 0, r = 0;
    char text[40];
    nt_status st = NT_EAUTH;

    pos = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (pos < 0) {
        nt__errf(err, errlen, "certificate has no common name");
        return NT_EAUTH;
    }
    if (X509_NAME_get_index_by_NID(subj, NID_commonName, pos) >= 0) {
        nt__errf(err, errlen, "certificate has several common names");
        return NT_EAUTH;
    }
    len = ASN1_STRING_to_UTF8(
        &u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, pos)));
    if (len <= 0 || (size_t)len > NT_MAX_NAME ||
        memchr(u, '\0', (size_t)len) != NULL ||
        !nt__cert_name_ok((const char *)u)) {
        if (len > 0)
            printable(u, (size_t)len, text, sizeof text);
        else
            text[0] = '\0';
        nt__errf(err, errlen, "certificate has an invalid common name '%s'",
               text);
        goto out;
    }
    if (name && cap > 0) {
        size_t n = (size_t)len < cap ? (size_t)len : cap - 1;
        memcpy(name, u, n);
        name[n] = '\0';
    }
    OPENSSL_free(u);
    u = NULL;

    pos = -1;
    while ((pos = X509_NAME_get_index_by_NID(
                subj, NID_organizationalUnitName, pos)) >= 0) {
        unsigned char *ou = NULL;
        int n = ASN1_STRING_to_UTF8(
            &ou, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, pos)));
        if (n >= 5 && memcmp(ou, "role:", 5) == 0) {
            if (++found == 1) {
                char rn[16];
                if (n - 5 < (int)sizeof rn &&
                    memchr(ou + 5, '\0', (size_t)(n - 5)) == NULL) {
                    memcpy(rn, ou + 5, (size_t)(n - 5));
                    rn[n - 5] = '\0';
                    r = nt_role_parse(rn);
                }
                if (r == 0)
                    printable(ou + 5, (size_t)(n - 5), text, sizeof text);
            }
        }
        OPENSSL_free(ou);
    }
    if (found == 0) {
        nt__errf(err, errlen, "certificate has no role");
        goto out;
    }
    if (found > 1) {
        nt__errf(err, errlen, "certificate has several roles");
        goto out;
    }
    if (r == 0) {
        nt__errf(err, errlen, "unknown role '%s'", text);
        goto out;
    }
    if (role)
        *role = r;
    st = NT_OK;
out:
    OPENSSL_free(u);
    return st;
}

/* Reads every PEM certificate of path into store.  Returns the number
 * added, or -1 with the reason in err. */
static int load_ca_file(X509_STORE *store, const char *path, char *err,
                        size_t errlen)
{
    X509 *x;
    int n = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        nt__errf(err, errlen, "cannot read CA file '%s': %s", path,
               strerror(errno));
        return -1;
    }
    while ((x = PEM_read_X509(f, NULL, no_passphrase, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(store, x);
        X509_free(x);
        if (!ok) {
            nt__errf(err, errlen, "cannot use CA file '%s': %s", path,
                   nt__ossl_reason());
            fclose(f);
            return -1;
        }
        n++;
    }
    fclose(f);
    ERR_clear_error(); /* the end of the file reads as "no start line" */
    if (n == 0)
        nt__errf(err, errlen, "CA file '%s' holds no PEM certificate", path);
    return n == 0 ? -1 : n;
}

/* Reads one PEM certificate (or private key) from path; NULL with the
 * reason in err. */
static void *read_pem(const char *path, int want_key, char *err,
                      size_t errlen)
{
    const char *what = want_key ? "key" : "certificate";
    void *obj;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        nt__errf(err, errlen, "cannot read %s '%s': %s", what, path,
               strerror(errno));
        return NULL;
    }
    if (want_key)
        obj = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    else
        obj = PEM_read_X509(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (obj == NULL)
        nt__errf(err, errlen, "cannot parse %s '%s': not a PEM %s (%s)", what,
               path, want_key ? "private key" : "certificate",
               nt__ossl_reason());
    return obj;
}

/* Checks that cert chains to the CAs of store (validity dates are left to
 * the peers: a node with a wrong clock still starts, and peers log why they
 * refuse it).  Returns 0, or -1 with the verify reason in err. */
static int check_chain(X509_STORE *store, X509 *cert, const char *cert_file,
                       const char *ca_file, char *err, size_t errlen)
{
    int ok;
    X509_STORE_CTX *sc = X509_STORE_CTX_new();
    if (sc == NULL || !X509_STORE_CTX_init(sc, store, cert, NULL)) {
        X509_STORE_CTX_free(sc);
        nt__errf(err, errlen, "cannot check certificate '%s': %s", cert_file,
               nt__ossl_reason());
        return -1;
    }
    X509_STORE_CTX_set_flags(sc, X509_V_FLAG_NO_CHECK_TIME);
    ok = X509_verify_cert(sc) == 1;
    if (!ok)
        nt__errf(err, errlen, "certificate '%s' does not chain to CA '%s': %s",
               cert_file, ca_file,
               X509_verify_cert_error_string(X509_STORE_CTX_get_error(sc)));
    X509_STORE_CTX_free(sc);
    ERR_clear_error();
    return ok ? 0 : -1;
}

/*
 * Creates a TLS 1.3-only context used for both accepting and connecting:
 * trusts the certificates of ca_file, presents cert_file/key_file (checked
 * to match, to chain to the CA and to carry a CN and a role), and requires
 * the peer's certificate (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT).
 * Session tickets are off (nothing is resumed), only our own certificate
 * is sent (no chain: peers hold the CA) and idle connections release their
 * buffers (many connections per node).  On success *out is owned by
 * the caller (nt_tls_free).  Errors: NT_EARG (bad or mismatched files, with
 * the file and the reason in err), NT_ETLS, NT_ENOMEM.
 */
nt_status nt_tls_new(const char *ca_file, const char *cert_file,
                     const char *key_file, nt_tls **out, char *err,
                     size_t errlen)
{
    nt_tls *t = NULL;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char why[160];
    nt_status st = NT_EARG;

    if (out)
        *out = NULL;
    if (ca_file == NULL || cert_file == NULL || key_file == NULL ||
        out == NULL) {
        nt__errf(err, errlen, "nt_tls_new needs a CA, a certificate and a key");
        return NT_EARG;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        nt__errf(err, errlen, "out of memory");
        return NT_ENOMEM;
    }
    t->ctx = SSL_CTX_new(TLS_method());
    if (t->ctx == NULL ||
        !SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_num_tickets(t->ctx, 0)) {
        nt__errf(err, errlen, "cannot create a TLS context: %s",
               nt__ossl_reason());
        st = NT_ETLS;
        goto fail;
    }
    if (load_ca_file(SSL_CTX_get_cert_store(t->ctx), ca_file, err, errlen) <
        0)
        goto fail;
    cert = read_pem(cert_file, 0, err, errlen);
    if (cert == NULL)
        goto fail;
    key = read_pem(key_file, 1, err, errlen);
    if (key == NULL)
        goto fail;
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        nt__errf(err, errlen, "key '%s' does not match certificate '%s'",
               key_file, cert_file);
        goto fail;
    }
    if (check_chain(SSL_CTX_get_cert_store(t->ctx), cert, cert_file, ca_file,
                    err, errlen) != 0)
        goto fail;
    if (cert_identity(cert, t->name, sizeof t->name, &t->role, why,
                      sizeof why) != NT_OK) {
        nt__errf(err, errlen, "certificate '%s': %s", cert_file, why);
        goto fail;
    }
    if (SSL_CTX_use_certificate(t->ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(t->ctx, key) != 1 ||
        SSL_CTX_check_private_key(t->ctx) != 1) {
        nt__errf(err, errlen, "cannot use certificate '%s': %s", cert_file,
               nt__ossl_reason());
        st = NT_ETLS;
        goto fail;
    }
    SSL_CTX_set_verify(t->ctx,
                       SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    SSL_CTX_set_verify_depth(t->ctx, 2);
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
    /* Send our certificate alone: every peer holds the CA already. */
    SSL_CTX_set_mode(t->ctx,
                     SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    X509_free(cert);
    EVP_PKEY_free(key);
    *out = t;
    return NT_OK;
fail:
    X509_free(cert);
    EVP_PKEY_free(key);
    nt_tls_free(t);
    return st;
}

void nt_tls_free(nt_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

SSL_CTX *nt__tls_ctx(nt_tls *t)
{
    return t->ctx;
}

void nt__tls_self(const nt_tls *t, char *name, size_t cap, int *role)
{
    if (name && cap > 0)
        snprintf(name, cap, "%s", t->name);
    if (role)
        *role = t->role;
}

const char *nt__tls_verify_text(long result)
{
    return X509_verify_cert_error_string(result);
}

nt_status nt__tls_peer_identity(SSL *ssl, char *name, size_t cap, int *role,
                                char *err, size_t errlen)
{
    X509 *peer = SSL_get0_peer_certificate(ssl);
    long v;
    if (peer == NULL) {
        nt__errf(err, errlen, "peer sent no certificate");
        return NT_EAUTH;
    }
    v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
        nt__errf(err, errlen, "certificate refused: %s",
               X509_verify_cert_error_string(v));
        return NT_EAUTH;
    }
    return cert_identity(peer, name, cap, role, err, errlen);
}

/* 1 when a received TLS alert (SSL_AD_*) is about our certificate. */
static int cert_alert(int alert)
{
    switch (alert) {
    case SSL_AD_BAD_CERTIFICATE:
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
    case SSL_AD_CERTIFICATE_REVOKED:
    case SSL_AD_CERTIFICATE_EXPIRED:
    case SSL_AD_CERTIFICATE_UNKNOWN:
    case SSL_AD_UNKNOWN_CA:
    case SSL_AD_ACCESS_DENIED:
    case SSL_AD_CERTIFICATE_REQUIRED:
        return 1;
    default:
        return 0;
    }
}

/*
 * Classifies a failed TLS call: see net_int.h.  The first error of the SSL
 * library in the queue is the most specific (later ones are generic
 * follow-ups); the queue is cleared.
 */
nt_status nt__tls_failure(SSL *ssl, int ret, char *err, size_t errlen)
{
    int e = SSL_get_error(ssl, ret);
    long v = SSL_get_verify_result(ssl);
    unsigned long code = 0, c;
    int verify_failed = 0;
    nt_status st = NT_ETLS;
    const char *r;

    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        nt__errf(err, errlen, "TLS operation in progress");
        return NT_AGAIN;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        nt__errf(err, errlen, "connection closed by peer");
        ERR_clear_error();
        return NT_ECLOSED;
    }
    while ((c = ERR_get_error()) != 0) {
        if (ERR_GET_LIB(c) == ERR_LIB_SSL &&
            ERR_GET_REASON(c) == SSL_R_CERTIFICATE_VERIFY_FAILED)
            verify_failed = 1;
        if (code == 0 || (ERR_GET_LIB(code) != ERR_LIB_SSL &&
                          ERR_GET_LIB(c) == ERR_LIB_SSL))
            code = c;
    }
    /* Our check of the peer's certificate failed: the verify result is the
     * precise reason (the queue only says "certificate verify failed"). */
    if (verify_failed && v != X509_V_OK) {
        nt__errf(err, errlen, "peer certificate refused: %s",
               X509_verify_cert_error_string(v));
        return NT_EAUTH;
    }
    if (code == 0) {
        if (e == SSL_ERROR_SYSCALL) {
            nt__errf(err, errlen, "connection closed during TLS");
            return NT_ECLOSED;
        }
        nt__errf(err, errlen, "TLS error");
        return NT_ETLS;
    }
    r = ERR_reason_error_string(code);
    if (r == NULL)
        r = "TLS error";
    if (ERR_GET_LIB(code) == ERR_LIB_SSL) {
        int reason = ERR_GET_REASON(code);
        if (reason >= SSL_AD_REASON_OFFSET) {
            int alert = reason - SSL_AD_REASON_OFFSET;
            if (cert_alert(alert)) {
                nt__errf(err, errlen, "peer refused our certificate: %s", r);
                return NT_EAUTH;
            }
            nt__errf(err, errlen, "peer sent alert: %s", r);
            return NT_ETLS;
        }
        if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
            st = NT_EAUTH;
        else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
            st = NT_ECLOSED;
    }
    nt__errf(err, errlen, "%s", r);
    return st;
}
