/*
 * ca.c - isoflow's certificate authority (OpenSSL 3, Ed25519): creates a CA
 * directory (ca.key 0600, ca.crt) and issues node and operator certificates
 * carrying the node name as CN and the role as OU "role:<name>"; plus the
 * role names of net.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net_int.h"
#include "platform.h"

#define CA_DAYS 3650      /* a CA certificate: 10 years */
#define LEAF_DAYS 825     /* default node certificate validity */
#define MAX_DAYS 36500    /* upper bound accepted for --days */
#define CA_NAME_MAX 53    /* "NAME isoflow CA" must fit a 64-char CN */
#define PATH_CAP 4096

static const char *const role_names[] = {NULL, "device", "edge", "cloud",
                                         "operator"};

const char *nt_role_name(int role)
{
    if (role < NT_ROLE_DEVICE || role > NT_ROLE_OPERATOR)
        return "?";
    return role_names[role];
}

int nt_role_parse(const char *name)
{
    if (name == NULL)
        return 0;
    for (int r = NT_ROLE_DEVICE; r <= NT_ROLE_OPERATOR; r++)
        if (strcmp(role_names[r], name) == 0)
            return r;
    return 0;
}

int nt__cert_name_ok(const char *name)
{
    return pl_name_ok(name, NT_MAX_NAME);
}

/* dir + "/" + file into out; 0, or -1 when it does not fit. */
static int join(char *out, size_t cap, const char *dir, const char *file)
{
    int n = snprintf(out, cap, "%s/%s", dir, file);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* A fresh Ed25519 key (caller frees with EVP_PKEY_free) or NULL. */
static EVP_PKEY *ed25519_new(void)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_from_name(NULL, "ED25519", NULL);
    if (kc == NULL || EVP_PKEY_keygen_init(kc) <= 0 ||
        EVP_PKEY_generate(kc, &key) <= 0)
        key = NULL;
    EVP_PKEY_CTX_free(kc);
    return key;
}

/* A random positive 127-bit serial number into x.  Returns 1 or 0. */
static int set_random_serial(X509 *x)
{
    unsigned char b[16];
    BIGNUM *bn;
    int ok;
    if (RAND_bytes(b, sizeof b) != 1)
        return 0;
    b[0] &= 0x7f;
    b[0] |= 0x40; /* never zero, always 16 bytes */
    bn = BN_bin2bn(b, sizeof b, NULL);
    ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    return ok;
}

/* Adds one extension given in OpenSSL's configuration syntax ("critical,
 * CA:TRUE").  Returns 1 or 0. */
static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    int ok = ext != NULL && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* Writes key (PKCS#8 PEM, unencrypted) or cert (PEM) to a new file `path`
 * created exclusively with `mode`, synced to disk.  Returns 0, or -1 with
 * the reason in err (the file is removed on a failed write). */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *cert,
                     char *err, size_t errlen)
{
    FILE *f;
    int ok;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0) {
        nt__errf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
        return -1;
    }
    /* The umask may only have removed bits: set exactly `mode`. */
    if (fchmod(fd, mode) != 0 || (f = fdopen(fd, "w")) == NULL) {
        nt__errf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    errno = 0;
    if (key)
        ok = PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    else
        ok = PEM_write_X509(f, cert);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        nt__errf(err, errlen, "cannot write '%s': %s", path,
               errno ? strerror(errno) : nt__ossl_reason());
        unlink(path);
        return -1;
    }
    return 0;
}

/* 1 when path exists (any kind of file). */
static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/*
 * Builds a certificate for `key` with subject `subj`, issued by `issuer`
 * (NULL: self-signed) and signed with `signer`; notBefore = now + offset,
 * notAfter = notBefore + days.  `exts` lists NID/value pairs, ending at
 * NID_undef.  Returns the certificate (caller frees with X509_free) or NULL
 * with OpenSSL's reason in err.
 */
static X509 *make_cert(EVP_PKEY *key, X509_NAME *subj, X509 *issuer,
                       EVP_PKEY *signer, int days, long offset,
                       const int *nids, const char *const *values, char *err,
                       size_t errlen)
{
    X509V3_CTX v3;
    X509 *x = X509_new();
    if (x == NULL || !X509_set_version(x, X509_VERSION_3) ||
        !set_random_serial(x) || !X509_set_subject_name(x, subj) ||
        !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
                                        : subj) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), offset) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), days, offset, NULL) ||
        !X509_set_pubkey(x, key))
        goto fail;
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    for (int i = 0; nids[i] != NID_undef; i++)
        if (!add_ext(x, &v3, nids[i], values[i]))
            goto fail;
    /* Ed25519 signs the message itself: no separate digest. */
    if (X509_sign(x, signer, NULL) <= 0)
        goto fail;
    return x;
