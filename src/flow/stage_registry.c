/*
 * stage_registry.c - the table of stage hosts (wasm, native and every
 * builtin) looked up by kind, and the checks and helpers the hosts share.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage_host.h"

/* Declaration order is the order `isoflow stages --help` lists them. */
static const fl__stage_ops *const fl__all_ops[] = {
    &fl__wasm_ops,   &fl__native_ops, &fl__log_ops,
    &fl__jsonl_ops,  &fl__null_ops,   &fl__sample_ops,
    &fl__rate_ops,   &fl__filter_ops, &fl__delay_ops,
    NULL};

const fl__stage_ops *fl__stage_ops_find(const char *kind)
{
    if (!kind)
        return NULL;
    for (size_t i = 0; fl__all_ops[i]; i++)
        if (strcmp(fl__all_ops[i]->kind, kind) == 0)
            return fl__all_ops[i];
    return NULL;
}

const fl__stage_ops *const *fl__stage_ops_all(void) { return fl__all_ops; }

#define FL__NKINDS (sizeof fl__all_ops / sizeof fl__all_ops[0])

/* The kind names, taken from the ops table once (a C initialiser cannot
 * read the tables' members). */
static const char *fl__kind_names[FL__NKINDS];
static pthread_once_t fl__kinds_once = PTHREAD_ONCE_INIT;

static void fl__kinds_fill(void)
{
    for (size_t i = 0; fl__all_ops[i]; i++)
        fl__kind_names[i] = fl__all_ops[i]->kind;
    fl__kind_names[FL__NKINDS - 1] = NULL;
}

const char *const *fl_stage_kinds(void)
{
    pthread_once(&fl__kinds_once, fl__kinds_fill);
    return fl__kind_names;
}

const char *fl_stage_summary(const char *kind)
{
    const fl__stage_ops *o = fl__stage_ops_find(kind);
    return o ? o->summary : NULL;
}

const char *fl_stage_help(const char *kind)
{
    const fl__stage_ops *o = fl__stage_ops_find(kind);
    return o ? o->help : NULL;
}

int fl__check_emit(uint32_t *emits, size_t topic_len, size_t len)
{
    if (topic_len > FL__MAX_TOPIC)
        return IF_EINVAL;
    if (len > FL__MAX_MSG)
        return IF_ETOOBIG;
    if (*emits >= FL__MAX_EMITS)
        return IF_EFULL;
    (*emits)++;
    return IF_OK;
}

int fl__check_kv(size_t key_len, size_t val_len)
{
    if (key_len == 0)
        return IF_EINVAL;
    if (key_len > FL__MAX_KEY || val_len > FL__MAX_VALUE)
        return IF_ETOOBIG;
    return IF_OK;
}

const char *fl__base_name(const char *path)
{
    if (!path)
        return "";
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

fl_status fl__check_caps(const fl__stage *d, uint32_t caps, char *err,
                         size_t errlen)
{
    static const struct {
        unsigned cap;
        const char *fn;
        const char *why;
    } need[] = {
        {IF_CAP_PROCESS, "stage_process", "it has an upstream"},
        {IF_CAP_PRODUCE, "stage_produce", "it is a source"},
        {IF_CAP_ACTUATION, "stage_actuation", "it receives actuations"},
        {IF_CAP_MIGRATE, "stage_migrate", "it is updated live"},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if ((d->need_caps & need[i].cap) && !(caps & need[i].cap)) {
            snprintf(err, errlen,
                     "stage '%s': %s does not define %s (needed: %s)",
                     d->name, fl__base_name(d->path), need[i].fn,
                     need[i].why);
            return FL_CHECK;
        }
    }
    return FL_OK;
}

fl_status fl__read_file(const char *path, size_t max, uint8_t **data,
                        size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return FL_IO;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max + 1) {
                snprintf(err, errlen, "cannot read %s: larger than %zu bytes",
                         path, max);
                goto fail;
            }
            size_t ncap = cap ? cap * 2 : 65536;
            if (ncap > max + 1)
                ncap = max + 1;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                snprintf(err, errlen, "cannot read %s: out of memory", path);
                fclose(f);
                free(buf);
                return FL_NOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "cannot read %s: %s", path,
                         strerror(errno));
                goto fail;
            }
            break;
        }
    }
    if (n > max) {
        snprintf(err, errlen, "cannot read %s: larger than %zu bytes", path,
                 max);
        goto fail;
    }
    fclose(f);
    if (!buf) {
        buf = malloc(1);
        if (!buf) {
            snprintf(err, errlen, "cannot read %s: out of memory", path);
            return FL_NOMEM;
        }
    }
    *data = buf;
    *len = n;
    return FL_OK;
fail:
    fclose(f);
    free(buf);
    return FL_IO;
}

/* ---- The dummy host table (check()). ----------------------------------- */

static int dummy_emit(void *ctx, const char *topic, size_t topic_len,
                      const void *data, size_t len)
{
    (void)ctx, (void)topic, (void)topic_len, (void)data, (void)len;
    return IF_OK;
}

static int dummy_actuate(void *ctx, const void *data, size_t len)
{
    (void)ctx, (void)data, (void)len;
    return IF_OK;
}

static void dummy_log(void *ctx, int level, const char *text, size_t len)
{
    (void)ctx, (void)level, (void)text, (void)len;
}

static int64_t dummy_now(void *ctx)
{
    (void)ctx;
    return 0;
}

static int64_t dummy_meta(void *ctx, int field)
{
    (void)ctx, (void)field;
    return 0;
}

static int dummy_meta_str(void *ctx, int field, char *buf, size_t cap)
{
    (void)ctx, (void)field;
    if (cap > 0)
        buf[0] = '\0';
    return 0;
}

static int dummy_kv_get(void *ctx, const char *key, size_t key_len,
                        void *buf, size_t cap)
{
    (void)ctx, (void)key, (void)key_len, (void)buf, (void)cap;
    return IF_ENOTFOUND;
}

static int dummy_kv_set(void *ctx, const char *key, size_t key_len,
                        const void *val, size_t len)
{
    (void)ctx, (void)key, (void)key_len, (void)val, (void)len;
    return IF_OK;
}

static int dummy_kv_del(void *ctx, const char *key, size_t key_len)
{
    (void)ctx, (void)key, (void)key_len;
    return IF_ENOTFOUND;
}

const if_host_api fl__dummy_api = {
    IF_ABI_VERSION, dummy_emit,   dummy_actuate, dummy_log,
    dummy_now,      dummy_meta,   dummy_meta_str, dummy_kv_get,
    dummy_kv_set,   dummy_kv_del,
};
