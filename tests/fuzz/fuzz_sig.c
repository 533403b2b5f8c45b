/*
 * fuzz_sig.c - libFuzzer target for the module signature format
 * (src/deploy/sig.c): every input is a signature text that must end in a
 * stated rejection or a parse whose canonical re-encoding is exactly the
 * input, never a crash, out-of-bounds read or leak; dp_verify against one
 * trusted key and a fixed module must give one of its five reasons.
 *
 * The corpus (tests/fuzz/corpus/sig) holds signatures made with the key
 * below over FUZZ_MODULE, so mutations reach the Ed25519 check too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond))                                                         \
            abort();                                                         \
    } while (0)

/* The public half of the key that signed the corpus (the private half is
 * not kept: it is only needed to make new valid seeds). */
static const char FUZZ_PUB[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAyq3ExltX7X7uRC0RwmMaVy2bU7sMspP8Mr92N0IHFtc=\n"
    "-----END PUBLIC KEY-----\n";

static const uint8_t FUZZ_MODULE[] = {0x00, 0x61, 0x73, 0x6d,
                                      0x01, 0x00, 0x00, 0x00};

static dp_trust *g_trust;

/* Frees the trust set at exit so the leak checker stays quiet. */
static void free_trust(void)
{
    dp_trust_free(g_trust);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dp_sig_info info, vinfo;
    uint8_t raw[64];
    char err[256], canon[DP_SIG_MAX + 1];
    dp_status st, vs;

    if (g_trust == NULL) {
        g_trust = dp_trust_new();
        CHECK(g_trust != NULL);
        CHECK(dp_trust_add_pem(g_trust, "fz", FUZZ_PUB, strlen(FUZZ_PUB), err,
                               sizeof err) == DP_OK);
        atexit(free_trust);
    }
    err[0] = '\0';
    st = dp_sig_parse(data, size, &info, raw, err, sizeof err);
    CHECK(memchr(err, '\0', sizeof err) != NULL);
    if (size == 0)
        CHECK(st == DP_EUNSIGNED && strcmp(err, "unsigned") == 0);
    else if (st != DP_OK)
        CHECK(st == DP_EMALFORMED &&
              strncmp(err, "malformed signature: ", 21) == 0);
    if (st == DP_OK) {
        /* Canonical: the fields re-encode to exactly the input. */
        int n = snprintf(canon, sizeof canon,
                         "isoflow-signature %u\nkey %s\nsha256 %s\nsize %llu\n",
                         info.format, info.key_id, info.sha256,
                         (unsigned long long)info.size);
        if (info.stage[0])
            n += snprintf(canon + n, sizeof canon - (size_t)n, "stage %s\n",
                          info.stage);
        if (info.version)
            n += snprintf(canon + n, sizeof canon - (size_t)n,
                          "version %llu\n", (unsigned long long)info.version);
        n += snprintf(canon + n, sizeof canon - (size_t)n, "ed25519 ");
        for (int i = 0; i < 64; i++)
            n += snprintf(canon + n, sizeof canon - (size_t)n, "%02x", raw[i]);
        n += snprintf(canon + n, sizeof canon - (size_t)n, "\n");
        CHECK((size_t)n == size && memcmp(canon, data, size) == 0);
    }
    err[0] = '\0';
    vs = dp_verify(g_trust, FUZZ_MODULE, sizeof FUZZ_MODULE, data, size,
                   &vinfo, err, sizeof err);
    switch (vs) {
    case DP_OK:
        CHECK(st == DP_OK && strcmp(vinfo.key_name, "fz") == 0);
        break;
    case DP_EUNSIGNED:
    case DP_EMALFORMED:
        CHECK(vs == st);
        break;
    case DP_EUNKNOWNKEY:
        CHECK(st == DP_OK && strncmp(err, "unknown key ", 12) == 0);
        break;
    case DP_EBADSIG:
        CHECK(st == DP_OK && strcmp(err, "bad signature") == 0);
        break;
    case DP_ETAMPERED:
        CHECK(st == DP_OK &&
              strcmp(err, "tampered (SHA-256 mismatch)") == 0);
        break;
    default:
        CHECK(0);
    }
    return 0;
}
