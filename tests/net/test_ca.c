/*
 * test_ca.c - cmocka tests of the certificate authority and TLS contexts of
 * the network layer (net.h: nt_ca_init, nt_ca_issue, nt_tls_new; net_int.h:
 * peer identity and failure reasons): the certificates are parsed back with
 * OpenSSL, and in-memory TLS 1.3 handshakes (two SSL objects over a BIO
 * pair, no sockets) check who is accepted and the exact reasons of refusals.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net.h"
#include "net_int.h"

/* The scratch directory of the whole program (created by the group setup). */
static char g_dir[256];

/* g_dir + "/" + rel into a static rotating buffer (16 slots: enough for
 * every P() of one statement). */
static const char *P(const char *rel)
{
    static char bufs[16][512];
    static unsigned next;
    char *b = bufs[next++ & 15];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, rel);
    return b;
}

/* Removes path and, for a directory, everything under it. */
static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            char sub[1024];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static X509 *load_cert(const char *path)
{
    FILE *f = fopen(path, "r");
    X509 *x;
    assert_non_null(f);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static EVP_PKEY *load_key(const char *path)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *k;
    assert_non_null(f);
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    return k;
}

static mode_t file_mode(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* The text of the single entry `nid` of a name ("" when absent). */
static void name_entry(X509_NAME *n, int nid, char *out, size_t cap)
{
    out[0] = '\0';
    X509_NAME_get_text_by_NID(n, nid, out, (int)cap);
}

/* Seconds from now to t (negative: in the past). */
static long secs_from_now(const ASN1_TIME *t)
{
    int days, secs;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, t), 1);
    return (long)days * 86400 + secs;
}

/* Writes a certificate for a fresh Ed25519 key: subject CN=cn and (when ou
 * is not NULL) OU=ou, signed by issuer/ikey or self-signed when issuer is
 * NULL, valid 30 days from now; files P(base).crt / P(base).key.  This
 * builds what nt_ca_issue never would (no role, unknown role, self-signed
 * leaf). */
static void make_odd_cert(const char *base, const char *cn, const char *ou,
                          const char *issuer_crt, const char *issuer_key)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    X509 *x = X509_new(), *issuer = NULL;
    EVP_PKEY *ikey = key;
    X509_NAME *n = X509_NAME_new();
    char path[512];
    FILE *f;

    assert_non_null(key);
    if (issuer_crt) {
        issuer = load_cert(issuer_crt);
        ikey = load_key(issuer_key);
    }
    if (ou)
        assert_int_equal(X509_NAME_add_entry_by_txt(
                             n, "OU", MBSTRING_UTF8,
                             (const unsigned char *)ou, -1, -1, 0),
                         1);
    assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
                                                (const unsigned char *)cn,
                                                -1, -1, 0),
                     1);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242), 1);
    assert_int_equal(X509_set_subject_name(x, n), 1);
    assert_int_equal(
        X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n),
        1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -60));
    assert_non_null(X509_time_adj_ex(X509_getm_notAfter(x), 30, 0, NULL));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    assert_true(X509_sign(x, ikey, NULL) > 0);

    snprintf(path, sizeof path, "%s.crt", P(base));
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    snprintf(path, sizeof path, "%s.key", P(base));
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);

    if (issuer) {
        X509_free(issuer);
        EVP_PKEY_free(ikey);
    }
    X509_NAME_free(n);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* Concatenates files a and b into out (a CA bundle). */
static void cat2(const char *a, const char *b, const char *out)
{
    const char *in[2] = {a, b};
    FILE *o = fopen(out, "w");
    assert_non_null(o);
    for (int i = 0; i < 2; i++) {
        char buf[4096];
        size_t n;
        FILE *f = fopen(in[i], "r");
        assert_non_null(f);
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
            assert_int_equal(fwrite(buf, 1, n, o), n);
        fclose(f);
    }
    fclose(o);
}

