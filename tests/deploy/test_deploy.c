/*
 * test_deploy.c - unit tests of src/deploy: keys, sign/verify round trips,
 * every rejection reason with its exact text, the signature parser's strict
 * rules, and the version store (put, activate, history, reopen, atomic
 * activation across a simulated crash, size limit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "deploy.h"
#include "deploy_int.h"

static char g_dir[256];

/* A fresh temporary directory per test, removed afterwards. */
static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/isoflow-dp-XXXXXX");
    return mkdtemp(g_dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[512];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", g_dir, name);
}

static const uint8_t MODULE[] = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00,
                                 0x00, 0x00, 0x42, 0x43};

/* Generates key `name` in g_dir/keys and signs MODULE into sig. */
static size_t sign_module(const char *name, const char *stage, uint64_t ver,
                          char *sig, size_t cap, char *id)
{
    char dir[300], key[400], err[256];
    size_t n = 0;
    path(dir, sizeof dir, "keys");
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    if (access(key, R_OK) != 0)
        assert_int_equal(dp_key_gen(dir, name, id, err, sizeof err), DP_OK);
    assert_int_equal(dp_sign_bytes(key, MODULE, sizeof MODULE, stage, ver,
                                   sig, cap, &n, err, sizeof err),
                     DP_OK);
    return n;
}

static dp_trust *trust_of(const char *spec_rel)
{
    char spec[400], err[256];
    dp_trust *t = dp_trust_new();
    assert_non_null(t);
    path(spec, sizeof spec, spec_rel);
    assert_int_equal(dp_trust_load(t, spec, err, sizeof err), DP_OK);
    return t;
}

