/*
 * sig.c - Ed25519 signing keys, detached module signatures and their
 * verification (OpenSSL 3 EVP).  The signature format is a strict text
 * format documented in docs/DEPLOY.md; the parser here is its only reader
 * and treats its input as hostile: bounded, exact order, exact errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "deploy_int.h"
#include "platform.h"

#define SIG_MAGIC "isoflow-signature"
#define KEY_FILE_MAX (16u * 1024u)

struct dp_trust {
    size_t n;
    struct {
        char id[DP_KEY_ID_HEX + 1];
        char name[DP_MAX_NAME + 1];
        EVP_PKEY *pk;
    } keys[DP_MAX_TRUSTED];
};

/* The key id of an Ed25519 key (public or private) into id.  1 or 0. */
static int key_id_of(EVP_PKEY *k, char id[DP_KEY_ID_HEX + 1])
{
    uint8_t raw[32], md[32];
    size_t rawlen = sizeof raw;
    unsigned int mdlen = 0;
    if (EVP_PKEY_get_raw_public_key(k, raw, &rawlen) != 1 || rawlen != 32 ||
        EVP_Digest(raw, rawlen, md, &mdlen, EVP_sha256(), NULL) != 1)
        return 0;
    dp__hex(md, DP_KEY_ID_HEX / 2, id);
    return 1;
}

/* Writes a fresh PEM file created exclusively with mode and synced; the
 * file is removed on failure.  Returns DP_OK or DP_EIO/DP_ECRYPTO. */
static dp_status write_key(const char *path, unsigned mode, EVP_PKEY *k,
                           int private_part, char *err, size_t errlen)
{
    FILE *f;
    int ok, fd = open(path, O_WRONLY | O_CREAT | O_EXCL, (mode_t)mode);
    if (fd < 0) {
        dp__errf(err, errlen, "cannot create '%s': %s", path,
                 strerror(errno));
        return DP_EIO;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || (f = fdopen(fd, "w")) == NULL) {
        dp__errf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return DP_EIO;
    }
    errno = 0;
    ok = private_part
             ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)
             : PEM_write_PUBKEY(f, k);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        dp__errf(err, errlen, "cannot write '%s': %s", path,
                 errno ? strerror(errno) : dp__ossl_reason());
        unlink(path);
        return DP_EIO;
    }
    return DP_OK;
}

dp_status dp_key_gen(const char *dir, const char *name,
                     char key_id[DP_KEY_ID_HEX + 1], char *err, size_t errlen)
{
    char kpath[DP__PATH_CAP], ppath[DP__PATH_CAP], id[DP_KEY_ID_HEX + 1];
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *kc = NULL;
    struct stat st;
    dp_status rc = DP_ECRYPTO;
    int n1, n2;

    if (dir == NULL || name == NULL || !dp_name_ok(name)) {
        dp__errf(err, errlen,
                 "invalid key name '%s' (1-%u characters of A-Z a-z 0-9 . _ "
                 "-, starting with a letter or digit)",
                 name ? name : "(null)", DP_MAX_NAME);
        return DP_EARG;
    }
    n1 = snprintf(kpath, sizeof kpath, "%s/%s.key", dir, name);
    n2 = snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name);
    if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof kpath ||
        (size_t)n2 >= sizeof ppath) {
        dp__errf(err, errlen, "directory path too long");
        return DP_EARG;
    }
    if (stat(kpath, &st) == 0 || stat(ppath, &st) == 0) {
        dp__errf(err, errlen, "'%s' already exists (not overwritten)",
                 stat(kpath, &st) == 0 ? kpath : ppath);
        return DP_EIO;
    }
    if (pl_mkdirs(dir) != 0) {
        dp__errf(err, errlen, "cannot create directory '%s': %s", dir,
                 strerror(errno));
        return DP_EIO;
    }
    kc = EVP_PKEY_CTX_new_from_name(NULL, "ED25519", NULL);
    if (kc == NULL || EVP_PKEY_keygen_init(kc) <= 0 ||
        EVP_PKEY_generate(kc, &k) <= 0 || !key_id_of(k, id)) {
        dp__errf(err, errlen, "cannot generate an Ed25519 key: %s",
                 dp__ossl_reason());
        goto out;
    }
    rc = write_key(kpath, 0600, k, 1, err, errlen);
    if (rc != DP_OK)
        goto out;
    rc = write_key(ppath, 0644, k, 0, err, errlen);
    if (rc != DP_OK) {
        unlink(kpath);
        goto out;
    }
    if (key_id)
        memcpy(key_id, id, sizeof id);