/* The odd certificates of the fixture, made once the CAs exist. */
static int odd_setup(void)
{
    make_odd_cert("selfsigned", "dev-9", "role:device", NULL, NULL);
    make_odd_cert("norole", "dev-8", NULL, P("main/ca.crt"),
                  P("main/ca.key"));
    make_odd_cert("king", "dev-7", "role:king", P("main/ca.crt"),
                  P("main/ca.key"));
    make_odd_cert("badcn", "a b", "role:device", P("main/ca.crt"),
                  P("main/ca.key"));
    /* Two OU role entries. */
    {
        EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        X509 *ca = load_cert(P("main/ca.crt"));
        EVP_PKEY *cakey = load_key(P("main/ca.key"));
        X509 *x = X509_new();
        X509_NAME *n = X509_get_subject_name(x);
        FILE *f;
        X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8,
                                   (const unsigned char *)"role:device", -1,
                                   -1, 0);
        X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_UTF8,
                                   (const unsigned char *)"role:cloud", -1,
                                   -1, 0);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
                                   (const unsigned char *)"dev-6", -1, -1, 0);
        X509_set_version(x, X509_VERSION_3);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 4343);
        X509_set_issuer_name(x, X509_get_subject_name(ca));
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_time_adj_ex(X509_getm_notAfter(x), 30, 0, NULL);
        X509_set_pubkey(x, key);
        X509_sign(x, cakey, NULL);
        f = fopen(P("tworoles.crt"), "w");
        PEM_write_X509(f, x);
        fclose(f);
        f = fopen(P("tworoles.key"), "w");
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
        fclose(f);
        X509_free(x);
        X509_free(ca);
        EVP_PKEY_free(cakey);
        EVP_PKEY_free(key);
    }
    cat2(P("other/ca.crt"), P("main/ca.crt"), P("bundle.crt"));
    return 0;
}

/*
 * The fixture: CA "main" in main/ with one certificate per role in
 * main/nodes, an expired device certificate, a CA "other" with one device
 * certificate, and the odd certificates of make_odd_cert.
 */
static int group_setup(void **state)
{
    char err[512];
    static const char *const names[] = {NULL, "dev-1", "edge-1", "cloud-1",
                                        "op-1"};
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/isoflow-test-ca-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    if (nt_ca_init(P("main"), "main", err, sizeof err) != NT_OK ||
        nt_ca_init(P("other"), "other", err, sizeof err) != NT_OK) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    for (int r = NT_ROLE_DEVICE; r <= NT_ROLE_OPERATOR; r++)
        if (nt_ca_issue(P("main"), names[r], r, 0, 0, P("main/nodes"), err,
                        sizeof err) != NT_OK) {
            fprintf(stderr, "setup: %s\n", err);
            return -1;
        }
    /* Valid for one day, 30 days ago. */
    if (nt_ca_issue(P("main"), "old-dev", NT_ROLE_DEVICE, 1, -30L * 86400,
                    P("main/nodes"), err, sizeof err) != NT_OK ||
        nt_ca_issue(P("other"), "dev-x", NT_ROLE_DEVICE, 0, 0, NULL, err,
                    sizeof err) != NT_OK) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    return odd_setup();
}

static int group_teardown(void **state)
{
    (void)state;
    rm_rf(g_dir);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Roles. */

static void test_roles(void **state)
{
    (void)state;
    assert_string_equal(nt_role_name(NT_ROLE_DEVICE), "device");
    assert_string_equal(nt_role_name(NT_ROLE_EDGE), "edge");
    assert_string_equal(nt_role_name(NT_ROLE_CLOUD), "cloud");
    assert_string_equal(nt_role_name(NT_ROLE_OPERATOR), "operator");
    assert_string_equal(nt_role_name(0), "?");
    assert_string_equal(nt_role_name(5), "?");
    assert_string_equal(nt_role_name(-1), "?");
    for (int r = NT_ROLE_DEVICE; r <= NT_ROLE_OPERATOR; r++)
        assert_int_equal(nt_role_parse(nt_role_name(r)), r);
    assert_int_equal(nt_role_parse("Device"), 0);
    assert_int_equal(nt_role_parse("devices"), 0);
    assert_int_equal(nt_role_parse(""), 0);
    assert_int_equal(nt_role_parse("?"), 0);
    assert_int_equal(nt_role_parse(NULL), 0);
}

static void test_name_rules(void **state)
{
    char n64[65];
    (void)state;
    assert_true(nt__cert_name_ok("room-1"));
    assert_true(nt__cert_name_ok("a"));
    assert_true(nt__cert_name_ok("Edge_2.local"));
    assert_false(nt__cert_name_ok(""));
    assert_false(nt__cert_name_ok("-x"));
    assert_false(nt__cert_name_ok(".x"));
    assert_false(nt__cert_name_ok("a/b"));
    assert_false(nt__cert_name_ok("a b"));
    assert_false(nt__cert_name_ok("a,OU=role:cloud"));
    assert_false(nt__cert_name_ok(NULL));
    memset(n64, 'a', 64);
    n64[64] = '\0';
    assert_false(nt__cert_name_ok(n64));
    n64[63] = '\0';
    assert_true(nt__cert_name_ok(n64));
}

/* ------------------------------------------------------------------------ */
/* The CA. */

static void test_ca_init_files(void **state)
{
    X509 *ca = load_cert(P("main/ca.crt"));
    EVP_PKEY *key = load_key(P("main/ca.key"));
    char cn[128];
    BASIC_CONSTRAINTS *bc;
    ASN1_BIT_STRING *ku;
    const ASN1_INTEGER *serial = X509_get0_serialNumber(ca);
    BIGNUM *bn;
    long until;
    int crit = -1;
    (void)state;

    assert_int_equal(file_mode(P("main/ca.key")), 0600);
    assert_int_equal(file_mode(P("main/ca.crt")), 0644);
    assert_int_equal(EVP_PKEY_get_id(key), EVP_PKEY_ED25519);
    assert_int_equal(EVP_PKEY_get_id(X509_get0_pubkey(ca)), EVP_PKEY_ED25519);
    assert_int_equal(X509_check_private_key(ca, key), 1);
    assert_int_equal(X509_get_version(ca), X509_VERSION_3);

    name_entry(X509_get_subject_name(ca), NID_commonName, cn, sizeof cn);
    assert_string_equal(cn, "main isoflow CA");
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(ca),
                                   X509_get_issuer_name(ca)),
                     0);
    assert_int_equal(X509_verify(ca, key), 1); /* self-signed */

    bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(crit, 1);
    assert_true(bc->ca);
    BASIC_CONSTRAINTS_free(bc);
    ku = X509_get_ext_d2i(ca, NID_key_usage, &crit, NULL);
    assert_non_null(ku);
    assert_int_equal(crit, 1);
    assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN);
    ASN1_BIT_STRING_free(ku);
    assert_int_equal(X509_check_ca(ca), 1);

    /* A random, positive, non-trivial serial; two CAs differ. */
    bn = ASN1_INTEGER_to_BN(serial, NULL);
    assert_non_null(bn);
    assert_false(BN_is_negative(bn));
    assert_true(BN_num_bits(bn) >= 120);
    BN_free(bn);
    {
        X509 *other = load_cert(P("other/ca.crt"));
        assert_int_not_equal(
            ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(other)), 0);
        X509_free(other);
    }

    /* Valid from now for 3650 days. */
    assert_in_range(secs_from_now(X509_get0_notBefore(ca)) + 120, 0, 120);
    until = secs_from_now(X509_get0_notAfter(ca));
    assert_in_range(until, 3650L * 86400 - 120, 3650L * 86400);

    X509_free(ca);
    EVP_PKEY_free(key);
}

