/*
 * tls.c - TLS 1.3 contexts for mutually authenticated links (OpenSSL 3):
 * loads and checks the CA, certificate and key of a node, and helps the
 * link code judge a peer (identity from CN and OU "role:<name>") and turn
 * OpenSSL failures into precise reasons.  The handshakes themselves are
 * driven by link.c over memory BIOs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net_int.h"

struct nt_tls {
    SSL_CTX *ctx;                 /* owned (a reference: identities share
                                     their base's context) */
    char name[NT_MAX_NAME + 1];   /* our certificate's CN */
    int role;                     /* our certificate's role */
    X509 *cert;                   /* identities only: presented instead of
                                     the context's certificate (owned) */
    EVP_PKEY *key;                /* identities only: its key (owned) */
    char *sess_dir;               /* client session cache (owned) or NULL */
    char label[NT_MAX_NAME + 1];  /* names the cache files: name, or for a
                                     lazy context a hash of its certificate */
    /* nt_tls_new_lazy: the files, parsed and checked by lazy_load on the
     * first full handshake (state 0 not yet, 1 done, -1 failed: err). */
    char *lz_ca, *lz_crt, *lz_key;
    pthread_mutex_t lz_mu;
    int lz_used, lz_state;
    char lz_err[512];
};

/* Operator sessions: a node gives operator connections a TLS 1.3 ticket,
 * which the operator's command caches and offers next time, so that a
 * repeated `isoflow deploy` resumes instead of doing a full handshake
 * (certificate parsing, chain checks and four signature operations: about
 * 2 ms of OpenSSL 3 on both sides).  Only operators get tickets: device
 * links are long-lived and gain nothing. */
#define TLS_TICKET_KEY_LEN 80              /* name 16, HMAC 32, AES 32 */
#define TLS_TICKET_KEY_MAX_AGE (24 * 3600) /* a new key after a day */
#define TLS_SESSION_LIFETIME 3600          /* a ticket is good for 1 h */
#define TLS_SID_CTX "isoflow-operator"

static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static int ex_ctx_tickets = -1; /* SSL_CTX: operators get tickets */
static int ex_ctx_lazy = -1;    /* SSL_CTX: its lazy nt_tls */
static int ex_ssl_sess = -1;    /* SSL: path of the client's session file */