out:
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(kc);
    return rc;
}

/* Loads an Ed25519 key from PEM text: private (want_private) or public.
 * Returns the key (caller frees with EVP_PKEY_free) or NULL. */
static EVP_PKEY *pem_key(const char *pem, size_t len, int want_private)
{
    EVP_PKEY *k;
    BIO *b;
    if (len > KEY_FILE_MAX)
        return NULL;
    b = BIO_new_mem_buf(pem, (int)len);
    if (b == NULL)
        return NULL;
    k = want_private ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)
                     : PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
    BIO_free(b);
    if (k != NULL && !EVP_PKEY_is_a(k, "ED25519")) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    ERR_clear_error();
    return k;
}

dp_status dp_sign_bytes(const char *key_file, const uint8_t *module,
                        size_t len, const char *stage, uint64_t version,
                        char *out, size_t cap, size_t *out_len, char *err,
                        size_t errlen)
{
    char text[DP_SIG_MAX], id[DP_KEY_ID_HEX + 1], sha[DP_SHA256_HEX + 1];
    char hex[129];
    uint8_t sig[64], *pem = NULL;
    size_t pemlen = 0, siglen = sizeof sig;
    EVP_PKEY *k = NULL;
    EVP_MD_CTX *md = NULL;
    dp_status rc;
    int n, m;

    if (key_file == NULL || (module == NULL && len > 0) || out == NULL ||
        out_len == NULL) {
        dp__errf(err, errlen, "dp_sign_bytes: NULL argument");
        return DP_EARG;
    }
    if (stage != NULL && stage[0] != '\0' && !dp_name_ok(stage)) {
        dp__errf(err, errlen, "invalid stage name '%s'", stage);
        return DP_EARG;
    }
    if (version > DP_MAX_VERSION) {
        dp__errf(err, errlen, "version %llu out of range (1 to %llu)",
                 (unsigned long long)version, DP_MAX_VERSION);
        return DP_EARG;
    }
    rc = dp__read_file(key_file, KEY_FILE_MAX, &pem, &pemlen, err, errlen);
    if (rc != DP_OK)
        return rc;
    rc = DP_ECRYPTO;
    k = pem_key((const char *)pem, pemlen, 1);
    if (k == NULL || !key_id_of(k, id)) {
        dp__errf(err, errlen, "'%s' is not an Ed25519 private key (PEM)",
                 key_file);
        goto out;
    }
    if (dp_sha256_hex(module, len, sha) != DP_OK) {
        dp__errf(err, errlen, "SHA-256 failed");
        goto out;
    }
    n = snprintf(text, sizeof text,
                 SIG_MAGIC " %d\nkey %s\nsha256 %s\nsize %llu\n",
                 DP_SIG_VERSION, id, sha, (unsigned long long)len);
    if (stage != NULL && stage[0] != '\0')
        n += snprintf(text + n, sizeof text - (size_t)n, "stage %s\n", stage);
    if (version != 0)
        n += snprintf(text + n, sizeof text - (size_t)n, "version %llu\n",
                      (unsigned long long)version);
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestSignInit(md, NULL, NULL, NULL, k) != 1 ||
        EVP_DigestSign(md, sig, &siglen, (const uint8_t *)text,
                       (size_t)n) != 1 ||
        siglen != sizeof sig) {
        dp__errf(err, errlen, "signing failed: %s", dp__ossl_reason());
        goto out;
    }
    dp__hex(sig, sizeof sig, hex);
    m = snprintf(text + n, sizeof text - (size_t)n, "ed25519 %s\n", hex);
    if (m < 0 || (size_t)(n + m) >= cap) {
        dp__errf(err, errlen, "output buffer too small for the signature");
        rc = DP_EARG;
        goto out;
    }
    memcpy(out, text, (size_t)(n + m));
    out[n + m] = '\0';
    *out_len = (size_t)(n + m);
    rc = DP_OK;
out:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    free(pem);
    return rc;
}

dp_status dp_sign(const char *key_file, const char *module_file,
                  const char *out_sig_file, const char *stage,
                  uint64_t version, dp_sig_info *info, char *err,
                  size_t errlen)
{
    uint8_t *mod = NULL;
    size_t len = 0, slen = 0;
    char text[DP_SIG_MAX + 1];
    dp_status rc;

    if (module_file == NULL || out_sig_file == NULL) {
        dp__errf(err, errlen, "dp_sign: NULL argument");
        return DP_EARG;
    }
    rc = dp__read_file(module_file, DP_DEFAULT_MAX_MODULE, &mod, &len, err,
                       errlen);
    if (rc != DP_OK)
        return rc;
    rc = dp_sign_bytes(key_file, mod, len, stage, version, text, sizeof text,
                       &slen, err, errlen);
    if (rc == DP_OK)
        rc = dp__write_atomic(out_sig_file, text, slen, 0644, err, errlen);
    if (rc == DP_OK && info != NULL)
        rc = dp_sig_parse((const uint8_t *)text, slen, info, NULL, err,
                          errlen);
    free(mod);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The parser. */

typedef struct cursor {
    const char *p, *end;
    unsigned line;
} cursor;

/* The next line (without its LF) into *s and *n.  0 at the end of input; -1
 * for a line without LF or with a forbidden byte (reason in err). */
static int next_line(cursor *c, const char **s, size_t *n, char *err,
                     size_t errlen)
{
    const char *nl;
    if (c->p == c->end)
        return 0;
    c->line++;
    nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    if (nl == NULL) {
        dp__errf(err, errlen, "malformed signature: line %u: no newline at "
                 "the end", c->line);
        return -1;
    }
    for (const char *q = c->p; q < nl; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch < 0x20 || ch > 0x7e) {
            dp__errf(err, errlen, "malformed signature: line %u: byte 0x%02x "
                     "not allowed", c->line, ch);
            return -1;
        }
    }
    *s = c->p;
    *n = (size_t)(nl - c->p);
    c->p = nl + 1;
    return 1;
}

/* When line (s, n) is "<kw> <value>", sets *v / *vn and returns 1. */
static int keyword(const char *s, size_t n, const char *kw, const char **v,
                   size_t *vn)
{
    size_t k = strlen(kw);
    if (n <= k + 1 || memcmp(s, kw, k) != 0 || s[k] != ' ')
        return 0;
    *v = s + k + 1;
    *vn = n - k - 1;
    return 1;
}

/* Exactly want lower-case hex digits; decoded into out (may be NULL). */
static int hex_ok(const char *v, size_t n, size_t want, uint8_t *out)
{
    if (n != want)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                                          : -1;
        if (d < 0)
            return 0;
        if (out)
            out[i / 2] = (uint8_t)(i % 2 ? (out[i / 2] | d) : d << 4);
    }
    return 1;
}