/* expect_err(st_expr, want_status, fmt, ...): the call returns want_status
 * and leaves exactly the formatted message in err. */
#define expect_err(call, want, ...)                                          \
    do {                                                                     \
        char want_msg_[1024];                                                \
        err[0] = '\0';                                                       \
        assert_int_equal((call), (want));                                    \
        snprintf(want_msg_, sizeof want_msg_, __VA_ARGS__);                  \
        assert_string_equal(err, want_msg_);                                 \
    } while (0)

static void test_ca_init_refusals(void **state)
{
    char err[512];
    (void)state;
    expect_err(nt_ca_init(P("main"), "again", err, sizeof err), NT_EARG,
               "a CA already exists in '%s' (ca.key present)", P("main"));
    /* Only the certificate left: still refused, nothing overwritten. */
    assert_int_equal(mkdir(P("half"), 0700), 0);
    cat2(P("main/ca.crt"), "/dev/null", P("half/ca.crt"));
    expect_err(nt_ca_init(P("half"), "x", err, sizeof err), NT_EARG,
               "a CA already exists in '%s' (ca.crt present)", P("half"));
    expect_err(nt_ca_init(P("bad"), "a b", err, sizeof err), NT_EARG,
               "invalid CA name 'a b' (1 to 53 characters from A-Z a-z 0-9 "
               ". _ -, starting with a letter or digit)");
    expect_err(nt_ca_init("", "x", err, sizeof err), NT_EARG,
               "no CA directory given");
    expect_err(nt_ca_init(P("main/ca.crt/sub"), "x", err, sizeof err),
               NT_EIO, "cannot create directory '%s': Not a directory",
               P("main/ca.crt/sub"));
    /* The name defaults to the directory's last component. */
    assert_int_equal(nt_ca_init(P("deep/er/homeca/"), NULL, err, sizeof err),
                     NT_OK);
    {
        X509 *ca = load_cert(P("deep/er/homeca/ca.crt"));
        char cn[128];
        name_entry(X509_get_subject_name(ca), NID_commonName, cn, sizeof cn);
        assert_string_equal(cn, "homeca isoflow CA");
        X509_free(ca);
    }
    assert_int_equal(file_mode(P("deep/er")), 0700);
}

/* Checks one issued certificate: subject, issuer, signature, extensions,
 * key type, validity (days from now + offset), file modes. */
