/*
 * stage_embed.c - stage modules compiled into the executable: a firmware-
 * style build (bench/deploy/, target isoflow-fw) registers a .wasm's bytes
 * under a name with fl_embed_module() before any flow is loaded, and a flow
 * then declares `stage NAME @PLACE wasm "embedded:NAME"`; the wasm host
 * reads those bytes instead of a file (fl_embed_find, see flow.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "flow.h"

#define EMBED_MAX 32        /* modules one executable may register */
#define EMBED_NAME_MAX 63   /* bytes of a name */
#define EMBED_PREFIX "embedded:"

typedef struct {
    char name[EMBED_NAME_MAX + 1];
    const uint8_t *bytes; /* borrowed: static data of the executable */
    size_t len;
} embed_entry;

static pthread_mutex_t embed_lock = PTHREAD_MUTEX_INITIALIZER;
static embed_entry embeds[EMBED_MAX];
static size_t nembeds;

/*
 * Registers `bytes` (len bytes, borrowed for the life of the process) under
 * `name`.  Registering the same name with the same bytes again is a no-op.
 * Returns FL_OK, or FL_ARG for an empty or too long name, a name holding
 * '/', no bytes, a name already registered with other bytes, or a full
 * table.
 */
fl_status fl_embed_module(const char *name, const uint8_t *bytes, size_t len)
{
    size_t n = name ? strlen(name) : 0;
    fl_status st = FL_OK;
    if (n == 0 || n > EMBED_NAME_MAX || strchr(name, '/') || !bytes ||
        len == 0)
        return FL_ARG;
    pthread_mutex_lock(&embed_lock);
    for (size_t i = 0; i < nembeds; i++) {
        if (strcmp(embeds[i].name, name) == 0) {
            if (embeds[i].bytes != bytes || embeds[i].len != len)
                st = FL_ARG;
            pthread_mutex_unlock(&embed_lock);
            return st;
        }
    }
    if (nembeds == EMBED_MAX) {
        st = FL_ARG;
    } else {
        memcpy(embeds[nembeds].name, name, n + 1);
        embeds[nembeds].bytes = bytes;
        embeds[nembeds].len = len;
        nembeds++;
    }
    pthread_mutex_unlock(&embed_lock);
    return st;
}

/*
 * Resolves a stage path whose last component is "embedded:NAME" (a flow's
 * relative "embedded:NAME" has been joined to the flow's directory).
 * Returns FL_PASS when the path is not such a reference (a file to read),
 * FL_OK with *bytes and *len set (borrowed; each may be NULL) when NAME is
 * registered, else FL_IO with a message naming NAME and what this binary
 * holds in err (when err is not NULL).
 */
fl_status fl_embed_find(const char *path, const uint8_t **bytes, size_t *len,
                        char *err, size_t errlen)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    if (!base || strncmp(base, EMBED_PREFIX, strlen(EMBED_PREFIX)) != 0)
        return FL_PASS;
    const char *name = base + strlen(EMBED_PREFIX);
    char have[256];
    size_t hn = 0;
    have[0] = '\0';
    pthread_mutex_lock(&embed_lock);
    for (size_t i = 0; i < nembeds; i++) {
        if (strcmp(embeds[i].name, name) == 0) {
            if (bytes)
                *bytes = embeds[i].bytes;
            if (len)
                *len = embeds[i].len;
            pthread_mutex_unlock(&embed_lock);
            return FL_OK;
        }
        if (hn < sizeof have) {
            int w = snprintf(have + hn, sizeof have - hn, "%s%s",
                             hn ? ", " : "", embeds[i].name);
            hn += w > 0 ? (size_t)w : 0;
        }
    }
    pthread_mutex_unlock(&embed_lock);
    if (err && errlen)
        snprintf(err, errlen,
                 "no module \"" EMBED_PREFIX "%s\" is compiled into this "
                 "binary (%s%s)",
                 name, hn ? "it holds: " : "it holds none; build isoflow-fw",
                 have);
    return FL_IO;
}