/* A canonical decimal (no sign, no leading zero) up to max.  1 or 0. */
static int dec_ok(const char *v, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0 || n > 20 || (n > 1 && v[0] == '0'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 0;
        if (x > (max - (uint64_t)(v[i] - '0')) / 10)
            return 0;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 1;
}

/* Parses and returns the offset where the signed part ends in *signed_len. */
static dp_status parse(const uint8_t *sig, size_t len, dp_sig_info *info,
                       uint8_t raw[64], size_t *signed_len, char *err,
                       size_t errlen)
{
    cursor c;
    const char *s, *v;
    size_t n, vn;
    int r;

    memset(info, 0, sizeof *info);
    if (sig == NULL || len == 0) {
        dp__errf(err, errlen, "unsigned");
        return DP_EUNSIGNED;
    }
    if (len > DP_SIG_MAX) {
        dp__errf(err, errlen, "malformed signature: %zu bytes, more than "
                 "%u", len, DP_SIG_MAX);
        return DP_EMALFORMED;
    }
    c.p = (const char *)sig;
    c.end = c.p + len;
    c.line = 0;
#define NEXT(what)                                                           \
    do {                                                                     \
        r = next_line(&c, &s, &n, err, errlen);                              \
        if (r < 0)                                                           \
            return DP_EMALFORMED;                                            \
        if (r == 0) {                                                        \
            dp__errf(err, errlen, "malformed signature: line %u: missing "   \
                     "'%s' line", c.line + 1, what);                         \
            return DP_EMALFORMED;                                            \
        }                                                                    \
    } while (0)
#define BAD(...)                                                             \
    do {                                                                     \
        char m_[160];                                                        \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                \
        dp__errf(err, errlen, "malformed signature: line %u: %s", c.line,    \
                 m_);                                                        \
        return DP_EMALFORMED;                                                \
    } while (0)

    NEXT(SIG_MAGIC);
    if (!keyword(s, n, SIG_MAGIC, &v, &vn))
        BAD("expected '" SIG_MAGIC " 1'");
    {
        uint64_t fv;
        if (!dec_ok(v, vn, 1000000, &fv))
            BAD("bad format version");
        if (fv != DP_SIG_VERSION)
            BAD("unsupported format version %llu (this is version %d)",
                (unsigned long long)fv, DP_SIG_VERSION);
        info->format = (unsigned)fv;
    }
    NEXT("key");
    if (!keyword(s, n, "key", &v, &vn))
        BAD("expected 'key <id>'");
    if (!hex_ok(v, vn, DP_KEY_ID_HEX, NULL))
        BAD("key id must be %u lower-case hex digits", DP_KEY_ID_HEX);
    memcpy(info->key_id, v, vn);
    NEXT("sha256");
    if (!keyword(s, n, "sha256", &v, &vn))
        BAD("expected 'sha256 <hash>'");
    if (!hex_ok(v, vn, DP_SHA256_HEX, NULL))
        BAD("sha256 must be %u lower-case hex digits", DP_SHA256_HEX);
    memcpy(info->sha256, v, vn);
    NEXT("size");
    if (!keyword(s, n, "size", &v, &vn))
        BAD("expected 'size <bytes>'");
    if (!dec_ok(v, vn, UINT64_MAX, &info->size))
        BAD("bad size");
    NEXT("ed25519");
    if (keyword(s, n, "stage", &v, &vn)) {
        if (vn > DP_MAX_NAME)
            BAD("stage name longer than %u", DP_MAX_NAME);
        memcpy(info->stage, v, vn);
        info->stage[vn] = '\0';
        if (!dp_name_ok(info->stage))
            BAD("invalid stage name");
        NEXT("ed25519");
    }
    if (keyword(s, n, "version", &v, &vn)) {
        if (!dec_ok(v, vn, DP_MAX_VERSION, &info->version) ||
            info->version == 0)
            BAD("version must be 1 to %llu", DP_MAX_VERSION);
        NEXT("ed25519");
    }
    *signed_len = (size_t)(s - (const char *)sig);
    if (!keyword(s, n, "ed25519", &v, &vn))
        BAD("expected 'ed25519 <signature>' (or stage, version in that "
            "order)");
    if (!hex_ok(v, vn, 128, raw))
        BAD("signature must be 128 lower-case hex digits");
    r = next_line(&c, &s, &n, err, errlen);
    if (r != 0) {
        if (r > 0)
            dp__errf(err, errlen, "malformed signature: line %u: "
                     "unexpected content after the signature", c.line);
        return DP_EMALFORMED;
    }
#undef NEXT
#undef BAD
    return DP_OK;
}

dp_status dp_sig_parse(const uint8_t *sig, size_t len, dp_sig_info *info,
                       uint8_t raw_sig[64], char *err, size_t errlen)
{
    uint8_t raw[64];
    size_t signed_len;
    dp_status rc;
    if (info == NULL) {
        dp__errf(err, errlen, "dp_sig_parse: NULL argument");
        return DP_EARG;
    }
    rc = parse(sig, len, info, raw, &signed_len, err, errlen);
    if (rc == DP_OK && raw_sig != NULL)
        memcpy(raw_sig, raw, sizeof raw);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Trust sets and verification. */

dp_trust *dp_trust_new(void)
{
    return calloc(1, sizeof(dp_trust));
}

void dp_trust_free(dp_trust *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        EVP_PKEY_free(t->keys[i].pk);
    free(t);
}

size_t dp_trust_count(const dp_trust *t)
{
    return t ? t->n : 0;
}

const char *dp_trust_key_name(const dp_trust *t, const char *key_id)
{
    if (!t || !key_id)
        return NULL;
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->keys[i].id, key_id) == 0)
            return t->keys[i].name;
    return NULL;
}