static void check_leaf(const char *dir, const char *name, int role,
                       long days, long offset, const char *ca_dir)
{
    char crt[512], keyp[512], cap[512], text[128], want_ou[32];
    X509 *x, *ca;
    EVP_PKEY *key;
    BASIC_CONSTRAINTS *bc;
    EXTENDED_KEY_USAGE *eku;
    GENERAL_NAMES *san;
    int crit = -1, nou = 0, pos = -1;

    snprintf(crt, sizeof crt, "%s/%s.crt", dir, name);
    snprintf(keyp, sizeof keyp, "%s/%s.key", dir, name);
    snprintf(cap, sizeof cap, "%s/ca.crt", ca_dir);
    x = load_cert(crt);
    key = load_key(keyp);
    ca = load_cert(cap);

    assert_int_equal(file_mode(keyp), 0600);
    assert_int_equal(file_mode(crt), 0644);
    assert_int_equal(EVP_PKEY_get_id(key), EVP_PKEY_ED25519);
    assert_int_equal(EVP_PKEY_get_id(X509_get0_pubkey(x)), EVP_PKEY_ED25519);
    assert_int_equal(X509_check_private_key(x, key), 1);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);

    name_entry(X509_get_subject_name(x), NID_commonName, text, sizeof text);
    assert_string_equal(text, name);
    snprintf(want_ou, sizeof want_ou, "role:%s", nt_role_name(role));
    while ((pos = X509_NAME_get_index_by_NID(X509_get_subject_name(x),
                                             NID_organizationalUnitName,
                                             pos)) >= 0)
        nou++;
    assert_int_equal(nou, 1);
    name_entry(X509_get_subject_name(x), NID_organizationalUnitName, text,
               sizeof text);
    assert_string_equal(text, want_ou);
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(x)), 2);
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x),
                                   X509_get_subject_name(ca)),
                     0);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(ca)), 1);
    assert_int_equal(X509_check_issued(ca, x), X509_V_OK);

    bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(crit, 1);
    assert_false(bc->ca);
    BASIC_CONSTRAINTS_free(bc);
    {
        ASN1_BIT_STRING *ku = X509_get_ext_d2i(x, NID_key_usage, &crit, NULL);
        assert_non_null(ku);
        assert_int_equal(crit, 1);
        ASN1_BIT_STRING_free(ku);
    }
    assert_int_equal(X509_get_key_usage(x), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER |
                                                         XKU_SSL_CLIENT);
    eku = X509_get_ext_d2i(x, NID_ext_key_usage, &crit, NULL);
    assert_non_null(eku);
    assert_int_equal(sk_ASN1_OBJECT_num(eku), 2);
    EXTENDED_KEY_USAGE_free(eku);
    assert_int_equal(X509_check_ca(x), 0);

    san = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    assert_non_null(san);
    assert_int_equal(sk_GENERAL_NAME_num(san), 3);
    GENERAL_NAMES_free(san);
    assert_int_equal(X509_check_host(x, name, 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_host(x, "example.com", 0, 0, NULL), 0);

    assert_in_range(secs_from_now(X509_get0_notBefore(x)) - offset + 120, 0,
                    120);
    assert_in_range(secs_from_now(X509_get0_notAfter(x)) - offset + 120,
                    days * 86400, days * 86400 + 120);

    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
}

static void test_issue_every_role(void **state)
{
    static const char *const names[] = {NULL, "dev-1", "edge-1", "cloud-1",
                                        "op-1"};
    (void)state;
    for (int r = NT_ROLE_DEVICE; r <= NT_ROLE_OPERATOR; r++)
        check_leaf(P("main/nodes"), names[r], r, 825, 0, P("main"));
    check_leaf(P("main/nodes"), "old-dev", NT_ROLE_DEVICE, 1, -30L * 86400,
               P("main"));
    /* out_dir NULL: beside the CA. */
    check_leaf(P("other"), "dev-x", NT_ROLE_DEVICE, 825, 0, P("other"));
}

static void test_issue_days_and_offset(void **state)
{
    char err[512];
    (void)state;
    assert_int_equal(nt_ca_issue(P("main"), "later", NT_ROLE_CLOUD, 7, 3600,
                                 P("main/days"), err, sizeof err),
                     NT_OK);
    check_leaf(P("main/days"), "later", NT_ROLE_CLOUD, 7, 3600, P("main"));
}

