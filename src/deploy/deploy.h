/*
 * deploy.h - the public API of isoflow's deployment module: Ed25519 signing
 * keys, detached module signatures (a small strict text format, see
 * docs/DEPLOY.md) and their verification against trusted keys, and the
 * per-node version store (content-addressed modules, history per stage, the
 * active version per stage persisted atomically).
 *
 * Prefix dp_ (internal dp__).  Ownership is stated at each declaration.
 * Signature files come from untrusted input: the parser is bounded and
 * every rejection carries an exact reason.
 */
#ifndef ISOFLOW_DEPLOY_H
#define ISOFLOW_DEPLOY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define DP_API __attribute__((visibility("default")))
#else
#define DP_API
#endif

/* Status codes, names and messages from one table. */
#define DP_STATUS_MAP(X)                                                     \
    X(OK, "ok")                                                              \
    X(EARG, "invalid argument")                                              \
    X(EIO, "input/output error")                                             \
    X(ENOMEM, "out of memory")                                               \
    X(ECRYPTO, "cryptography error")                                         \
    X(EUNSIGNED, "unsigned")                                                 \
    X(EMALFORMED, "malformed signature")                                     \
    X(EUNKNOWNKEY, "unknown key")                                            \
    X(EBADSIG, "bad signature")                                              \
    X(ETAMPERED, "tampered")                                                 \
    X(ETOOBIG, "module too large")                                           \
    X(ENOENT, "not found")                                                   \
    X(ECORRUPT, "store corrupt")

typedef enum dp_status {
#define DP__S(name, msg) DP_##name,
    DP_STATUS_MAP(DP__S)
#undef DP__S
    DP_STATUS_COUNT
} dp_status;

/* "ok", "unsigned", ... (static storage; "?" for an unknown code). */
DP_API const char *dp_status_msg(dp_status s);

#define DP_SIG_VERSION 1          /* the format version this code writes */
#define DP_SIG_MAX 1024u          /* largest signature file accepted */
#define DP_KEY_ID_HEX 32u         /* key id: first 16 bytes of SHA-256, hex */
#define DP_SHA256_HEX 64u
#define DP_MAX_NAME 63u           /* stage and key names */
#define DP_MAX_VERSION 999999999999ull /* largest version number */
#define DP_MAX_TRUSTED 256u       /* keys one trust list may hold */
#define DP_DEFAULT_MAX_MODULE ((size_t)16 * 1024 * 1024)

/* What a signature says (all strings NUL-terminated, "" when absent). */
typedef struct dp_sig_info {
    unsigned format;                     /* format version (1) */
    char key_id[DP_KEY_ID_HEX + 1];      /* signer's key id, lower-case hex */
    char sha256[DP_SHA256_HEX + 1];      /* module's SHA-256, lower-case hex */
    uint64_t size;                       /* module's size in bytes */
    char stage[DP_MAX_NAME + 1];         /* intended stage, "" if none */
    uint64_t version;                    /* intended version, 0 if none */
    char key_name[DP_MAX_NAME + 1];      /* trusted key's name (dp_verify) */
} dp_sig_info;

/* 1 when name is a valid stage or key name: 1 to 63 characters from
 * [A-Za-z0-9._-], the first one alphanumeric. */
DP_API int dp_name_ok(const char *name);

/* SHA-256 of data as 64 lower-case hex digits into hex[65].  Returns DP_OK
 * or DP_ECRYPTO. */
DP_API dp_status dp_sha256_hex(const uint8_t *data, size_t len,
                               char hex[DP_SHA256_HEX + 1] /* OUT */);

/* ------------------------------------------------------------------------ */
/* Keys and signatures. */

/* Creates an Ed25519 key pair in dir (created 0700 if missing):
 * dir/NAME.key (PKCS#8 PEM, mode 0600) and dir/NAME.pub (SubjectPublicKeyInfo
 * PEM, mode 0644).  Refuses existing files.  key_id (may be NULL) receives
 * the new key's id.  Returns DP_OK or an error with the reason in err. */
DP_API dp_status dp_key_gen(const char *dir, const char *name,
                            char key_id[DP_KEY_ID_HEX + 1] /* OUT, opt */,
                            char *err, size_t errlen);

/* Signs module bytes with the private key in key_file (Ed25519 PEM):
 * writes the signature text (at most DP_SIG_MAX bytes) into out (capacity
 * cap) and its length into *out_len.  stage ("" or NULL: none) and version
 * (0: none) are the optional intended stage and version.  Returns DP_OK or
 * an error with the reason in err. */
DP_API dp_status dp_sign_bytes(const char *key_file, const uint8_t *module,
                               size_t len, const char *stage,
                               uint64_t version, char *out /* OUT */,
                               size_t cap, size_t *out_len /* OUT */,
                               char *err, size_t errlen);