dp_status dp_trust_add_pem(dp_trust *t, const char *name, const char *pem,
                           size_t len, char *err, size_t errlen)
{
    char id[DP_KEY_ID_HEX + 1];
    EVP_PKEY *k;
    if (t == NULL || pem == NULL || !dp_name_ok(name)) {
        dp__errf(err, errlen, "invalid trusted key name '%s'",
                 name ? name : "(null)");
        return DP_EARG;
    }
    k = pem_key(pem, len, 0);
    if (k == NULL || !key_id_of(k, id)) {
        EVP_PKEY_free(k);
        ERR_clear_error();
        dp__errf(err, errlen, "key '%s' is not an Ed25519 public key (PEM)",
                 name);
        return DP_ECRYPTO;
    }
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->keys[i].id, id) == 0) {
            EVP_PKEY_free(k);
            return DP_OK;
        }
    if (t->n == DP_MAX_TRUSTED) {
        EVP_PKEY_free(k);
        dp__errf(err, errlen, "more than %u trusted keys", DP_MAX_TRUSTED);
        return DP_EARG;
    }
    memcpy(t->keys[t->n].id, id, sizeof id);
    snprintf(t->keys[t->n].name, sizeof t->keys[t->n].name, "%s", name);
    t->keys[t->n].pk = k;
    t->n++;
    return DP_OK;
}

/* Adds the .pub file path; its name is the file name without ".pub". */
static dp_status add_file(dp_trust *t, const char *path, char *err,
                          size_t errlen)
{
    char name[DP_MAX_NAME + 1];
    const char *base = strrchr(path, '/');
    size_t bl, len;
    uint8_t *pem;
    dp_status rc;

    base = base ? base + 1 : path;
    bl = strlen(base);
    if (bl < 5 || strcmp(base + bl - 4, ".pub") != 0 ||
        bl - 4 > DP_MAX_NAME) {
        dp__errf(err, errlen, "'%s': a trusted key file must be NAME.pub",
                 path);
        return DP_EARG;
    }
    memcpy(name, base, bl - 4);
    name[bl - 4] = '\0';
    rc = dp__read_file(path, KEY_FILE_MAX, &pem, &len, err, errlen);
    if (rc != DP_OK)
        return rc;
    rc = dp_trust_add_pem(t, name, (const char *)pem, len, err, errlen);
    if (rc == DP_ECRYPTO)
        dp__errf(err, errlen, "'%s' is not an Ed25519 public key (PEM)",
                 path);
    free(pem);
    return rc;
}