static void test_issue_refusals(void **state)
{
    char err[512];
    (void)state;
    expect_err(nt_ca_issue(P("main"), "dev-1", NT_ROLE_DEVICE, 0, 0,
                           P("main/nodes"), err, sizeof err),
               NT_EARG,
               "'%s/dev-1.key' already exists (remove it to issue a new "
               "certificate)",
               P("main/nodes"));
    expect_err(nt_ca_issue(P("main"), "a/b", NT_ROLE_DEVICE, 0, 0, NULL, err,
                           sizeof err),
               NT_EARG,
               "invalid name 'a/b' (1 to 63 characters from A-Z a-z 0-9 . _ "
               "-, starting with a letter or digit)");
    expect_err(nt_ca_issue(P("main"), "x", 0, 0, 0, NULL, err, sizeof err),
               NT_EARG, "invalid role 0 (device, edge, cloud or operator)");
    expect_err(nt_ca_issue(P("main"), "x", 9, 0, 0, NULL, err, sizeof err),
               NT_EARG, "invalid role 9 (device, edge, cloud or operator)");
    expect_err(nt_ca_issue(P("main"), "x", NT_ROLE_EDGE, -1, 0, NULL, err,
                           sizeof err),
               NT_EARG, "invalid validity of -1 days (1 to 36500)");
    expect_err(nt_ca_issue(P("nope"), "x", NT_ROLE_EDGE, 0, 0, P("nope2"),
                           err, sizeof err),
               NT_EIO, "cannot read CA certificate '%s/ca.crt': %s",
               P("nope"), "No such file or directory");
    /* A CA directory whose key belongs to another CA. */
    assert_int_equal(mkdir(P("mixed"), 0700), 0);
    cat2(P("main/ca.crt"), "/dev/null", P("mixed/ca.crt"));
    cat2(P("other/ca.key"), "/dev/null", P("mixed/ca.key"));
    expect_err(nt_ca_issue(P("mixed"), "x", NT_ROLE_EDGE, 0, 0, NULL, err,
                           sizeof err),
               NT_EARG,
               "CA key '%s/ca.key' does not match CA certificate "
               "'%s/ca.crt'",
               P("mixed"), P("mixed"));
    /* Nothing was written by the refusals. */
    assert_int_equal(access(P("mixed/x.key"), F_OK), -1);
    assert_int_equal(access(P("main/x.crt"), F_OK), -1);
    assert_int_equal(access(P("nope2"), F_OK), -1);
}

/* ------------------------------------------------------------------------ */
/* TLS contexts. */

static void test_tls_new_ok(void **state)
{
    char err[512] = "", name[NT_MAX_NAME + 1];
    nt_tls *t = NULL;
    int role = 0;
    SSL_CTX *ctx;
    (void)state;
    assert_int_equal(nt_tls_new(P("main/ca.crt"), P("main/nodes/edge-1.crt"),
                                P("main/nodes/edge-1.key"), &t, err,
                                sizeof err),
                     NT_OK);
    assert_non_null(t);
    ctx = nt__tls_ctx(t);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_get_verify_mode(ctx),
                     SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
    nt__tls_self(t, name, sizeof name, &role);
    assert_string_equal(name, "edge-1");
    assert_int_equal(role, NT_ROLE_EDGE);
    nt_tls_free(t);
    nt_tls_free(NULL);
}