static void test_keygen_files(void **state)
{
    char dir[300], p[400], err[256], id[DP_KEY_ID_HEX + 1];
    struct stat st;
    (void)state;
    path(dir, sizeof dir, "k/sub");
    assert_int_equal(dp_key_gen(dir, "rel", id, err, sizeof err), DP_OK);
    assert_int_equal(strlen(id), 32);
    snprintf(p, sizeof p, "%s/rel.key", dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(p, sizeof p, "%s/rel.pub", dir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    /* Refuses to overwrite, and bad names. */
    assert_int_equal(dp_key_gen(dir, "rel", NULL, err, sizeof err), DP_EIO);
    assert_non_null(strstr(err, "already exists"));
    assert_int_equal(dp_key_gen(dir, "../x", NULL, err, sizeof err),
                     DP_EARG);
    assert_non_null(strstr(err, "invalid key name '../x'"));
}

static void test_round_trip(void **state)
{
    char sig[DP_SIG_MAX + 1], id[DP_KEY_ID_HEX + 1], err[256], sha[65];
    dp_sig_info info;
    size_t n;
    dp_trust *t;
    (void)state;
    n = sign_module("rel", "co2", 7, sig, sizeof sig, id);
    t = trust_of("keys");
    assert_int_equal(dp_trust_count(t), 1);
    assert_int_equal(dp_verify(t, MODULE, sizeof MODULE, (uint8_t *)sig, n,
                               &info, err, sizeof err),
                     DP_OK);
    assert_string_equal(info.key_id, id);
    assert_string_equal(info.key_name, "rel");
    /* The trust set names a key by its id (the store keeps ids only). */
    assert_string_equal(dp_trust_key_name(t, id), "rel");
    assert_null(dp_trust_key_name(t, "00000000000000000000000000000000"));
    assert_null(dp_trust_key_name(NULL, id));
    assert_string_equal(info.stage, "co2");
    assert_int_equal(info.version, 7);
    assert_int_equal(info.size, sizeof MODULE);
    assert_int_equal(dp_sha256_hex(MODULE, sizeof MODULE, sha), DP_OK);
    assert_string_equal(info.sha256, sha);
    assert_int_equal(info.format, 1);
    /* Without optional fields, the text is exactly 5 lines. */
    n = sign_module("rel", NULL, 0, sig, sizeof sig, id);
    assert_int_equal(n, 20 + 37 + 72 + 8 + 137);
    assert_non_null(strstr(sig, "size 10\ned25519 "));
    assert_int_equal(dp_verify(t, MODULE, sizeof MODULE, (uint8_t *)sig, n,
                               &info, err, sizeof err),
                     DP_OK);
    assert_string_equal(info.stage, "");
    assert_int_equal(info.version, 0);
    dp_trust_free(t);
}

static void test_rejections(void **state)
{
    char sig[DP_SIG_MAX + 1], other[DP_SIG_MAX + 1], id[33], id2[33];
    char err[256], want[80];
    uint8_t mod[sizeof MODULE];
    size_t n, n2;
    dp_trust *t;
    (void)state;
    n = sign_module("rel", "co2", 1, sig, sizeof sig, id);
    t = trust_of("keys/rel.pub");
    /* Unsigned. */
    assert_int_equal(dp_verify(t, MODULE, sizeof MODULE, NULL, 0, NULL, err,
                               sizeof err),
                     DP_EUNSIGNED);
    assert_string_equal(err, "unsigned");
    /* One byte of the module changed. */
    memcpy(mod, MODULE, sizeof mod);
    mod[9] ^= 1;
    assert_int_equal(dp_verify(t, mod, sizeof mod, (uint8_t *)sig, n, NULL,
                               err, sizeof err),
                     DP_ETAMPERED);
    assert_string_equal(err, "tampered (SHA-256 mismatch)");
    /* A truncated module. */
    assert_int_equal(dp_verify(t, MODULE, sizeof MODULE - 1, (uint8_t *)sig,
                               n, NULL, err, sizeof err),
                     DP_ETAMPERED);
    /* Signed by a key the node does not trust. */
    n2 = sign_module("other", NULL, 0, other, sizeof other, id2);
    assert_int_equal(dp_verify(t, MODULE, sizeof MODULE, (uint8_t *)other,
                               n2, NULL, err, sizeof err),
                     DP_EUNKNOWNKEY);
    snprintf(want, sizeof want, "unknown key %s", id2);
    assert_string_equal(err, want);
    /* The signature file edited: a field, then the signature itself. */
    {
        char *p = strstr(sig, "stage co2");
        p[8] = '3'; /* stage co3: still well-formed */
        assert_int_equal(dp_verify(t, MODULE, sizeof MODULE, (uint8_t *)sig,
                                   n, NULL, err, sizeof err),
                         DP_EBADSIG);
        assert_string_equal(err, "bad signature");
        p[8] = '2';
        p = strstr(sig, "ed25519 ") + 8;
        p[0] = p[0] == 'a' ? 'b' : 'a';
        assert_int_equal(dp_verify(t, MODULE, sizeof MODULE, (uint8_t *)sig,
                                   n, NULL, err, sizeof err),
                         DP_EBADSIG);
    }
    /* Wrong key: a signature claiming rel's id but made by other. */
    memcpy(other + strlen("isoflow-signature 1\nkey "), id, 32);
    assert_int_equal(dp_verify(t, MODULE, sizeof MODULE, (uint8_t *)other,
                               n2, NULL, err, sizeof err),
                     DP_EBADSIG);
    dp_trust_free(t);
}

/* Expects dp_sig_parse(text) to fail as malformed with exactly msg. */
static void malformed(const char *text, const char *msg)
{
    dp_sig_info info;
    char err[256] = "";
    assert_int_equal(dp_sig_parse((const uint8_t *)text, strlen(text), &info,
                                  NULL, err, sizeof err),
                     DP_EMALFORMED);
    assert_string_equal(err, msg);
}

#define K "key 0123456789abcdef0123456789abcdef\n"
#define S "sha256 " "0123456789abcdef0123456789abcdef"                       \
          "0123456789abcdef0123456789abcdef\n"
#define SIG "ed25519 " "00000000000000000000000000000000"                    \
            "00000000000000000000000000000000"                               \
            "00000000000000000000000000000000"                               \
            "00000000000000000000000000000000\n"

static void test_parser_strict(void **state)
{
    dp_sig_info info;
    char err[256], big[DP_SIG_MAX + 2];
    (void)state;
    assert_int_equal(dp_sig_parse((const uint8_t *)"isoflow-signature 1\n" K
                                  S "size 5\nstage a.b\nversion 9\n" SIG,
                                  strlen("isoflow-signature 1\n" K S
                                         "size 5\nstage a.b\nversion 9\n" SIG),
                                  &info, NULL, err, sizeof err),
                     DP_OK);
    assert_string_equal(info.stage, "a.b");
    assert_int_equal(info.version, 9);
    assert_int_equal(info.size, 5);
    malformed("isoflow-signature 2\n", "malformed signature: line 1: "
              "unsupported format version 2 (this is version 1)");
    malformed("hello\n", "malformed signature: line 1: expected "
              "'isoflow-signature 1'");
    malformed("isoflow-signature 1", "malformed signature: line 1: no "
              "newline at the end");
    malformed("isoflow-signature 1\r\n", "malformed signature: line 1: "
              "byte 0x0d not allowed");
    malformed("isoflow-signature 1\n", "malformed signature: line 2: "
              "missing 'key' line");
    malformed("isoflow-signature 1\nkey 0123\n", "malformed signature: "
              "line 2: key id must be 32 lower-case hex digits");
    malformed("isoflow-signature 1\n" K S "size 05\n" SIG,
              "malformed signature: line 4: bad size");
    malformed("isoflow-signature 1\n" K S "size 99999999999999999999\n" SIG,
              "malformed signature: line 4: bad size");
    malformed("isoflow-signature 1\n" K S "size 5\nversion 0\n" SIG,
              "malformed signature: line 5: version must be 1 to "
              "999999999999");
    malformed("isoflow-signature 1\n" K S "size 5\nversion 1\nstage a\n" SIG,
              "malformed signature: line 6: expected 'ed25519 <signature>' "
              "(or stage, version in that order)");
    malformed("isoflow-signature 1\n" K S "size 5\nstage ../x\n" SIG,
              "malformed signature: line 5: invalid stage name");
    malformed("isoflow-signature 1\n" K S "size 5\n" SIG "extra\n",
              "malformed signature: line 6: unexpected content after the "
              "signature");
    malformed("isoflow-signature 1\n" K S "size 5\n" SIG "x",
              "malformed signature: line 6: no newline at the end");
    malformed("isoflow-signature 1\n" K S "size 5\ned25519 AB\n",
              "malformed signature: line 5: signature must be 128 "
              "lower-case hex digits");
    memset(big, 'a', sizeof big);
    assert_int_equal(dp_sig_parse((uint8_t *)big, sizeof big, &info, NULL,
                                  err, sizeof err),
                     DP_EMALFORMED);
    assert_string_equal(err, "malformed signature: 1026 bytes, more than "
                             "1024");
}

static void test_trust_errors(void **state)
{
    char spec[400], err[512];
    dp_trust *t = dp_trust_new();
    FILE *f;
    (void)state;
    path(spec, sizeof spec, "");
    assert_int_equal(dp_trust_load(t, spec, err, sizeof err), DP_ENOENT);
    assert_non_null(strstr(err, "no trusted keys (*.pub) in"));
    path(spec, sizeof spec, "bad.pub");
    f = fopen(spec, "w");
    fputs("not a key\n", f);
    fclose(f);
    assert_int_equal(dp_trust_load(t, spec, err, sizeof err), DP_ECRYPTO);
    assert_non_null(strstr(err, "bad.pub' is not an Ed25519 public key"));
    assert_int_equal(dp_trust_count(t), 0);
    dp_trust_free(t);
}

/* ------------------------------------------------------------------------ */
/* Store. */

typedef struct hist {
    int n;
    int outcome[8];
    uint64_t version[8];
    char reason[8][64];
} hist;

static int collect(void *user, const dp_history_entry *e)
{
    hist *h = user;
    if (h->n < 8) {
        h->outcome[h->n] = e->outcome;
        h->version[h->n] = e->version;
        snprintf(h->reason[h->n], sizeof h->reason[0], "%s", e->reason);
    }
    h->n++;
    return 0;
}

static dp_store *open_store(size_t max)
{
    char dir[300], err[512];
    dp_store *s = NULL;
    path(dir, sizeof dir, "node");
    assert_int_equal(dp_store_open(dir, max, &s, err, sizeof err), DP_OK);
    return s;
}

static void test_store_put_activate_reopen(void **state)
{
    char sig[DP_SIG_MAX + 1], id[33], err[256];
    uint8_t v2mod[] = {1, 2, 3};
    dp_sig_info si;
    dp_version_info vi;
    uint64_t v1, v2, again;
    dp_trust *t;
    dp_store *s;
    hist h;
    uint8_t *data;
    size_t len, n;
    (void)state;
    n = sign_module("rel", "co2", 4, sig, sizeof sig, id);
    t = trust_of("keys");
    assert_int_equal(dp_verify(t, MODULE, sizeof MODULE, (uint8_t *)sig, n,
                               &si, err, sizeof err),
                     DP_OK);
    s = open_store(0);
    assert_int_equal(dp_store_put(s, MODULE, sizeof MODULE, &si, &v1), DP_OK);
    assert_int_equal(v1, 1);
    assert_int_equal(dp_store_put(s, MODULE, sizeof MODULE, &si, &again),
                     DP_OK);
    assert_int_equal(again, 1); /* content-addressed */
    assert_int_equal(dp_store_put(s, v2mod, sizeof v2mod, NULL, &v2), DP_OK);
    assert_int_equal(v2, 2);
    /* A signature for other bytes is refused. */
    assert_int_equal(dp_store_put(s, v2mod, sizeof v2mod, &si, &again),
                     DP_EARG);
    assert_int_equal(dp_store_active(s, "co2", &vi), DP_ENOENT);
    assert_string_equal(dp_store_errmsg(s),
                        "stage 'co2' has no active version");
    assert_int_equal(dp_store_activate(s, "co2", v1), DP_OK);
    assert_int_equal(dp_store_activate(s, "co2", v2), DP_OK);
    assert_int_equal(dp_store_record(s, "co2", v2, DP_ROLLED_BACK,
                                     "trapped 3 times\tin 10 s"),
                     DP_OK);
    assert_int_equal(dp_store_activate(s, "co2", v1), DP_OK);
    assert_int_equal(dp_store_record(s, "co2", 0, DP_REJECTED,
                                     "unknown key 00"),
                     DP_OK);
    assert_int_equal(dp_store_activate(s, "co2", 99), DP_ENOENT);
    assert_int_equal(dp_store_activate(s, "bad/stage", 1), DP_EARG);
    dp_store_close(s);

    /* Reopened: the active version, the versions and the history survive. */
    s = open_store(0);
    assert_int_equal(dp_store_active(s, "co2", &vi), DP_OK);
    assert_int_equal(vi.version, 1);
    assert_string_equal(vi.key_id, id);
    assert_string_equal(vi.signed_stage, "co2");
    assert_int_equal(vi.signed_version, 4);
    assert_int_equal(vi.size, sizeof MODULE);
    assert_int_equal(dp_store_version(s, 2, &vi), DP_OK);
    assert_string_equal(vi.key_id, "");
    assert_int_equal(dp_store_read(s, 2, &data, &len), DP_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(data, v2mod, 3);
    free(data);
    memset(&h, 0, sizeof h);
    assert_int_equal(dp_store_history(s, "co2", collect, &h), DP_OK);
    assert_int_equal(h.n, 5);
    assert_int_equal(h.outcome[0], DP_ACTIVE);
    assert_int_equal(h.version[1], 2);
    assert_int_equal(h.outcome[2], DP_ROLLED_BACK);
    assert_string_equal(h.reason[2], "trapped 3 times in 10 s");
    assert_int_equal(h.outcome[4], DP_REJECTED);
    assert_int_equal(h.version[4], 0);
    assert_string_equal(h.reason[4], "unknown key 00");
    memset(&h, 0, sizeof h);
    assert_int_equal(dp_store_history(s, "none", collect, &h), DP_OK);
    assert_int_equal(h.n, 0);
    dp_store_close(s);
    dp_trust_free(t);
}

/* dp_store_stage / dp_store_commit / dp_store_abort: staged bytes are not
 * a version until committed; an abort leaves nothing behind; a staged
 * duplicate commits to the version it already has; a signature for other
 * bytes is refused at the commit. */
static void test_store_stage_commit(void **state)
{
    uint8_t a[] = {7, 7, 7}, b[] = {8};
    dp_staged *st = NULL;
    dp_sig_info si;
    dp_version_info vi;
    uint64_t v = 99, before = 0;
    char p[400], cmd[600];
    dp_store *s;
    (void)state;
    s = open_store(0);
    while (dp_store_version(s, before + 1, &vi) == DP_OK)
        before++;
    assert_int_equal(dp_store_stage(s, a, sizeof a, &st), DP_OK);
    assert_non_null(st);
    assert_int_equal(dp_store_version(s, before + 1, &vi), DP_ENOENT);
    dp_store_abort(s, st);
    path(p, sizeof p, "node/store");
    snprintf(cmd, sizeof cmd, "ls %s | grep -q 'tmp$'", p);
    assert_int_not_equal(system(cmd), 0); /* no temporary file left */
    assert_int_equal(dp_store_stage(s, a, sizeof a, &st), DP_OK);
    assert_int_equal(dp_store_commit(s, st, NULL, &v), DP_OK);
    assert_int_equal(v, before + 1);
    assert_int_equal(dp_store_stage(s, a, sizeof a, &st), DP_OK);
    assert_int_equal(dp_store_commit(s, st, NULL, &v), DP_OK);
    assert_int_equal(v, before + 1); /* content-addressed */
    memset(&si, 0, sizeof si);
    memset(si.sha256, '0', DP_SHA256_HEX);
    si.size = sizeof b;
    assert_int_equal(dp_store_stage(s, b, sizeof b, &st), DP_OK);
    assert_int_equal(dp_store_commit(s, st, &si, &v), DP_EARG);
    assert_non_null(strstr(dp_store_errmsg(s), "for another module"));
    assert_int_equal(system(cmd) != 0, 1);
    assert_int_equal(dp_store_version(s, before + 2, &vi), DP_ENOENT);
    dp_store_close(s);
    s = open_store(0); /* reopened: the one committed version only */
    assert_int_equal(dp_store_version(s, before + 1, &vi), DP_OK);
    assert_int_equal(vi.size, sizeof a);
    assert_int_equal(dp_store_version(s, before + 2, &vi), DP_ENOENT);
    dp_store_close(s);
}

/* dp_store_defer_syncs: a commit's version exists at once; dp_store_sync,
 * an activation or the next commit makes it durable; reopened, the store
 * has every version and the active one. */
static void test_store_deferred_sync(void **state)
{
    uint8_t a[] = {5, 5}, b[] = {6, 6, 6};
    dp_staged *st = NULL;
    dp_version_info vi;
    uint64_t va = 0, vb = 0;
    dp_store *s;
    (void)state;
    unsigned long f0;
    s = open_store(0);
    dp_store_defer_syncs(s, 1);
    assert_int_equal(dp_store_sync(s), DP_OK); /* nothing pending */
    f0 = atomic_load(&dp__fsyncs);
    assert_int_equal(dp_store_stage(s, a, sizeof a, &st), DP_OK);
    assert_int_equal(dp_store_commit(s, st, NULL, &va), DP_OK);
    assert_int_equal(atomic_load(&dp__fsyncs), f0); /* none yet */
    assert_int_equal(dp_store_version(s, va, &vi), DP_OK);
    assert_int_equal(vi.size, sizeof a);
    assert_int_equal(dp_store_sync(s), DP_OK);
    /* the module file, the store directory, versions.log */
    assert_int_equal(atomic_load(&dp__fsyncs), f0 + 3);
    assert_int_equal(dp_store_sync(s), DP_OK); /* done: nothing more */
    assert_int_equal(atomic_load(&dp__fsyncs), f0 + 3);
    assert_int_equal(dp_store_stage(s, b, sizeof b, &st), DP_OK);
    assert_int_equal(dp_store_commit(s, st, NULL, &vb), DP_OK);
    assert_int_equal(vb, va + 1);
    assert_int_equal(dp_store_activate(s, "ds", vb), DP_OK); /* syncs first */
    assert_int_equal(dp_store_sync(s), DP_OK);
    dp_store_close(s);
    s = open_store(0);
    assert_int_equal(dp_store_version(s, va, &vi), DP_OK);
    assert_int_equal(dp_store_version(s, vb, &vi), DP_OK);
    assert_int_equal(vi.size, sizeof b);
    assert_int_equal(dp_store_active(s, "ds", &vi), DP_OK);
    assert_int_equal(vi.version, vb);
    /* Without deferral a commit is durable when it returns. */
    uint8_t c3[] = {7};
    uint64_t vc = 0;
    f0 = atomic_load(&dp__fsyncs);
    assert_int_equal(dp_store_stage(s, c3, sizeof c3, &st), DP_OK);
    assert_int_equal(dp_store_commit(s, st, NULL, &vc), DP_OK);
    assert_int_equal(atomic_load(&dp__fsyncs), f0 + 3);
    dp_store_close(s);
}

static void test_store_atomic_activation(void **state)
{
    uint8_t a[] = {1}, b[] = {2};
    uint64_t va, vb;
    dp_version_info vi;
    char p[400];
    dp_store *s;
    (void)state;
    s = open_store(0);
    assert_int_equal(dp_store_put(s, a, 1, NULL, &va), DP_OK);
    assert_int_equal(dp_store_put(s, b, 1, NULL, &vb), DP_OK);
    assert_int_equal(dp_store_activate(s, "st", va), DP_OK);
    /* A crash after the temporary file is synced, before the rename. */
    dp__crash_before_rename = 1;
    assert_int_equal(dp_store_activate(s, "st", vb), DP_EIO);
    assert_int_equal(dp__crash_before_rename, 0);
    assert_non_null(strstr(dp_store_errmsg(s), "simulated crash"));
    dp_store_close(s);
    path(p, sizeof p, "node/active/st.tmp");
    assert_int_equal(access(p, F_OK), 0); /* the new content is on disk */
    s = open_store(0);
    assert_int_equal(dp_store_active(s, "st", &vi), DP_OK);
    assert_int_equal(vi.version, va); /* but the old one is active */
    /* The next activation goes through despite the leftover. */
    assert_int_equal(dp_store_activate(s, "st", vb), DP_OK);
    assert_int_equal(dp_store_active(s, "st", &vi), DP_OK);
    assert_int_equal(vi.version, vb);
    assert_int_equal(access(p, F_OK), -1);
    dp_store_close(s);
}

static void test_store_limits_and_torn_lines(void **state)
{
    uint8_t big[101] = {0};
    uint64_t v;
    char p[400];
    hist h;
    FILE *f;
    dp_store *s;
    (void)state;
    s = open_store(100);
    assert_int_equal(dp_store_put(s, big, sizeof big, NULL, &v), DP_ETOOBIG);
    assert_string_equal(dp_store_errmsg(s),
                        "module is 101 bytes, more than the limit 100");
    assert_int_equal(dp_store_put(s, big, 100, NULL, &v), DP_OK);
    assert_int_equal(dp_store_record(s, "st", v, DP_FAILED_INIT, "init -1"),
                     DP_OK);
    dp_store_close(s);
    /* Torn appends (a crash mid-write) are cut off and then ignored. */
    path(p, sizeof p, "node/history/st.log");
    f = fopen(p, "a");
    fputs("1700000000\t1\t-", f);
    fclose(f);
    path(p, sizeof p, "node/versions.log");
    f = fopen(p, "a");
    fputs("2\tabc", f);
    fclose(f);
    s = open_store(100);
    memset(&h, 0, sizeof h);
    assert_int_equal(dp_store_history(s, "st", collect, &h), DP_OK);
    assert_int_equal(h.n, 1);
    assert_int_equal(h.outcome[0], DP_FAILED_INIT);
    assert_int_equal(dp_store_record(s, "st", 1, DP_ACTIVE, "x"), DP_OK);
    memset(&h, 0, sizeof h);
    assert_int_equal(dp_store_history(s, "st", collect, &h), DP_OK);
    assert_int_equal(h.n, 2);
    assert_int_equal(dp_store_put(s, big, 99, NULL, &v), DP_OK);
    assert_int_equal(v, 2);
    dp_store_close(s);
    /* A malformed line in the middle is corruption, named by line. */
    path(p, sizeof p, "node/history/st.log");
    f = fopen(p, "a");
    fputs("garbage\n", f);
    fclose(f);
    s = open_store(100);
    memset(&h, 0, sizeof h);
    assert_int_equal(dp_store_history(s, "st", collect, &h), DP_ECORRUPT);
    assert_non_null(strstr(dp_store_errmsg(s), "st.log' line 3 is malformed"));
    dp_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keygen_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parser_strict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trust_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_put_activate_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_stage_commit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_deferred_sync, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_atomic_activation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_store_limits_and_torn_lines,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