fail:
    nt__errf(err, errlen, "cannot build certificate: %s", nt__ossl_reason());
    X509_free(x);
    return NULL;
}

/* The last path component of dir ("certs" for "/a/certs/"), into out. */
static void base_name(const char *dir, char *out, size_t cap)
{
    size_t end = strlen(dir), start;
    while (end > 1 && dir[end - 1] == '/')
        end--;
    start = end;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    if (end - start >= cap)
        end = start + cap - 1;
    memcpy(out, dir + start, end - start);
    out[end - start] = '\0';
}

/*
 * Creates the CA in dir (created if missing): an Ed25519 key in ca.key
 * (0600) and a self-signed certificate in ca.crt (0644) with subject
 * "CN=<name> isoflow CA", basicConstraints CA:TRUE and keyUsage keyCertSign
 * (both critical), a random serial and a validity of 10 years.  name NULL
 * or "" takes the directory's last component.  Refuses (NT_EARG) an
 * existing ca.key or ca.crt and invalid names; NT_EIO on file errors.
 */
nt_status nt_ca_init(const char *dir, const char *name, char *err,
                     size_t errlen)
{
    static const int nids[] = {NID_basic_constraints, NID_key_usage,
                               NID_subject_key_identifier, NID_undef};
    static const char *const values[] = {"critical,CA:TRUE",
                                         "critical,keyCertSign", "hash"};
    char keyp[PATH_CAP], crtp[PATH_CAP], cn[NT_MAX_NAME + 16];
    char defname[NT_MAX_NAME + 1];
    EVP_PKEY *key = NULL;
    X509_NAME *subj = NULL;
    X509 *x = NULL;
    nt_status st = NT_EIO;

    if (dir == NULL || dir[0] == '\0') {
        nt__errf(err, errlen, "no CA directory given");
        return NT_EARG;
    }
    if (name == NULL || name[0] == '\0') {
        base_name(dir, defname, sizeof defname);
        name = defname;
    }
    if (!nt__cert_name_ok(name) || strlen(name) > CA_NAME_MAX) {
        nt__errf(err, errlen,
               "invalid CA name '%s' (1 to %d characters from A-Z a-z 0-9 "
               ". _ -, starting with a letter or digit)",
               name, CA_NAME_MAX);
        return NT_EARG;
    }
    if (join(keyp, sizeof keyp, dir, "ca.key") != 0 ||
        join(crtp, sizeof crtp, dir, "ca.crt") != 0) {
        nt__errf(err, errlen, "CA directory path too long");
        return NT_EARG;
    }
    if (exists(keyp) || exists(crtp)) {
        nt__errf(err, errlen, "a CA already exists in '%s' (%s present)", dir,
               exists(keyp) ? "ca.key" : "ca.crt");
        return NT_EARG;
    }
    if (pl_mkdirs(dir) != 0) {
        nt__errf(err, errlen, "cannot create directory '%s': %s", dir,
               strerror(errno));
        return NT_EIO;
    }
    snprintf(cn, sizeof cn, "%s isoflow CA", name);
    key = ed25519_new();
    subj = X509_NAME_new();
    if (key == NULL || subj == NULL ||
        !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0)) {
        nt__errf(err, errlen, "cannot create the CA key: %s", nt__ossl_reason());
        st = NT_ENOMEM;
        goto out;
    }
    x = make_cert(key, subj, NULL, key, CA_DAYS, 0, nids, values, err,
                  errlen);
    if (x == NULL) {
        st = NT_ETLS;
        goto out;
    }
    if (write_pem(keyp, 0600, key, NULL, err, errlen) != 0)
        goto out;
    if (write_pem(crtp, 0644, NULL, x, err, errlen) != 0) {
        unlink(keyp);
        goto out;
    }
    st = NT_OK;
out:
    X509_free(x);
    X509_NAME_free(subj);
    EVP_PKEY_free(key);
    return st;
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

/* Reads one PEM certificate (or key when want_key) from path.  Returns it
 * (caller frees) or NULL with the reason in err. */
static void *read_pem(const char *path, int want_key, const char *what,
                      char *err, size_t errlen)
{
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
        nt__errf(err, errlen, "cannot parse %s '%s': %s", what, path,
               nt__ossl_reason());
    return obj;
}

/*
 * Issues NAME's Ed25519 key and certificate signed by the CA of ca_dir
 * (see net.h): CN=NAME, OU=role:<role>, CA:FALSE, keyUsage
 * digitalSignature (critical), extendedKeyUsage serverAuth+clientAuth,
 * subjectAltName DNS:NAME, DNS:localhost, IP:127.0.0.1.  out_dir NULL
 * means ca_dir; it is created if missing.  Existing NAME.crt / NAME.key are
 * not overwritten (NT_EARG).
 */