/* Signs the file module_file (at most DP_DEFAULT_MAX_MODULE bytes) and
 * writes the signature to out_sig_file (replaced atomically, mode 0644).
 * info (may be NULL) receives what was signed. */
DP_API dp_status dp_sign(const char *key_file, const char *module_file,
                         const char *out_sig_file, const char *stage,
                         uint64_t version, dp_sig_info *info /* OUT, opt */,
                         char *err, size_t errlen);

/* Parses a signature text (untrusted; at most DP_SIG_MAX bytes) without
 * checking it against any key.  On DP_OK fills *info (key_name "") and, if
 * raw_sig is not NULL, the 64 signature bytes.  On DP_EMALFORMED err says
 * what is wrong and where ("line 3: ..."); on DP_EUNSIGNED the input is
 * empty. */
DP_API dp_status dp_sig_parse(const uint8_t *sig, size_t len,
                              dp_sig_info *info /* OUT */,
                              uint8_t raw_sig[64] /* OUT, opt */, char *err,
                              size_t errlen);

/* A set of trusted public keys (opaque; owned by the caller). */
typedef struct dp_trust dp_trust;

/* An empty trust set; caller frees with dp_trust_free.  NULL on OOM. */
DP_API dp_trust *dp_trust_new(void);
DP_API void dp_trust_free(dp_trust *t);

/* Adds one PEM public key (Ed25519) named `name` (borrowed).  Adding a key
 * already present is not an error.  Returns DP_OK, DP_ECRYPTO (not an
 * Ed25519 public key), DP_EARG (bad name, set full). */
DP_API dp_status dp_trust_add_pem(dp_trust *t, const char *name,
                                  const char *pem, size_t len, char *err,
                                  size_t errlen);

/* Adds keys from spec: a comma-separated list whose entries are .pub files
 * or directories (every *.pub file in them; the key's name is the file name
 * without .pub).  A directory without keys is an error. */
DP_API dp_status dp_trust_load(dp_trust *t, const char *spec, char *err,
                               size_t errlen);

/* Number of keys in t. */
DP_API size_t dp_trust_count(const dp_trust *t);

/* The name of the trusted key whose id is key_id (borrowed from t), or
 * NULL when t holds no such key. */
DP_API const char *dp_trust_key_name(const dp_trust *t, const char *key_id);

/*
 * Verifies module bytes against a detached signature (sig may be NULL /
 * empty).  Returns DP_OK with *info filled (key_name: the trusted key's
 * name), or the first failing check, with err set exactly to:
 *   DP_EUNSIGNED    "unsigned"
 *   DP_EMALFORMED   "malformed signature: <what>"
 *   DP_EUNKNOWNKEY  "unknown key <id>"
 *   DP_EBADSIG      "bad signature"
 *   DP_ETAMPERED    "tampered (SHA-256 mismatch)"
 * The signature is checked before the module's hash, so an edited
 * signature file is "bad signature" and an edited module "tampered".
 */
DP_API dp_status dp_verify(const dp_trust *t, const uint8_t *module,
                           size_t len, const uint8_t *sig, size_t sig_len,
                           dp_sig_info *info /* OUT, opt */, char *err,
                           size_t errlen);

/* ------------------------------------------------------------------------ */
/* The version store. */

typedef struct dp_store dp_store;

/* Outcomes recorded in a stage's history. */
typedef enum dp_outcome {
    DP_ACTIVE = 1,      /* became the active version */
    DP_ROLLED_BACK = 2, /* was left because it failed after activation */
    DP_REJECTED = 3,    /* refused (signature, size, validation) */
    DP_FAILED_INIT = 4  /* its init failed; never activated */
} dp_outcome;

/* "active", "rolled-back", "rejected", "failed-init" or "?". */
DP_API const char *dp_outcome_name(int outcome);
/* The dp_outcome for a name, or 0. */
DP_API int dp_outcome_parse(const char *name);

/* A stored version (strings NUL-terminated). */
typedef struct dp_version_info {
    uint64_t version;                  /* store-assigned, from 1 */
    char sha256[DP_SHA256_HEX + 1];
    uint64_t size;
    char key_id[DP_KEY_ID_HEX + 1];    /* "" when stored unsigned */
    int64_t time;                      /* Unix seconds it was stored */
    char signed_stage[DP_MAX_NAME + 1]; /* from the signature, "" if none */
    uint64_t signed_version;           /* from the signature, 0 if none */
} dp_version_info;

/* One line of a stage's history. */
typedef struct dp_history_entry {
    int64_t time;                      /* Unix seconds */
    uint64_t version;                  /* 0: not stored (e.g. rejected) */
    char sha256[DP_SHA256_HEX + 1];    /* "" when unknown */
    uint64_t size;
    char key_id[DP_KEY_ID_HEX + 1];    /* "" when unknown */
    int outcome;                       /* dp_outcome */
    const char *reason;                /* borrowed for the callback only */
} dp_history_entry;