static void test_tls_new_refusals(void **state)
{
    char err[512];
    nt_tls *t = (nt_tls *)&t;
    char ca[512];
    (void)state;
    snprintf(ca, sizeof ca, "%s", P("main/ca.crt"));

    expect_err(nt_tls_new(P("none.crt"), P("main/nodes/dev-1.crt"),
                          P("main/nodes/dev-1.key"), &t, err, sizeof err),
               NT_EARG, "cannot read CA file '%s': No such file or directory",
               P("none.crt"));
    assert_null(t);
    expect_err(nt_tls_new(ca, P("none.crt"), P("main/nodes/dev-1.key"), &t,
                          err, sizeof err),
               NT_EARG,
               "cannot read certificate '%s': No such file or directory",
               P("none.crt"));
    expect_err(nt_tls_new(ca, P("main/nodes/dev-1.crt"), P("none.key"), &t,
                          err, sizeof err),
               NT_EARG, "cannot read key '%s': No such file or directory",
               P("none.key"));
    /* A key that is not the certificate's. */
    expect_err(nt_tls_new(ca, P("main/nodes/dev-1.crt"),
                          P("main/nodes/edge-1.key"), &t, err, sizeof err),
               NT_EARG, "key '%s' does not match certificate '%s'",
               P("main/nodes/edge-1.key"), P("main/nodes/dev-1.crt"));
    /* A certificate from another CA. */
    expect_err(nt_tls_new(ca, P("other/dev-x.crt"), P("other/dev-x.key"), &t,
                          err, sizeof err),
               NT_EARG,
               "certificate '%s' does not chain to CA '%s': unable to get "
               "local issuer certificate",
               P("other/dev-x.crt"), ca);
    /* Files that are not PEM. */
    expect_err(nt_tls_new(P("main/ca.key"), P("main/nodes/dev-1.crt"),
                          P("main/nodes/dev-1.key"), &t, err, sizeof err),
               NT_EARG, "CA file '%s' holds no PEM certificate",
               P("main/ca.key"));
    expect_err(nt_tls_new(ca, P("main/nodes/dev-1.key"),
                          P("main/nodes/dev-1.key"), &t, err, sizeof err),
               NT_EARG, "cannot parse certificate '%s': not a PEM certificate (no "
               "start line)",
               P("main/nodes/dev-1.key"));
    expect_err(nt_tls_new(ca, P("main/nodes/dev-1.crt"),
                          P("main/nodes/dev-1.crt"), &t, err, sizeof err),
               NT_EARG, "cannot parse key '%s': not a PEM private key "
               "(unsupported)",
               P("main/nodes/dev-1.crt"));
    /* A certificate of the CA without a role, and one with an unknown
     * role: never accepted as a node's own. */
    expect_err(nt_tls_new(ca, P("norole.crt"), P("norole.key"), &t, err,
                          sizeof err),
               NT_EARG, "certificate '%s': certificate has no role",
               P("norole.crt"));
    expect_err(nt_tls_new(ca, P("king.crt"), P("king.key"), &t, err,
                          sizeof err),
               NT_EARG, "certificate '%s': unknown role 'king'",
               P("king.crt"));
    assert_null(t);
    expect_err(nt_tls_new(NULL, "a", "b", &t, err, sizeof err), NT_EARG,
               "nt_tls_new needs a CA, a certificate and a key");
    /* An expired certificate is the peers' judgement, not a startup error
     * (a node with a wrong clock still starts and peers log why). */
    assert_int_equal(nt_tls_new(ca, P("main/nodes/old-dev.crt"),
                                P("main/nodes/old-dev.key"), &t, err,
                                sizeof err),
                     NT_OK);
    nt_tls_free(t);
    /* A bundle of CAs is accepted. */
    cat2(P("other/ca.crt"), ca, P("bundle.crt"));
    assert_int_equal(nt_tls_new(P("bundle.crt"), P("other/dev-x.crt"),
                                P("other/dev-x.key"), &t, err, sizeof err),
                     NT_OK);
    nt_tls_free(t);
}

/* ------------------------------------------------------------------------ */
/* In-memory handshakes. */

/* One side's outcome. */
typedef struct side {
    int done;          /* handshake completed and nothing failed after */
    nt_status st;      /* NT_OK, or the failure's status */
    char err[256];     /* the failure's reason */
    nt_status id_st;   /* nt__tls_peer_identity after success */
    char id_err[256];
    char peer[NT_MAX_NAME + 1];
    int role;
} side;

/* Drives one SSL object one step: the handshake, then a read (which
 * surfaces an alert the peer sends after our side finished). */
static void step(SSL *ssl, side *s, int *hs_done)
{
    unsigned char b[64];
    int ret;
    if (s->st != NT_OK)
        return;
    if (!*hs_done) {
        ret = SSL_do_handshake(ssl);
        if (ret == 1) {
            *hs_done = 1;
            return;
        }
    } else {
        ret = SSL_read(ssl, b, sizeof b);
        if (ret > 0)
            return;
    }
    s->st = nt__tls_failure(ssl, ret, s->err, sizeof s->err);
    if (s->st == NT_AGAIN)
        s->st = NT_OK;
}

/* Runs a handshake between an SSL from cctx (client) and one from sctx
 * (server) over a BIO pair; fills c and s. */
static void handshake(SSL_CTX *cctx, SSL_CTX *sctx, side *c, side *s)
{
    SSL *cl = SSL_new(cctx), *sv = SSL_new(sctx);
    BIO *bc = NULL, *bs = NULL;
    int chs = 0, shs = 0;
    memset(c, 0, sizeof *c);
    memset(s, 0, sizeof *s);
    assert_non_null(cl);
    assert_non_null(sv);
    assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(cl, bc, bc);
    SSL_set_bio(sv, bs, bs);
    SSL_set_connect_state(cl);
    SSL_set_accept_state(sv);
    for (int i = 0; i < 20; i++) {
        step(cl, c, &chs);
        step(sv, s, &shs);
    }
    c->done = chs && c->st == NT_OK;
    s->done = shs && s->st == NT_OK;
    if (c->done)
        c->id_st = nt__tls_peer_identity(cl, c->peer, sizeof c->peer,
                                         &c->role, c->id_err,
                                         sizeof c->id_err);
    if (s->done)
        s->id_st = nt__tls_peer_identity(sv, s->peer, sizeof s->peer,
                                         &s->role, s->id_err,
                                         sizeof s->id_err);
    SSL_free(cl);
    SSL_free(sv);
    assert_int_equal(ERR_peek_error(), 0); /* every failure was consumed */
}