static void ex_free_str(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                        long argl, void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

static void ex_init(void)
{
    ex_ctx_tickets = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ex_ctx_lazy = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ex_ssl_sess = SSL_get_ex_new_index(0, NULL, NULL, NULL, ex_free_str);
}

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

/* The same from PEM text in memory (NUL-terminated); `label` names it in
 * messages. */
static void *read_pem_mem(const char *pem, int want_key, const char *label,
                          char *err, size_t errlen)
{
    void *obj = NULL;
    BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
    if (b != NULL) {
        if (want_key)
            obj = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
        else
            obj = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
        BIO_free(b);
    }
    if (obj == NULL)
        nt__errf(err, errlen, "cannot parse %s: not a PEM %s (%s)", label,
               want_key ? "private key" : "certificate", nt__ossl_reason());
    return obj;
}

/* Adds every PEM certificate of the text ca_pem to store.  Returns the
 * number added, or -1 with the reason in err. */
static int load_ca_mem(X509_STORE *store, const char *ca_pem, char *err,
                       size_t errlen)
{
    X509 *x;
    int n = 0;
    BIO *b = ca_pem ? BIO_new_mem_buf(ca_pem, -1) : NULL;
    if (b == NULL) {
        nt__errf(err, errlen, "cannot read the CA certificates in memory");
        return -1;
    }
    while ((x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(store, x);
        X509_free(x);
        if (!ok) {
            nt__errf(err, errlen, "cannot use the CA certificate in memory: "
                     "%s", nt__ossl_reason());
            BIO_free(b);
            return -1;
        }
        n++;
    }
    BIO_free(b);
    ERR_clear_error();
    if (n == 0)
        nt__errf(err, errlen, "the CA text in memory holds no PEM "
                 "certificate");
    return n == 0 ? -1 : n;
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

/* A new nt_tls with a fresh TLS 1.3-only context (session tickets off);
 * NULL with the reason in err and *st set. */
static nt_tls *tls_alloc(nt_status *st, char *err, size_t errlen)
{
    nt_tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        nt__errf(err, errlen, "out of memory");
        *st = NT_ENOMEM;
        return NULL;
    }
    t->ctx = SSL_CTX_new(TLS_method());
    if (t->ctx == NULL ||
        !SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_num_tickets(t->ctx, 0)) {
        nt__errf(err, errlen, "cannot create a TLS context: %s",
               nt__ossl_reason());
        *st = NT_ETLS;
        nt_tls_free(t);
        return NULL;
    }
    return t;
}

/*
 * Checks cert and key (they match, the certificate chains to the CAs of
 * the context's store and carries a CN and a role) and installs them in
 * t's context with the peer requirements.  cert_what, key_what and ca_what
 * name the sources in messages.  Returns NT_OK, NT_EARG or NT_ETLS with
 * err; cert and key stay the caller's.
 */
static nt_status tls_finish(nt_tls *t, X509 *cert, EVP_PKEY *key,
                            const char *cert_what, const char *key_what,
                            const char *ca_what, char *err, size_t errlen)
{
    char why[160];
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        nt__errf(err, errlen, "key '%s' does not match certificate '%s'",
               key_what, cert_what);
        return NT_EARG;
    }
    if (check_chain(SSL_CTX_get_cert_store(t->ctx), cert, cert_what, ca_what,
                    err, errlen) != 0)
        return NT_EARG;
    if (cert_identity(cert, t->name, sizeof t->name, &t->role, why,
                      sizeof why) != NT_OK) {
        nt__errf(err, errlen, "certificate '%s': %s", cert_what, why);
        return NT_EARG;
    }
    if (SSL_CTX_use_certificate(t->ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(t->ctx, key) != 1 ||
        SSL_CTX_check_private_key(t->ctx) != 1) {
        nt__errf(err, errlen, "cannot use certificate '%s': %s", cert_what,
               nt__ossl_reason());
        return NT_ETLS;
    }
    SSL_CTX_set_verify(t->ctx,
                       SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    SSL_CTX_set_verify_depth(t->ctx, 2);
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
    /* Send our certificate alone: every peer holds the CA already.  Idle
     * connections give their record buffers back (RELEASE_BUFFERS): an
     * edge holds tens of thousands of them. */
    SSL_CTX_set_mode(t->ctx,
                     SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    return NT_OK;
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
    nt_status st = NT_EARG;

    if (out)
        *out = NULL;
    if (ca_file == NULL || cert_file == NULL || key_file == NULL ||
        out == NULL) {
        nt__errf(err, errlen, "nt_tls_new needs a CA, a certificate and a key");
        return NT_EARG;
    }
    t = tls_alloc(&st, err, errlen);
    if (t == NULL)
        return st;
    st = NT_EARG;
    if (load_ca_file(SSL_CTX_get_cert_store(t->ctx), ca_file, err, errlen) <
        0)
        goto fail;
    cert = read_pem(cert_file, 0, err, errlen);
    if (cert == NULL)
        goto fail;
    key = read_pem(key_file, 1, err, errlen);
    if (key == NULL)
        goto fail;
    st = tls_finish(t, cert, key, cert_file, key_file, ca_file, err, errlen);
    if (st != NT_OK)
        goto fail;
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

/*
 * nt_tls_new from PEM text in memory (NUL-terminated strings): the same
 * checks and settings; messages name "(memory)" instead of files.  On
 * success *out is owned by the caller (nt_tls_free).
 */
nt_status nt_tls_new_mem(const char *ca_pem, const char *cert_pem,
                         const char *key_pem, nt_tls **out, char *err,
                         size_t errlen)
{
    nt_tls *t = NULL;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    nt_status st = NT_EARG;

    if (out)
        *out = NULL;
    if (ca_pem == NULL || cert_pem == NULL || key_pem == NULL ||
        out == NULL) {
        nt__errf(err, errlen,
                 "nt_tls_new_mem needs a CA, a certificate and a key");
        return NT_EARG;
    }
    t = tls_alloc(&st, err, errlen);
    if (t == NULL)
        return st;
    st = NT_EARG;
    if (load_ca_mem(SSL_CTX_get_cert_store(t->ctx), ca_pem, err, errlen) < 0)
        goto fail;
    cert = read_pem_mem(cert_pem, 0, "the certificate in memory", err,
                        errlen);
    if (cert == NULL)
        goto fail;
    key = read_pem_mem(key_pem, 1, "the key in memory", err, errlen);
    if (key == NULL)
        goto fail;
    st = tls_finish(t, cert, key, "(memory)", "(memory)", "(memory)", err,
                    errlen);
    if (st != NT_OK)
        goto fail;
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

/*
 * An identity: base's context (its CA, settings; shared by reference, not
 * copied) presenting another certificate, checked like nt_tls_new's
 * (matches the key, chains to base's CA, has a CN and a role).  key_pem
 * NULL uses base's own private key (the certificate must then be issued
 * for base's key pair).  Each connection made with it installs the
 * certificate on its SSL object.  On success *out is owned by the caller
 * (nt_tls_free, in any order with base).  Errors: NT_EARG, NT_ENOMEM.
 */
nt_status nt_tls_new_identity(nt_tls *base, const char *cert_pem,
                              const char *key_pem, nt_tls **out, char *err,
                              size_t errlen)
{
    nt_tls *t;
    X509 *cert;
    EVP_PKEY *key;
    char why[160];

    if (out)
        *out = NULL;
    if (base == NULL || cert_pem == NULL || out == NULL) {
        nt__errf(err, errlen,
                 "nt_tls_new_identity needs a base context and a "
                 "certificate");
        return NT_EARG;
    }
    cert = read_pem_mem(cert_pem, 0, "the certificate in memory", err,
                        errlen);
    if (cert == NULL)
        return NT_EARG;
    if (key_pem) {
        key = read_pem_mem(key_pem, 1, "the key in memory", err, errlen);
    } else {
        key = base->key ? base->key : SSL_CTX_get0_privatekey(base->ctx);
        if (key && !EVP_PKEY_up_ref(key))
            key = NULL;
        if (key == NULL)
            nt__errf(err, errlen, "the base context has no private key");
    }
    if (key == NULL) {
        X509_free(cert);
        return NT_EARG;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL) {
        X509_free(cert);
        EVP_PKEY_free(key);
        nt__errf(err, errlen, "out of memory");
        return NT_ENOMEM;
    }
    t->cert = cert;
    t->key = key;
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        nt__errf(err, errlen, "the key does not match the certificate in "
                 "memory");
        goto fail;
    }
    if (check_chain(SSL_CTX_get_cert_store(base->ctx), cert, "(memory)",
                    "(base context)", err, errlen) != 0)
        goto fail;
    if (cert_identity(cert, t->name, sizeof t->name, &t->role, why,
                      sizeof why) != NT_OK) {
        nt__errf(err, errlen, "certificate in memory: %s", why);
        goto fail;
    }
    SSL_CTX_up_ref(base->ctx);
    t->ctx = base->ctx;
    *out = t;
    return NT_OK;
fail:
    nt_tls_free(t);
    return NT_EARG;
}

void nt_tls_free(nt_tls *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ctx);
    X509_free(t->cert);
    EVP_PKEY_free(t->key);
    free(t->sess_dir);
    if (t->lz_used) {
        pthread_mutex_destroy(&t->lz_mu);
        free(t->lz_ca);
        free(t->lz_crt);
        free(t->lz_key);
    }
    free(t);
}

SSL_CTX *nt__tls_ctx(nt_tls *t)
{
    return t->ctx;
}

/* ---- Operator sessions (see TLS_TICKET_KEY_LEN). ----------------------- */

void nt_tls_process_init(void)
{
    /* A process frees nothing at exit: OpenSSL's exit-time cleanup costs a
     * short command (deploy, versions) ~0.3 ms and buys nothing. */
    OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

/* Reads exactly len bytes of path into buf: 0, or -1. */
static int read_exact(const char *path, uint8_t *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    if (fd < 0)
        return -1;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    return got == len ? 0 : -1;
}

/* Writes data to path atomically (temporary file, rename), mode 0600:
 * 0, or -1 with errno. */
static int write_private(const char *path, const void *data, size_t len)
{
    char tmp[4200];
    int fd, e;
    if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >=
        (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
        e = errno ? errno : EIO;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

nt_status nt_tls_operator_tickets(nt_tls *t, const char *key_file, char *err,
                                  size_t errlen)
{
    uint8_t key[TLS_TICKET_KEY_LEN];
    struct stat st;
    int fresh = stat(key_file, &st) == 0 && S_ISREG(st.st_mode) &&
                (st.st_mode & 077) == 0 &&
                time(NULL) - st.st_mtime < TLS_TICKET_KEY_MAX_AGE &&
                st.st_mtime <= time(NULL) + 60;
    if (!fresh || read_exact(key_file, key, sizeof key) != 0) {
        if (RAND_bytes(key, sizeof key) != 1) {
            nt__errf(err, errlen, "cannot make a session ticket key: %s",
                     nt__ossl_reason());
            return NT_ETLS;
        }
        if (write_private(key_file, key, sizeof key) != 0) {
            nt__errf(err, errlen, "cannot write the session ticket key '%s': "
                     "%s", key_file, strerror(errno));
            OPENSSL_cleanse(key, sizeof key);
            return NT_EIO;
        }
    }
    pthread_once(&ex_once, ex_init);
    if (ex_ctx_tickets < 0 ||
        SSL_CTX_set_tlsext_ticket_keys(t->ctx, key, sizeof key) != 1 ||
        SSL_CTX_set_session_id_context(t->ctx,
                                       (const unsigned char *)TLS_SID_CTX,
                                       sizeof TLS_SID_CTX - 1) != 1 ||
        SSL_CTX_set_ex_data(t->ctx, ex_ctx_tickets, t) != 1) {
        OPENSSL_cleanse(key, sizeof key);
        nt__errf(err, errlen, "cannot set up session tickets: %s",
                 nt__ossl_reason());
        return NT_ETLS;
    }
    OPENSSL_cleanse(key, sizeof key);
    SSL_CTX_set_timeout(t->ctx, TLS_SESSION_LIFETIME);
    return NT_OK;
}

/* After an operator's handshake on a node with tickets: one ticket goes
 * out with the next record (a fresh one each time: the cached session is
 * renewed on every use). */
static void ticket_for_operator(SSL *ssl)
{
    if (ex_ctx_tickets < 0 ||
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_ctx_tickets) == NULL)
        return;
    if (SSL_new_session_ticket(ssl) != 1)
        ERR_clear_error();
}

/* The cache file of target's session: DIR/NAME@ADDR.session, with the
 * address's ':' and '/' replaced.  0, or -1 (too long). */
static int session_path(const nt_tls *t, const char *target, char *out,
                        size_t cap)
{
    char addr[300];
    size_t i;
    if (strlen(target) >= sizeof addr)
        return -1;
    for (i = 0; target[i]; i++)
        addr[i] = (target[i] == '/' || target[i] == ':' || target[i] == '\\')
                      ? '_' : target[i];
    addr[i] = '\0';
    return snprintf(out, cap, "%s/%s@%s.session", t->sess_dir,
                    t->label[0] ? t->label : t->name, addr) >= (int)cap ? -1
                                                                       : 0;
}

/* New session from a node (client side): replaces the cache file.  Errors
 * are not fatal: the next command does a full handshake. */
static int session_new(SSL *ssl, SSL_SESSION *sess)
{
    const char *path = ex_ssl_sess >= 0 ? SSL_get_ex_data(ssl, ex_ssl_sess)
                                        : NULL;
    BIO *b;
    char *pem = NULL;
    long n;
    if (path == NULL || !SSL_SESSION_is_resumable(sess))
        return 0;
    b = BIO_new(BIO_s_mem());
    if (b != NULL && PEM_write_bio_SSL_SESSION(b, sess) == 1 &&
        (n = BIO_get_mem_data(b, &pem)) > 0)
        (void)write_private(path, pem, (size_t)n);
    BIO_free(b);
    ERR_clear_error();
    return 0; /* the session is not kept by OpenSSL's cache */
}

/* Client side: offers target's cached session, if there is a usable one,
 * and asks for the node's new ticket to be cached. */
static void offer_session(const nt_tls *t, SSL *ssl, const char *target)
{
    char path[4096];
    char *dup;
    SSL_SESSION *sess = NULL;
    BIO *b;
    if (ex_ssl_sess < 0 || session_path(t, target, path, sizeof path) != 0)
        return;
    b = BIO_new_file(path, "r");
    if (b != NULL)
        sess = PEM_read_bio_SSL_SESSION(b, NULL, NULL, NULL);
    BIO_free(b);
    if (sess != NULL && SSL_SESSION_is_resumable(sess) &&
        (long)time(NULL) <
            (long)SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess))
        SSL_set_session(ssl, sess);
    SSL_SESSION_free(sess);
    ERR_clear_error();
    dup = strdup(path);
    if (dup != NULL && SSL_set_ex_data(ssl, ex_ssl_sess, dup) != 1)
        free(dup);
}

nt_status nt_tls_session_cache(nt_tls *t, const char *dir, char *err,
                               size_t errlen)
{
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        nt__errf(err, errlen, "cannot create the session cache '%s': %s", dir,
                 strerror(errno));
        return NT_EIO;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
        access(dir, W_OK) != 0) {
        nt__errf(err, errlen, "session cache '%s' is not a writable "
                 "directory", dir);
        return NT_EIO;
    }
    pthread_once(&ex_once, ex_init);
    free(t->sess_dir);
    t->sess_dir = strdup(dir);
    if (t->sess_dir == NULL) {
        nt__errf(err, errlen, "out of memory");
        return NT_ENOMEM;
    }
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_CLIENT |
                                               SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(t->ctx, session_new);
    return NT_OK;
}

/* ---- Lazy client contexts (nt_tls_new_lazy). ---------------------------- */

/* Parses and checks the CA, certificate and key once (any thread): 1, or
 * -1 with t->lz_err.  The certificate and key are then installed on every
 * new SSL object by nt__tls_apply and on the handshake's by lazy_cert_cb. */
static int lazy_load(nt_tls *t)
{
    char err[400];
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    pthread_mutex_lock(&t->lz_mu);
    if (t->lz_state != 0)
        goto out;
    t->lz_state = -1;
    if (load_ca_file(SSL_CTX_get_cert_store(t->ctx), t->lz_ca, err,
                     sizeof err) < 0 ||
        (cert = read_pem(t->lz_crt, 0, err, sizeof err)) == NULL ||
        (key = read_pem(t->lz_key, 1, err, sizeof err)) == NULL)
        goto fail;
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        nt__errf(err, sizeof err, "key '%s' does not match certificate '%s'",
                 t->lz_key, t->lz_crt);
        goto fail;
    }
    if (check_chain(SSL_CTX_get_cert_store(t->ctx), cert, t->lz_crt,
                    t->lz_ca, err, sizeof err) != 0)
        goto fail;
    {
        char why[160];
        if (cert_identity(cert, t->name, sizeof t->name, &t->role, why,
                          sizeof why) != NT_OK) {
            nt__errf(err, sizeof err, "certificate '%s': %s", t->lz_crt, why);
            goto fail;
        }
    }
    t->cert = cert;
    t->key = key;
    t->lz_state = 1;
    goto out;
fail:
    X509_free(cert);
    EVP_PKEY_free(key);
    snprintf(t->lz_err, sizeof t->lz_err, "%s", err);
out:
    {
        int st = t->lz_state;
        pthread_mutex_unlock(&t->lz_mu);
        return st;
    }
}

/* The node asks for our certificate (a full handshake, not a resumed
 * one): parsed now. */
static int lazy_cert_cb(SSL *ssl, void *arg)
{
    nt_tls *t = arg;
    if (lazy_load(t) != 1)
        return 0;
    if (SSL_use_certificate(ssl, t->cert) != 1 ||
        SSL_use_PrivateKey(ssl, t->key) != 1) {
        ERR_clear_error();
        return 0;
    }
    return 1;
}

/* The node's certificate is to be checked: the CA is loaded first. */
static int lazy_verify_cb(X509_STORE_CTX *x, void *arg)
{
    nt_tls *t = arg;
    if (lazy_load(t) != 1) {
        X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return X509_verify_cert(x);
}

nt_status nt_tls_new_lazy(const char *ca_file, const char *cert_file,
                          const char *key_file, nt_tls **out, char *err,
                          size_t errlen)
{
    const char *paths[3] = {ca_file, cert_file, key_file};
    static const char *const what[3] = {"CA file", "certificate", "key"};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uint8_t pem[16384];
    size_t n = 0;
    nt_status st = NT_EARG;
    nt_tls *t;

    if (out)
        *out = NULL;
    if (!ca_file || !cert_file || !key_file || !out) {
        nt__errf(err, errlen,
                 "nt_tls_new_lazy needs a CA, a certificate and a key");
        return NT_EARG;
    }
    /* The usual mistakes (a missing or unreadable file) show at once. */
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(paths[i], "r");
        if (f == NULL) {
            nt__errf(err, errlen, "cannot read %s '%s': %s", what[i],
                     paths[i], strerror(errno));
            return NT_EARG;
        }
        if (i == 1)
            n = fread(pem, 1, sizeof pem, f);
        fclose(f);
    }
    t = tls_alloc(&st, err, errlen);
    if (t == NULL)
        return st;
    pthread_once(&ex_once, ex_init);
    pthread_mutex_init(&t->lz_mu, NULL);
    t->lz_used = 1;
    t->lz_ca = strdup(ca_file);
    t->lz_crt = strdup(cert_file);
    t->lz_key = strdup(key_file);
    if (!t->lz_ca || !t->lz_crt || !t->lz_key) {
        nt__errf(err, errlen, "out of memory");
        nt_tls_free(t);
        return NT_ENOMEM;
    }
    /* Cache files are named after the certificate's content: another
     * certificate in the same place never resumes this one's sessions. */
    if (EVP_Digest(pem, n, md, &mdlen, EVP_sha256(), NULL) == 1) {
        snprintf(t->label, sizeof t->label, "id-");
        for (unsigned i = 0; i < 8 && i < mdlen; i++)
            snprintf(t->label + 3 + 2 * i, sizeof t->label - 3 - 2 * i,
                     "%02x", md[i]);
    }
    if (ex_ctx_lazy < 0 || SSL_CTX_set_ex_data(t->ctx, ex_ctx_lazy, t) != 1) {
        nt__errf(err, errlen, "cannot create a TLS context: %s",
                 nt__ossl_reason());
        nt_tls_free(t);
        return NT_ETLS;
    }
    SSL_CTX_set_cert_cb(t->ctx, lazy_cert_cb, t);
    SSL_CTX_set_cert_verify_callback(t->ctx, lazy_verify_cb, t);
    SSL_CTX_set_verify(t->ctx,
                       SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    SSL_CTX_set_verify_depth(t->ctx, 2);
    SSL_CTX_set_mode(t->ctx,
                     SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    *out = t;
    return NT_OK;
}

/* The reason a lazy context could not be used, or NULL. */
static const char *lazy_failure(SSL *ssl)
{
    nt_tls *t = ex_ctx_lazy >= 0
                    ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_ctx_lazy)
                    : NULL;
    const char *why = NULL;
    if (t == NULL)
        return NULL;
    pthread_mutex_lock(&t->lz_mu);
    if (t->lz_state < 0)
        why = t->lz_err;
    pthread_mutex_unlock(&t->lz_mu);
    return why;
}

/* Installs an identity's certificate and key on a new SSL object of its
 * context (nothing to do for a context made by nt_tls_new*).  Returns 0,
 * or -1 (OpenSSL error queue cleared). */
int nt__tls_apply(const nt_tls *t, SSL *ssl, const char *target)
{
    if (t->cert != NULL &&
        (SSL_use_certificate(ssl, t->cert) != 1 ||
         SSL_use_PrivateKey(ssl, t->key) != 1)) {
        ERR_clear_error();
        return -1;
    }
    if (t->sess_dir != NULL && target != NULL)
        offer_session(t, ssl, target);
    return 0;
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
    nt_status st = cert_identity(peer, name, cap, role, err, errlen);
    if (st != NT_OK)
        return st;
    if (SSL_is_server(ssl) && *role == NT_ROLE_OPERATOR)
        ticket_for_operator(ssl);
    return NT_OK;
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
    if ((r = lazy_failure(ssl)) != NULL) { /* our own files, parsed late */
        nt__errf(err, errlen, "%s", r);
        ERR_clear_error();
        return NT_EARG;
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