nt_status nt_ca_issue(const char *ca_dir, const char *name, int role,
                      int days, long valid_from_offset_s,
                      const char *out_dir, char *err, size_t errlen)
{
    static const int nids[] = {NID_basic_constraints,
                               NID_key_usage,
                               NID_ext_key_usage,
                               NID_subject_alt_name,
                               NID_subject_key_identifier,
                               NID_authority_key_identifier,
                               NID_undef};
    char values_san[NT_MAX_NAME + 48];
    const char *values[] = {"critical,CA:FALSE",
                            "critical,digitalSignature",
                            "serverAuth,clientAuth",
                            values_san,
                            "hash",
                            "keyid:always"};
    char cakeyp[PATH_CAP], cacrtp[PATH_CAP], keyp[PATH_CAP], crtp[PATH_CAP];
    char file[NT_MAX_NAME + 8], ou[32];
    EVP_PKEY *cakey = NULL, *key = NULL;
    X509 *cacrt = NULL, *x = NULL;
    X509_NAME *subj = NULL;
    nt_status st = NT_EIO;

    if (ca_dir == NULL || ca_dir[0] == '\0') {
        nt__errf(err, errlen, "no CA directory given");
        return NT_EARG;
    }
    if (!nt__cert_name_ok(name)) {
        nt__errf(err, errlen,
               "invalid name '%s' (1 to %u characters from A-Z a-z 0-9 . _ "
               "-, starting with a letter or digit)",
               name ? name : "", NT_MAX_NAME);
        return NT_EARG;
    }
    if (role < NT_ROLE_DEVICE || role > NT_ROLE_OPERATOR) {
        nt__errf(err, errlen,
               "invalid role %d (device, edge, cloud or operator)", role);
        return NT_EARG;
    }
    if (days < 0 || days > MAX_DAYS) {
        nt__errf(err, errlen, "invalid validity of %d days (1 to %d)", days,
               MAX_DAYS);
        return NT_EARG;
    }
    if (days == 0)
        days = LEAF_DAYS;
    if (out_dir == NULL || out_dir[0] == '\0')
        out_dir = ca_dir;
    snprintf(file, sizeof file, "%s.key", name);
    if (join(cakeyp, sizeof cakeyp, ca_dir, "ca.key") != 0 ||
        join(cacrtp, sizeof cacrtp, ca_dir, "ca.crt") != 0 ||
        join(keyp, sizeof keyp, out_dir, file) != 0) {
        nt__errf(err, errlen, "path too long");
        return NT_EARG;
    }
    snprintf(file, sizeof file, "%s.crt", name);
    if (join(crtp, sizeof crtp, out_dir, file) != 0) {
        nt__errf(err, errlen, "path too long");
        return NT_EARG;
    }
    if (exists(keyp) || exists(crtp)) {
        nt__errf(err, errlen,
               "'%s' already exists (remove it to issue a new certificate)",
               exists(keyp) ? keyp : crtp);
        return NT_EARG;
    }

    cacrt = read_pem(cacrtp, 0, "CA certificate", err, errlen);
    if (cacrt == NULL)
        goto out;
    cakey = read_pem(cakeyp, 1, "CA key", err, errlen);
    if (cakey == NULL)
        goto out;
    if (X509_check_private_key(cacrt, cakey) != 1) {
        ERR_clear_error();
        nt__errf(err, errlen, "CA key '%s' does not match CA certificate '%s'",
               cakeyp, cacrtp);
        st = NT_EARG;
        goto out;
    }
    if (pl_mkdirs(out_dir) != 0) {
        nt__errf(err, errlen, "cannot create directory '%s': %s", out_dir,
               strerror(errno));
        goto out;
    }

    snprintf(ou, sizeof ou, "role:%s", nt_role_name(role));
    snprintf(values_san, sizeof values_san,
             "DNS:%s,DNS:localhost,IP:127.0.0.1", name);
    key = ed25519_new();
    subj = X509_NAME_new();
    if (key == NULL || subj == NULL ||
        !X509_NAME_add_entry_by_txt(subj, "OU", MBSTRING_UTF8,
                                    (const unsigned char *)ou, -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)name, -1, -1, 0)) {
        nt__errf(err, errlen, "cannot create the key: %s", nt__ossl_reason());
        st = NT_ENOMEM;
        goto out;
    }
    x = make_cert(key, subj, cacrt, cakey, days, valid_from_offset_s, nids,
                  values, err, errlen);
    if (x == NULL) {
        st = NT_ETLS;
        goto out;
    }
    if (write_pem(keyp, 0600, key, NULL, err, errlen) != 0)
        goto out;
    if (write_pem(crtp, 0644, NULL, x, err, errlen) != 0) {
        unlink(keyp);
        goto out;
    }
    st = NT_OK;
out:
    X509_free(x);
    X509_NAME_free(subj);
    EVP_PKEY_free(key);
    EVP_PKEY_free(cakey);
    X509_free(cacrt);
    return st;
}