static nt_tls *tls_of(const char *ca, const char *base)
{
    char crt[512], key[512], err[512];
    nt_tls *t = NULL;
    snprintf(crt, sizeof crt, "%s.crt", P(base));
    snprintf(key, sizeof key, "%s.key", P(base));
    if (nt_tls_new(P(ca), crt, key, &t, err, sizeof err) != NT_OK)
        fail_msg("nt_tls_new(%s): %s", base, err);
    return t;
}

/* A bare TLS 1.3 client context that does not check the server and
 * presents base.crt/key (none when base is NULL): how an attacker or a
 * misconfigured device connects. */
static SSL_CTX *raw_client(const char *base)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    if (base) {
        char crt[512], key[512];
        snprintf(crt, sizeof crt, "%s.crt", P(base));
        snprintf(key, sizeof key, "%s.key", P(base));
        assert_int_equal(
            SSL_CTX_use_certificate_file(ctx, crt, SSL_FILETYPE_PEM), 1);
        assert_int_equal(
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    }
    return ctx;
}

static void test_handshake_ok(void **state)
{
    nt_tls *dev = tls_of("main/ca.crt", "main/nodes/dev-1");
    nt_tls *edge = tls_of("main/ca.crt", "main/nodes/edge-1");
    side c, s;
    (void)state;
    handshake(nt__tls_ctx(dev), nt__tls_ctx(edge), &c, &s);
    assert_true(c.done);
    assert_true(s.done);
    assert_int_equal(c.id_st, NT_OK);
    assert_string_equal(c.peer, "edge-1");
    assert_int_equal(c.role, NT_ROLE_EDGE);
    assert_int_equal(s.id_st, NT_OK);
    assert_string_equal(s.peer, "dev-1");
    assert_int_equal(s.role, NT_ROLE_DEVICE);
    nt_tls_free(dev);
    nt_tls_free(edge);
}

/* The server (edge-1 of CA main) refuses each bad client with the exact
 * reason; the client learns it from the alert. */
static void refused(SSL_CTX *cctx, const char *server_reason,
                    nt_status server_st, const char *client_reason)
{
    nt_tls *edge = tls_of("main/ca.crt", "main/nodes/edge-1");
    side c, s;
    handshake(cctx, nt__tls_ctx(edge), &c, &s);
    assert_false(s.done);
    assert_int_equal(s.st, server_st);
    assert_string_equal(s.err, server_reason);
    assert_false(c.done);
    assert_int_equal(c.st, NT_EAUTH);
    assert_string_equal(c.err, client_reason);
    nt_tls_free(edge);
}

static void test_refuse_no_certificate(void **state)
{
    SSL_CTX *cctx = raw_client(NULL);
    (void)state;
    refused(cctx, "peer did not return a certificate", NT_EAUTH,
            "peer refused our certificate: tlsv13 alert certificate "
            "required");
    SSL_CTX_free(cctx);
}

static void test_refuse_self_signed(void **state)
{
    SSL_CTX *cctx = raw_client("selfsigned");
    (void)state;
    refused(cctx, "peer certificate refused: self-signed certificate",
            NT_EAUTH, "peer refused our certificate: tlsv1 alert unknown ca");
    SSL_CTX_free(cctx);
}

static void test_refuse_other_ca(void **state)
{
    SSL_CTX *cctx = raw_client("other/dev-x");
    nt_tls *x;
    (void)state;
    refused(cctx,
            "peer certificate refused: unable to get local issuer "
            "certificate",
            NT_EAUTH, "peer refused our certificate: tlsv1 alert unknown ca");
    SSL_CTX_free(cctx);
    /* Through nt_tls_new (trusting both CAs), the same refusal. */
    x = tls_of("bundle.crt", "other/dev-x");
    refused(nt__tls_ctx(x),
            "peer certificate refused: unable to get local issuer "
            "certificate",
            NT_EAUTH, "peer refused our certificate: tlsv1 alert unknown ca");
    nt_tls_free(x);
}

static void test_refuse_expired(void **state)
{
    nt_tls *old = tls_of("main/ca.crt", "main/nodes/old-dev");
    (void)state;
    refused(nt__tls_ctx(old), "peer certificate refused: certificate has "
                              "expired",
            NT_EAUTH,
            "peer refused our certificate: sslv3 alert certificate expired");
    nt_tls_free(old);
}