/* Opens (creating if missing) the store in dir: dir/store/<sha256>.wasm,
 * dir/versions.log, dir/history/<stage>.log, dir/active/<stage>.
 * max_module: largest module accepted (0: DP_DEFAULT_MAX_MODULE).  On
 * success *out is the store (caller closes with dp_store_close); otherwise
 * the reason is in err. */
DP_API dp_status dp_store_open(const char *dir, size_t max_module,
                               dp_store **out /* OUT */, char *err,
                               size_t errlen);
DP_API void dp_store_close(dp_store *s);

/* The last error's text on s (owned by s; valid until the next call). */
DP_API const char *dp_store_errmsg(const dp_store *s);

/* Stores module bytes (verified beforehand by the caller; sig may be NULL
 * for an unsigned development module) and returns its version number in
 * *version.  Content-addressed: the same bytes stored twice keep their
 * first version.  DP_ETOOBIG over the size limit. */
DP_API dp_status dp_store_put(dp_store *s, const uint8_t *module, size_t len,
                              const dp_sig_info *sig /* opt */,
                              uint64_t *version /* OUT */);

/* dp_store_put in two steps, so that the slow part (the module file
 * written and synced) can run while the caller does something else (the
 * node validates the module meanwhile): dp_store_stage writes the bytes
 * beside the store (nothing is a version yet; any thread, while nothing
 * else uses s), then dp_store_commit makes them the next version (the
 * rename, the directory's sync, the versions.log line) or dp_store_abort
 * removes them.  Both free st. */
typedef struct dp_staged dp_staged;
DP_API dp_status dp_store_stage(dp_store *s, const uint8_t *module,
                                size_t len, dp_staged **out /* OUT */);
DP_API dp_status dp_store_commit(dp_store *s, dp_staged *st,
                                 const dp_sig_info *sig /* opt */,
                                 uint64_t *version /* OUT */);
DP_API void dp_store_abort(dp_store *s, dp_staged *st);

/* With on, dp_store_stage and dp_store_commit leave their three syncs
 * (the module file, the store directory after the rename, versions.log
 * after its line) for later: the version
 * exists at once but is durable only after dp_store_sync, which every
 * dp_store_activate, dp_store_record, the next commit and dp_store_close
 * run first.  A node turns it on: its swap then does not wait for the
 * disk, and the version becomes active (durably, with its "first" event)
 * only after the three syncs.  A crash before them can lose the version
 * (or leave its file damaged, which dp_store_read reports) and leaves
 * the previous one active. */
DP_API void dp_store_defer_syncs(dp_store *s, int on);
DP_API dp_status dp_store_sync(dp_store *s);

/* What the store knows about a version; DP_ENOENT if it has none. */
DP_API dp_status dp_store_version(dp_store *s, uint64_t version,
                                  dp_version_info *info /* OUT */);

/* Reads a stored version's bytes into a malloc'ed buffer the caller frees
 * with free(); the SHA-256 is checked (DP_ECORRUPT on mismatch). */
DP_API dp_status dp_store_read(dp_store *s, uint64_t version,
                               uint8_t **data /* OUT */, size_t *len /* OUT */);

/* Makes version the active one of stage: dir/active/<stage> is written to
 * a temporary file, synced, renamed over the old one and the directory
 * synced, so a crash leaves either the old or the new version active.  Then
 * appends an "active" line to the stage's history. */
DP_API dp_status dp_store_activate(dp_store *s, const char *stage,
                                   uint64_t version);

/* The active version of stage (DP_ENOENT when it has none). */
DP_API dp_status dp_store_active(dp_store *s, const char *stage,
                                 dp_version_info *info /* OUT */);

/* Appends one line to stage's history (version 0: a module that was never
 * stored).  reason (may be NULL) is cut at 200 bytes; tabs and control
 * characters become spaces. */
DP_API dp_status dp_store_record(dp_store *s, const char *stage,
                                 uint64_t version, int outcome,
                                 const char *reason);

/* Calls fn for each history line of stage, oldest first; fn returns 0 to
 * go on, nonzero to stop.  A torn last line (a crash during an append) is
 * skipped; any other malformed line is DP_ECORRUPT.  No history: DP_OK
 * with no calls. */
typedef int (*dp_history_fn)(void *user, const dp_history_entry *e);
DP_API dp_status dp_store_history(dp_store *s, const char *stage,
                                  dp_history_fn fn, void *user);

#ifdef __cplusplus
}
#endif

#endif /* ISOFLOW_DEPLOY_H */