/* Adds every *.pub file of dir; none is an error. */
static dp_status add_dir(dp_trust *t, const char *dir, char *err,
                         size_t errlen)
{
    char path[DP__PATH_CAP];
    struct dirent *e;
    size_t before = t->n;
    dp_status rc = DP_OK;
    DIR *d = opendir(dir);
    if (d == NULL) {
        dp__errf(err, errlen, "cannot open '%s': %s", dir, strerror(errno));
        return DP_EIO;
    }
    while (rc == DP_OK && (e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        int n;
        if (l < 5 || strcmp(e->d_name + l - 4, ".pub") != 0)
            continue;
        n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path) {
            dp__errf(err, errlen, "path too long in '%s'", dir);
            rc = DP_EARG;
            break;
        }
        rc = add_file(t, path, err, errlen);
    }
    closedir(d);
    if (rc == DP_OK && t->n == before) {
        dp__errf(err, errlen, "no trusted keys (*.pub) in '%s'", dir);
        rc = DP_ENOENT;
    }
    return rc;
}

dp_status dp_trust_load(dp_trust *t, const char *spec, char *err,
                        size_t errlen)
{
    char entry[DP__PATH_CAP];
    const char *p = spec;
    if (t == NULL || spec == NULL || spec[0] == '\0') {
        dp__errf(err, errlen, "no trusted keys given");
        return DP_EARG;
    }
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        struct stat st;
        dp_status rc;
        if (n == 0 || n >= sizeof entry) {
            dp__errf(err, errlen, "bad trusted key list '%s'", spec);
            return DP_EARG;
        }
        memcpy(entry, p, n);
        entry[n] = '\0';
        if (stat(entry, &st) != 0) {
            dp__errf(err, errlen, "cannot open '%s': %s", entry,
                     strerror(errno));
            return DP_EIO;
        }
        rc = S_ISDIR(st.st_mode) ? add_dir(t, entry, err, errlen)
                                 : add_file(t, entry, err, errlen);
        if (rc != DP_OK)
            return rc;
        if (comma == NULL)
            return DP_OK;
        p = comma + 1;
    }
}

dp_status dp_verify(const dp_trust *t, const uint8_t *module, size_t len,
                    const uint8_t *sig, size_t sig_len, dp_sig_info *info,
                    char *err, size_t errlen)
{
    dp_sig_info si;
    uint8_t raw[64];
    char sha[DP_SHA256_HEX + 1];
    size_t signed_len = 0;
    const struct dp_trust *tt = t;
    EVP_PKEY *pk = NULL;
    const char *kname = "";
    EVP_MD_CTX *md;
    dp_status rc;
    int ok;

    if (info)
        memset(info, 0, sizeof *info);
    if (t == NULL || (module == NULL && len > 0)) {
        dp__errf(err, errlen, "dp_verify: NULL argument");
        return DP_EARG;
    }
    rc = parse(sig, sig_len, &si, raw, &signed_len, err, errlen);
    if (rc != DP_OK)
        return rc;
    for (size_t i = 0; i < tt->n; i++)
        if (strcmp(tt->keys[i].id, si.key_id) == 0) {
            pk = tt->keys[i].pk;
            kname = tt->keys[i].name;
        }
    if (pk == NULL) {
        dp__errf(err, errlen, "unknown key %s", si.key_id);
        return DP_EUNKNOWNKEY;
    }
    md = EVP_MD_CTX_new();
    ok = md != NULL && EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1 &&
         EVP_DigestVerify(md, raw, sizeof raw, sig, signed_len) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    if (!ok) {
        dp__errf(err, errlen, "bad signature");
        return DP_EBADSIG;
    }
    if (dp_sha256_hex(module, len, sha) != DP_OK) {
        dp__errf(err, errlen, "SHA-256 failed");
        return DP_ECRYPTO;
    }
    if ((uint64_t)len != si.size || strcmp(sha, si.sha256) != 0) {
        dp__errf(err, errlen, "tampered (SHA-256 mismatch)");
        return DP_ETAMPERED;
    }
    snprintf(si.key_name, sizeof si.key_name, "%s", kname);
    if (info)
        *info = si;
    return DP_OK;
}