/* A client refuses a server from another CA (mutual: both directions). */
static void test_client_refuses_server(void **state)
{
    nt_tls *dev = tls_of("main/ca.crt", "main/nodes/dev-1");
    nt_tls *x = tls_of("bundle.crt", "other/dev-x");
    side c, s;
    (void)state;
    handshake(nt__tls_ctx(dev), nt__tls_ctx(x), &c, &s);
    assert_false(c.done);
    assert_int_equal(c.st, NT_EAUTH);
    assert_string_equal(c.err, "peer certificate refused: unable to get "
                               "local issuer certificate");
    assert_false(s.done);
    assert_int_equal(s.st, NT_EAUTH);
    assert_string_equal(s.err,
                        "peer refused our certificate: tlsv1 alert unknown "
                        "ca");
    nt_tls_free(dev);
    nt_tls_free(x);
}

/* Certificates of the right CA that carry no usable role: the handshake
 * passes, the identity check refuses. */
static void test_identity_refusals(void **state)
{
    static const struct {
        const char *base, *reason;
    } cases[] = {
        {"norole", "certificate has no role"},
        {"king", "unknown role 'king'"},
        {"tworoles", "certificate has several roles"},
        {"badcn", "certificate has an invalid common name 'a b'"},
    };
    nt_tls *edge = tls_of("main/ca.crt", "main/nodes/edge-1");
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SSL_CTX *cctx = raw_client(cases[i].base);
        side c, s;
        handshake(cctx, nt__tls_ctx(edge), &c, &s);
        assert_true(s.done);
        assert_int_equal(s.id_st, NT_EAUTH);
        assert_string_equal(s.id_err, cases[i].reason);
        SSL_CTX_free(cctx);
    }
    nt_tls_free(edge);
}

/* Before any handshake there is no peer to judge, and a TLS call that only
 * waits for bytes is not a failure. */
static void test_no_peer_yet(void **state)
{
    nt_tls *edge = tls_of("main/ca.crt", "main/nodes/edge-1");
    SSL *ssl = SSL_new(nt__tls_ctx(edge));
    BIO *a = NULL, *b = NULL;
    char name[NT_MAX_NAME + 1] = "", err[256] = "";
    int role = -1, ret;
    (void)state;
    assert_non_null(ssl);
    assert_int_equal(nt__tls_peer_identity(ssl, name, sizeof name, &role,
                                           err, sizeof err),
                     NT_EAUTH);
    assert_string_equal(err, "peer sent no certificate");
    assert_int_equal(role, -1);
    assert_int_equal(BIO_new_bio_pair(&a, 0, &b, 0), 1);
    SSL_set_bio(ssl, a, a);
    SSL_set_accept_state(ssl);
    ret = SSL_do_handshake(ssl);
    assert_true(ret <= 0);
    assert_int_equal(nt__tls_failure(ssl, ret, err, sizeof err), NT_AGAIN);
    assert_string_equal(err, "TLS operation in progress");
    /* The peer hangs up without a word. */
    assert_int_equal(BIO_write(b, "\x16\x03\x01", 3), 3);
    assert_int_equal(BIO_shutdown_wr(b), 1);
    ret = SSL_do_handshake(ssl);
    assert_true(ret <= 0);
    assert_int_equal(nt__tls_failure(ssl, ret, err, sizeof err), NT_ECLOSED);
    assert_string_equal(err, "unexpected eof while reading");
    BIO_free(b);
    SSL_free(ssl);
    nt_tls_free(edge);
}

/* Failure texts of the helpers on their own. */
static void test_verify_text(void **state)
{
    (void)state;
    assert_string_equal(nt__tls_verify_text(X509_V_OK), "ok");
    assert_string_equal(nt__tls_verify_text(X509_V_ERR_CERT_HAS_EXPIRED),
                        "certificate has expired");
    assert_string_equal(
        nt__tls_verify_text(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
        "self-signed certificate");
    assert_string_equal(
        nt__tls_verify_text(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
        "unable to get local issuer certificate");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_name_rules),
        cmocka_unit_test(test_ca_init_files),
        cmocka_unit_test(test_ca_init_refusals),
        cmocka_unit_test(test_issue_every_role),
        cmocka_unit_test(test_issue_days_and_offset),
        cmocka_unit_test(test_issue_refusals),
        cmocka_unit_test(test_tls_new_ok),
        cmocka_unit_test(test_tls_new_refusals),
        cmocka_unit_test(test_handshake_ok),
        cmocka_unit_test(test_refuse_no_certificate),
        cmocka_unit_test(test_refuse_self_signed),
        cmocka_unit_test(test_refuse_other_ca),
        cmocka_unit_test(test_refuse_expired),
        cmocka_unit_test(test_client_refuses_server),
        cmocka_unit_test(test_identity_refusals),
        cmocka_unit_test(test_no_peer_yet),
        cmocka_unit_test(test_verify_text),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
