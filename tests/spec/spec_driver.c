/*
 * spec_driver.c - runs the official WebAssembly core spec tests (the JSON +
 * .wasm form written by wabt's wast2json) against isoflow's engine through
 * its public API (wasm.h) and reports passes and failures per file.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm.h"

#define MSG_LEN 512
#define MAX_VALS 65536u             /* sanity cap on args/results per action */
#define MAX_FILE (512u * 1024u * 1024u)

static bool g_verbose;

/* ------------------------------------------------------------------------ */
/* Known failures: a set of "<file>.wast:<line>" keys.                      */

typedef struct known_entry {
    char *key;  /* "<file>.wast:<line>" */
    bool hit;   /* failed in this run */
} known_entry;

typedef struct known_set {
    known_entry *v;
    size_t n, cap;
} known_set;

static void known_free(known_set *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i].key);
    free(k->v);
    k->v = NULL;
    k->n = k->cap = 0;
}

/* Loads a known-failures file (lines "<file>.wast:<line> <reason>", '#'
 * comments and blank lines ignored).  Returns 0, or -1 after printing an
 * error. */
static int known_load(known_set *k, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "spec_driver: cannot open known-failures file %s: %s\n",
                path, strerror(errno));
        return -1;
    }
    char line[1024];
    unsigned lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n')) { /* overlong line: drop the rest */
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
        }
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\r' || *p == '\0')
            continue;
        size_t len = strcspn(p, " \t\r\n");
        const char *colon = memchr(p, ':', len);
        size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
        if (!colon || colon == p || digits == 0 ||
            colon + 1 + digits != p + len) {
            fprintf(stderr, "spec_driver: %s:%u: expected <file>.wast:<line>\n",
                    path, lineno);
            rc = -1;
            break;
        }
        if (k->n == k->cap) {
            size_t ncap = k->cap ? k->cap * 2 : 16;
            known_entry *nv = realloc(k->v, ncap * sizeof *nv);
            if (!nv) {
                fprintf(stderr, "spec_driver: out of memory\n");
                rc = -1;
                break;
            }
            k->v = nv;
            k->cap = ncap;
        }
        char *key = malloc(len + 1);
        if (!key) {
            fprintf(stderr, "spec_driver: out of memory\n");
            rc = -1;
            break;
        }
        memcpy(key, p, len);
        key[len] = '\0';
        k->v[k->n].key = key;
        k->v[k->n].hit = false;
        k->n++;
    }
    fclose(f);
    return rc;
}

static known_entry *known_find(known_set *k, const char *key)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->v[i].key, key) == 0)
            return &k->v[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Per-file state.                                                          */

typedef struct named_inst {
    char *name;        /* "$Name" from the JSON, or register's "as"; may be NULL */
    iw_instance *inst; /* NULL when the module failed */
} named_inst;

typedef struct inst_list {
    named_inst *v;
    size_t n, cap;
} inst_list;

typedef struct file_ctx {
    const char *wast;   /* "<name>.wast", for messages */
    const char *dir;    /* directory of the JSON file */
    known_set *known;
    iw_store *store;

    iw_module **mods;   /* every loaded module; freed after the store */
    size_t nmods, capmods;
    inst_list named;    /* instances of module commands, in order */
    inst_list regs;     /* registered instances ("as" names) */
    bool have_current;
    iw_instance *current; /* latest module command's instance (NULL: failed) */

    /* spectest host objects */
    iw_func *sp_funcs[7];
    iw_global *sp_globals[4];
    iw_table *sp_table;
    iw_memory *sp_memory;

    bool nul_marked;    /* \u0000 escapes were rewritten (protect_nuls) */

    unsigned long passed, failed, known_failed, na;
} file_ctx;

/* Records a failure of the command at `line`: counted as known when listed
 * in the known-failures file.  Unexpected failures are always printed, known
 * ones only with --verbose. */
static void fail(file_ctx *c, long line, const char *type, const char *fmt, ...)
{
    char key[512];
    char msg[MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(key, sizeof key, "%s:%ld", c->wast, line);
    known_entry *k = known_find(c->known, key);
    c->failed++;
    if (k) {
        k->hit = true;
        c->known_failed++;
        if (g_verbose)
            printf("%s: %s: %s (known failure)\n", key, type, msg);
    } else {
        printf("%s: %s: %s\n", key, type, msg);
    }
}

/* Prints an informational note (only with --verbose). */
static void note(file_ctx *c, long line, const char *type, const char *fmt, ...)
{
    if (!g_verbose)
        return;
    char msg[MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("%s:%ld: note: %s: %s\n", c->wast, line, type, msg);
}

/* Appends (name, inst) to a list; name is copied (may be NULL).  Returns
 * false when out of memory. */
static bool list_add(inst_list *l, const char *name, iw_instance *inst)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        named_inst *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return false;
        l->v = nv;
        l->cap = ncap;
    }
    char *copy = NULL;
    if (name) {
        copy = strdup(name);
        if (!copy)
            return false;
    }
    l->v[l->n].name = copy;
    l->v[l->n].inst = inst;
    l->n++;
    return true;
}

/* Finds the latest entry with this name; NULL when none. */
static named_inst *list_find(inst_list *l, const char *name)
{
    for (size_t i = l->n; i-- > 0;)
        if (l->v[i].name && strcmp(l->v[i].name, name) == 0)
            return &l->v[i];
    return NULL;
}

static void list_free(inst_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* The built-in "spectest" module.                                          */

typedef struct sp_func_def {
    const char *name;
    uint32_t nparams;
    uint8_t params[2];
} sp_func_def;

static const sp_func_def sp_func_defs[7] = {
    {"print", 0, {0, 0}},
    {"print_i32", 1, {IW_I32, 0}},
    {"print_i64", 1, {IW_I64, 0}},
    {"print_f32", 1, {IW_F32, 0}},
    {"print_f64", 1, {IW_F64, 0}},
    {"print_i32_f32", 2, {IW_I32, IW_F32}},
    {"print_f64_f64", 2, {IW_F64, IW_F64}},
};

static const char *const sp_global_names[4] = {"global_i32", "global_i64",
                                               "global_f32", "global_f64"};

/* Host function behind every spectest print_*: prints its arguments with
 * --verbose, otherwise does nothing. */
static iw_status sp_print(iw_call *call, const iw_val *args, iw_val *results,
                          void *user)
{
    const sp_func_def *d = user;
    (void)call;
    (void)results;
    if (!g_verbose)
        return IW_OK;
    printf("spectest.%s(", d->name);
    for (uint32_t i = 0; i < d->nparams; i++) {
        if (i)
            printf(", ");
        switch (d->params[i]) {
        case IW_I32: printf("%" PRId32, args[i].of.i32); break;
        case IW_I64: printf("%" PRId64, args[i].of.i64); break;
        case IW_F32: {
            float f;
            memcpy(&f, &args[i].of.f32, sizeof f);
            printf("%g", (double)f);
            break;
        }
        case IW_F64: {
            double f;
            memcpy(&f, &args[i].of.f64, sizeof f);
            printf("%g", f);
            break;
        }
        default: printf("?"); break;
        }
    }
    printf(")\n");
    return IW_OK;
}

/* Creates the spectest objects in c->store.  Returns false (after printing
 * what failed) when one could not be created. */
static bool spectest_create(file_ctx *c)
{
    bool ok = true;
    for (size_t i = 0; i < 7; i++) {
        const sp_func_def *d = &sp_func_defs[i];
        c->sp_funcs[i] = iw_func_new_host(c->store, d->params, d->nparams, NULL,
                                          0, sp_print, (void *)d);
        ok = ok && c->sp_funcs[i];
    }
    float f32 = 666.6f;
    double f64 = 666.6;
    iw_val v[4];
    memset(v, 0, sizeof v);
    v[0].type = IW_I32;
    v[0].of.i32 = 666;
    v[1].type = IW_I64;
    v[1].of.i64 = 666;
    v[2].type = IW_F32;
    memcpy(&v[2].of.f32, &f32, sizeof f32);
    v[3].type = IW_F64;
    memcpy(&v[3].of.f64, &f64, sizeof f64);
    for (size_t i = 0; i < 4; i++) {
        c->sp_globals[i] = iw_global_new(c->store, v[i], 0);
        ok = ok && c->sp_globals[i];
    }
    iw_limits tl = {10, 20, 1};
    c->sp_table = iw_table_new(c->store, IW_FUNCREF, tl, NULL);
    iw_limits ml = {1, 2, 1};
    c->sp_memory = iw_memory_new(c->store, ml);
    ok = ok && c->sp_table && c->sp_memory;
    if (!ok)
        printf("%s: error: could not create the spectest module objects\n",
               c->wast);
    return ok;
}

/* Resolves spectest.<name>; false when there is no such object. */
static bool spectest_resolve(file_ctx *c, const char *name, iw_extern *out)
{
    for (size_t i = 0; i < 7; i++)
        if (strcmp(name, sp_func_defs[i].name) == 0 && c->sp_funcs[i]) {
            out->kind = IW_EXTERN_FUNC;
            out->of.func = c->sp_funcs[i];
            return true;
        }
    for (size_t i = 0; i < 4; i++)
        if (strcmp(name, sp_global_names[i]) == 0 && c->sp_globals[i]) {
            out->kind = IW_EXTERN_GLOBAL;
            out->of.global = c->sp_globals[i];
            return true;
        }
    if (strcmp(name, "table") == 0 && c->sp_table) {
        out->kind = IW_EXTERN_TABLE;
        out->of.table = c->sp_table;
        return true;
    }
    if (strcmp(name, "memory") == 0 && c->sp_memory) {
        out->kind = IW_EXTERN_MEMORY;
        out->of.memory = c->sp_memory;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* JSON helpers.                                                            */

static const char *jstr(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* JSON strings may contain \u0000 (names.wast exports such a name), which
 * cJSON's C strings cannot carry.  Before parsing, every \u0000 escape is
 * rewritten in place to \uf8ff (a private-use character), provided that
 * character appears nowhere in the text; decode_name() turns it back into a
 * NUL byte.  Returns whether the rewrite was done. */
#define NUL_MARK "\xef\xa3\xbf" /* U+F8FF in UTF-8 */

static bool protect_nuls(char *text, size_t len)
{
    bool any = false;
    for (size_t i = 0; i + 3 <= len; i++)
        if (memcmp(text + i, NUL_MARK, 3) == 0)
            return false;
    for (size_t i = 0; i + 6 <= len; i++)
        if (text[i] == '\\' && text[i + 1] == 'u' &&
            (text[i + 2] | 0x20) == 'f' && text[i + 3] == '8' &&
            (text[i + 4] | 0x20) == 'f' && (text[i + 5] | 0x20) == 'f')
            return false;
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\')
            continue;
        if (text[i + 1] == 'u' && i + 6 <= len &&
            memcmp(text + i + 2, "0000", 4) == 0) {
            memcpy(text + i + 2, "f8ff", 4);
            any = true;
        }
        i++; /* skip the escaped character (e.g. the second '\\' of "\\\\") */
    }
    return any;
}

/* Decodes a name from the JSON: a malloc'ed copy with NUL_MARK turned back
 * into NUL bytes when c->nul_marked, its length in *len.  NULL when out of
 * memory. */
static char *decode_name(const file_ctx *c, const char *s, size_t *len)
{
    size_t n = strlen(s), o = 0;
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (c->nul_marked && i + 3 <= n && memcmp(s + i, NUL_MARK, 3) == 0) {
            d[o++] = '\0';
            i += 2;
        } else {
            d[o++] = s[i];
        }
    }
    d[o] = '\0';
    *len = o;
    return d;
}

/* Parses a decimal unsigned bit pattern no larger than max. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || !end || *end != '\0' || v > max)
        return false;
    *out = (uint64_t)v;
    return true;
}

static bool parse_type(const char *t, uint8_t *out)
{
    static const struct {
        const char *name;
        uint8_t type;
    } types[] = {{"i32", IW_I32},         {"i64", IW_I64},
                 {"f32", IW_F32},         {"f64", IW_F64},
                 {"funcref", IW_FUNCREF}, {"externref", IW_EXTERNREF}};
    if (!t)
        return false;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(t, types[i].name) == 0) {
            *out = types[i].type;
            return true;
        }
    return false;
}

/* Converts a JSON argument value {"type","value"} to an iw_val.  Returns
 * false with a reason in why. */
static bool parse_arg(const cJSON *j, iw_val *out, char *why, size_t wlen)
{
    const char *ts = jstr(j, "type");
    const char *vs = jstr(j, "value");
    uint64_t u = 0;
    memset(out, 0, sizeof *out);
    if (!parse_type(ts, &out->type)) {
        snprintf(why, wlen, "unsupported argument type %s", ts ? ts : "(missing)");
        return false;
    }
    if (!vs) {
        snprintf(why, wlen, "argument of type %s has no value", ts);
        return false;
    }
    switch (out->type) {
    case IW_I32:
    case IW_F32:
        if (!parse_u64(vs, UINT32_MAX, &u))
            goto bad;
        if (out->type == IW_I32)
            out->of.i32 = (int32_t)(uint32_t)u;
        else
            out->of.f32 = (uint32_t)u;
        return true;
    case IW_I64:
    case IW_F64:
        if (!parse_u64(vs, UINT64_MAX, &u))
            goto bad;
        if (out->type == IW_I64)
            out->of.i64 = (int64_t)u;
        else
            out->of.f64 = u;
        return true;
    case IW_FUNCREF:
        if (strcmp(vs, "null") != 0) {
            snprintf(why, wlen, "non-null funcref argument %s unsupported", vs);
            return false;
        }
        out->of.ref = NULL;
        return true;
    default: /* IW_EXTERNREF */
        if (strcmp(vs, "null") == 0) {
            out->of.ref = NULL;
            return true;
        }
        if (!parse_u64(vs, UINTPTR_MAX - 1, &u))
            goto bad;
        out->of.ref = (void *)(uintptr_t)(u + 1);
        return true;
    }
bad:
    snprintf(why, wlen, "bad %s value \"%s\"", ts, vs);
    return false;
}

/* Formats a value for messages. */
static void fmt_val(const iw_val *v, char *buf, size_t len)
{
    switch (v->type) {
    case IW_I32:
        snprintf(buf, len, "i32:%" PRIu32, (uint32_t)v->of.i32);
        break;
    case IW_I64:
        snprintf(buf, len, "i64:%" PRIu64, (uint64_t)v->of.i64);
        break;
    case IW_F32:
        snprintf(buf, len, "f32:0x%08" PRIx32, v->of.f32);
        break;
    case IW_F64:
        snprintf(buf, len, "f64:0x%016" PRIx64, v->of.f64);
        break;
    case IW_FUNCREF:
    case IW_EXTERNREF:
        if (!v->of.ref)
            snprintf(buf, len, "%s:null", iw_valtype_name(v->type));
        else if (v->type == IW_EXTERNREF)
            snprintf(buf, len, "externref:%" PRIuPTR,
                     (uintptr_t)v->of.ref - 1);
        else
            snprintf(buf, len, "funcref:%p", v->of.ref);
        break;
    default:
        snprintf(buf, len, "<type 0x%02x>", (unsigned)v->type);
        break;
    }
}

/* Checks one result against an expected JSON value (exact bits, NaN
 * patterns, references).  Returns false with a reason in why. */
static bool check_val(const cJSON *exp, const iw_val *got, char *why,
                      size_t wlen)
{
    const char *ts = jstr(exp, "type");
    const char *vs = jstr(exp, "value");
    char gs[64];
    uint8_t t;
    uint64_t u = 0;
    fmt_val(got, gs, sizeof gs);
    if (!parse_type(ts, &t)) {
        snprintf(why, wlen, "unsupported expected type %s", ts ? ts : "(missing)");
        return false;
    }
    if (!vs) {
        snprintf(why, wlen, "expected %s has no value", ts);
        return false;
    }
    if (got->type != t) {
        snprintf(why, wlen, "expected %s:%s, got %s", ts, vs, gs);
        return false;
    }
    bool ok;
    if ((t == IW_F32 || t == IW_F64) && strncmp(vs, "nan:", 4) == 0) {
        bool canon = strcmp(vs, "nan:canonical") == 0;
        if (!canon && strcmp(vs, "nan:arithmetic") != 0) {
            snprintf(why, wlen, "unknown NaN pattern %s", vs);
            return false;
        }
        if (t == IW_F32) {
            uint32_t b = got->of.f32;
            ok = canon ? (b & 0x7fffffffu) == 0x7fc00000u
                       : (b & 0x7fc00000u) == 0x7fc00000u;
        } else {
            uint64_t b = got->of.f64;
            ok = canon ? (b & 0x7fffffffffffffffu) == 0x7ff8000000000000u
                       : (b & 0x7ff8000000000000u) == 0x7ff8000000000000u;
        }
    } else {
        switch (t) {
        case IW_I32:
        case IW_F32:
            if (!parse_u64(vs, UINT32_MAX, &u))
                goto bad;
            ok = (t == IW_I32 ? (uint32_t)got->of.i32 : got->of.f32) == (uint32_t)u;
            break;
        case IW_I64:
        case IW_F64:
            if (!parse_u64(vs, UINT64_MAX, &u))
                goto bad;
            ok = (t == IW_I64 ? (uint64_t)got->of.i64 : got->of.f64) == u;
            break;
        case IW_FUNCREF:
            /* Only null is representable; any other value means non-null. */
            ok = strcmp(vs, "null") == 0 ? got->of.ref == NULL
                                         : got->of.ref != NULL;
            break;
        default: /* IW_EXTERNREF */
            if (strcmp(vs, "null") == 0) {
                ok = got->of.ref == NULL;
                break;
            }
            if (!parse_u64(vs, UINTPTR_MAX - 1, &u))
                goto bad;
            ok = got->of.ref == (void *)(uintptr_t)(u + 1);
            break;
        }
    }
    if (!ok)
        snprintf(why, wlen, "expected %s:%s, got %s", ts, vs, gs);
    return ok;
bad:
    snprintf(why, wlen, "bad expected %s value \"%s\"", ts, vs);
    return false;
}

/* ------------------------------------------------------------------------ */
/* Modules and instances.                                                   */

/* Reads a whole file into a malloc'ed buffer.  Returns NULL with a reason. */
static uint8_t *read_file(const char *path, size_t *len, char *why, size_t wlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, wlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        goto nomem;
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_FILE) {
                snprintf(why, wlen, "%s is too large", path);
                goto fail;
            }
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb)
                goto nomem;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                snprintf(why, wlen, "error reading %s", path);
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    *len = n;
    return buf;
nomem:
    snprintf(why, wlen, "out of memory reading %s", path);
fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* Loads the binary module named by cmd's "filename" (relative to the JSON's
 * directory).  Returns the engine status, or IW_ARG when the command or
 * file is unusable (reason in err).  A loaded module is kept in c->mods and
 * freed after the store. */
static iw_status load_module(file_ctx *c, const cJSON *cmd, iw_module **out,
                             char *err, size_t elen)
{
    const char *fn = jstr(cmd, "filename");
    *out = NULL;
    err[0] = '\0';
    if (!fn || !*fn) {
        snprintf(err, elen, "command has no \"filename\"");
        return IW_ARG;
    }
    size_t plen = strlen(c->dir) + 1 + strlen(fn) + 1;
    char *path = malloc(plen);
    if (!path) {
        snprintf(err, elen, "out of memory");
        return IW_ARG;
    }
    snprintf(path, plen, "%s/%s", c->dir, fn);
    size_t len = 0;
    uint8_t *bytes = read_file(path, &len, err, elen);
    free(path);
    if (!bytes)
        return IW_ARG;
    if (c->nmods == c->capmods) {
        size_t ncap = c->capmods ? c->capmods * 2 : 16;
        iw_module **nv = realloc(c->mods, ncap * sizeof *nv);
        if (!nv) {
            free(bytes);
            snprintf(err, elen, "out of memory");
            return IW_ARG;
        }
        c->mods = nv;
        c->capmods = ncap;
    }
    iw_module *m = NULL;
    iw_status st = iw_module_load(bytes, len, &m, err, elen);
    free(bytes);
    if (st == IW_OK && !m) {
        snprintf(err, elen, "iw_module_load returned IW_OK without a module");
        return IW_ARG;
    }
    if (st == IW_OK) {
        c->mods[c->nmods++] = m;
        *out = m;
    }
    return st;
}

/* Instantiates m, resolving its imports against the registered instances
 * and spectest.  An import the driver cannot resolve yields IW_LINK with
 * *unresolved set.  Messages go to err. */
static iw_status instantiate(file_ctx *c, const iw_module *m, iw_instance **out,
                             bool *unresolved, char *err, size_t elen)
{
    uint32_t n = iw_module_import_count(m);
    *out = NULL;
    *unresolved = false;
    err[0] = '\0';
    iw_extern *imps = calloc(n ? n : 1, sizeof *imps);
    if (!imps) {
        snprintf(err, elen, "out of memory");
        return IW_NOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        iw_extern_desc d;
        iw_status st = iw_module_import(m, i, &d);
        if (st != IW_OK || !d.module || !d.name) {
            snprintf(err, elen, "iw_module_import(%" PRIu32 ") failed: %s", i,
                     iw_status_name(st));
            free(imps);
            return IW_ARG;
        }
        bool found = false;
        /* name_len counts NUL bytes inside the name; 0 also for "" */
        size_t nlen = d.name_len ? d.name_len : strlen(d.name);
        if (strcmp(d.module, "spectest") == 0) {
            found = nlen == strlen(d.name) &&
                    spectest_resolve(c, d.name, &imps[i]);
        } else {
            named_inst *r = list_find(&c->regs, d.module);
            found = r && r->inst &&
                    iw_instance_export_n(r->inst, d.name, nlen, &imps[i]) ==
                        IW_OK;
        }
        if (!found) {
            snprintf(err, elen, "unknown import \"%s\" \"%s\" (%s)", d.module,
                     d.name, iw_extern_kind_name(d.kind));
            *unresolved = true;
            free(imps);
            return IW_LINK;
        }
    }
    iw_status st = iw_instantiate(c->store, m, imps, n, out, err, elen);
    free(imps);
    if (st == IW_OK && !*out) {
        snprintf(err, elen, "iw_instantiate returned IW_OK without an instance");
        return IW_ARG;
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* Actions.                                                                 */

typedef struct action_out {
    iw_status st;     /* engine status of the call (IW_OK, IW_TRAP, ...) */
    iw_val *vals;     /* results when st == IW_OK (malloc'ed) */
    uint32_t nvals;
} action_out;

/* Finds the instance an action targets.  NULL with a reason in why. */
static iw_instance *target(file_ctx *c, const cJSON *action, char *why,
                           size_t wlen)
{
    const char *mod = jstr(action, "module");
    if (mod) {
        named_inst *e = list_find(&c->named, mod);
        if (!e) {
            snprintf(why, wlen, "unknown module %s", mod);
            return NULL;
        }
        if (!e->inst)
            snprintf(why, wlen, "module %s failed to load or instantiate", mod);
        return e->inst;
    }
    if (!c->have_current) {
        snprintf(why, wlen, "no module defined");
        return NULL;
    }
    if (!c->current)
        snprintf(why, wlen, "the current module failed to load or instantiate");
    return c->current;
}

/* Performs an invoke/get action.  Returns false (reason in why) when the
 * action could not be attempted; otherwise true with out->st the engine's
 * status and the results in out->vals (caller frees). */
static bool run_action(file_ctx *c, const cJSON *action, action_out *out,
                       char *why, size_t wlen)
{
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(action)) {
        snprintf(why, wlen, "command has no \"action\" object");
        return false;
    }
    const char *type = jstr(action, "type");
    const char *field = jstr(action, "field");
    if (!type || !field) {
        snprintf(why, wlen, "action without \"type\" or \"field\"");
        return false;
    }
    iw_instance *inst = target(c, action, why, wlen);
    if (!inst)
        return false;
    iw_extern ext;
    size_t flen = 0;
    char *fname = decode_name(c, field, &flen);
    if (!fname) {
        snprintf(why, wlen, "out of memory");
        return false;
    }
    iw_status st = iw_instance_export_n(inst, fname, flen, &ext);
    free(fname);
    if (st != IW_OK) {
        snprintf(why, wlen, "export \"%s\" not found (%s)", field,
                 iw_status_name(st));
        return false;
    }
    if (strcmp(type, "get") == 0) {
        if (ext.kind != IW_EXTERN_GLOBAL || !ext.of.global) {
            snprintf(why, wlen, "export \"%s\" is not a global", field);
            return false;
        }
        out->vals = malloc(sizeof *out->vals);
        if (!out->vals) {
            snprintf(why, wlen, "out of memory");
            return false;
        }
        out->vals[0] = iw_global_get(ext.of.global);
        out->nvals = 1;
        out->st = IW_OK;
        return true;
    }
    if (strcmp(type, "invoke") != 0) {
        snprintf(why, wlen, "unknown action type \"%s\"", type);
        return false;
    }
    if (ext.kind != IW_EXTERN_FUNC || !ext.of.func) {
        snprintf(why, wlen, "export \"%s\" is not a function", field);
        return false;
    }
    const cJSON *jargs = cJSON_GetObjectItemCaseSensitive(action, "args");
    if (jargs && !cJSON_IsArray(jargs)) {
        snprintf(why, wlen, "\"args\" is not an array");
        return false;
    }
    int nargs_i = jargs ? cJSON_GetArraySize(jargs) : 0;
    if (nargs_i < 0 || (unsigned)nargs_i > MAX_VALS) {
        snprintf(why, wlen, "too many arguments");
        return false;
    }
    size_t nargs = (size_t)nargs_i;
    iw_functype ft = iw_func_type(ext.of.func);
    if (ft.nresults > MAX_VALS) {
        snprintf(why, wlen, "function has too many results");
        return false;
    }
    iw_val *args = calloc(nargs ? nargs : 1, sizeof *args);
    iw_val *res = calloc(ft.nresults ? ft.nresults : 1, sizeof *res);
    if (!args || !res) {
        free(args);
        free(res);
        snprintf(why, wlen, "out of memory");
        return false;
    }
    size_t i = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, jargs)
    {
        if (!parse_arg(a, &args[i], why, wlen)) {
            free(args);
            free(res);
            return false;
        }
        i++;
    }
    out->st = iw_call_func(ext.of.func, args, nargs, res, ft.nresults);
    free(args);
    out->vals = res;
    out->nvals = ft.nresults;
    return true;
}

/* Describes a failed call for messages: status name plus store message. */
static void describe_status(file_ctx *c, iw_status st, char *buf, size_t len)
{
    const char *msg = iw_store_errmsg(c->store);
    if (st == IW_OK)
        snprintf(buf, len, "IW_OK");
    else
        snprintf(buf, len, "%s \"%s\"", iw_status_name(st), msg ? msg : "");
}

/* Whether a trap message matches: one is a prefix of the other (ours must
 * be non-empty). */
static bool trap_text_matches(const char *got, const char *exp)
{
    if (!got || !*got || !exp)
        return false;
    size_t lg = strlen(got), le = strlen(exp);
    return strncmp(got, exp, lg < le ? lg : le) == 0;
}

/* ------------------------------------------------------------------------ */
/* Commands.                                                                */

static void cmd_module(file_ctx *c, const cJSON *cmd, long line)
{
    char err[MSG_LEN];
    const char *name = jstr(cmd, "name");
    iw_module *m = NULL;
    iw_instance *inst = NULL;
    iw_status st = load_module(c, cmd, &m, err, sizeof err);
    if (st != IW_OK) {
        fail(c, line, "module", "load failed: %s: %s", iw_status_name(st), err);
    } else {
        bool unresolved;
        st = instantiate(c, m, &inst, &unresolved, err, sizeof err);
        if (st != IW_OK) {
            inst = NULL;
            fail(c, line, "module", "instantiation failed: %s: %s",
                 iw_status_name(st), err);
        } else {
            c->passed++;
        }
    }
    c->have_current = true;
    c->current = inst;
    if (name && !list_add(&c->named, name, inst))
        printf("%s:%ld: error: out of memory recording module %s\n", c->wast,
               line, name);
}

static void cmd_register(file_ctx *c, const cJSON *cmd, long line)
{
    const char *as = jstr(cmd, "as");
    const char *name = jstr(cmd, "name");
    iw_instance *inst = NULL;
    if (!as) {
        fail(c, line, "register", "missing \"as\"");
        return;
    }
    if (name) {
        named_inst *e = list_find(&c->named, name);
        inst = e ? e->inst : NULL;
    } else {
        inst = c->current;
    }
    if (!inst)
        note(c, line, "register", "nothing to register as \"%s\" (module %s)",
             as, name ? name : "(current)");
    /* A NULL entry hides earlier registrations: imports from it fail. */
    if (!list_add(&c->regs, as, inst))
        printf("%s:%ld: error: out of memory registering %s\n", c->wast, line,
               as);
}

/* action and assert_return */
static void cmd_return(file_ctx *c, const cJSON *cmd, long line,
                       const char *type, bool check_results)
{
    char why[MSG_LEN], desc[MSG_LEN];
    action_out r;
    if (!run_action(c, cJSON_GetObjectItemCaseSensitive(cmd, "action"), &r,
                    why, sizeof why)) {
        fail(c, line, type, "%s", why);
        return;
    }
    if (r.st != IW_OK) {
        describe_status(c, r.st, desc, sizeof desc);
        fail(c, line, type, "expected a return, got %s", desc);
        free(r.vals);
        return;
    }
    if (check_results) {
        const cJSON *exp = cJSON_GetObjectItemCaseSensitive(cmd, "expected");
        if (!cJSON_IsArray(exp)) {
            fail(c, line, type, "missing \"expected\" array");
            free(r.vals);
            return;
        }
        int nexp = cJSON_GetArraySize(exp);
        if (nexp < 0 || (uint32_t)nexp != r.nvals) {
            fail(c, line, type, "expected %d results, got %" PRIu32, nexp,
                 r.nvals);
            free(r.vals);
            return;
        }
        uint32_t i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, exp)
        {
            if (!check_val(e, &r.vals[i], why, sizeof why)) {
                if (r.nvals > 1)
                    fail(c, line, type, "result %" PRIu32 ": %s", i, why);
                else
                    fail(c, line, type, "%s", why);
                free(r.vals);
                return;
            }
            i++;
        }
    }
    free(r.vals);
    c->passed++;
}

/* assert_trap (on an action) and assert_exhaustion */
static void cmd_trap(file_ctx *c, const cJSON *cmd, long line,
                     const char *type, bool exhaustion)
{
    char why[MSG_LEN], desc[MSG_LEN];
    const char *text = jstr(cmd, "text");
    action_out r;
    if (!text) {
        fail(c, line, type, "missing \"text\"");
        return;
    }
    if (!run_action(c, cJSON_GetObjectItemCaseSensitive(cmd, "action"), &r,
                    why, sizeof why)) {
        fail(c, line, type, "%s", why);
        return;
    }
    free(r.vals);
    describe_status(c, r.st, desc, sizeof desc);
    if (r.st != IW_TRAP) {
        fail(c, line, type, "expected trap \"%s\", got %s", text, desc);
        return;
    }
    if (exhaustion) {
        if (iw_store_trap(c->store) != IW_TRAP_STACK_EXHAUSTED) {
            fail(c, line, type, "expected stack exhaustion, got %s", desc);
            return;
        }
    } else if (!trap_text_matches(iw_store_errmsg(c->store), text)) {
        fail(c, line, type, "expected trap \"%s\", got %s", text, desc);
        return;
    }
    c->passed++;
}

/* assert_invalid and binary assert_malformed: loading must fail. */
static void cmd_bad_module(file_ctx *c, const cJSON *cmd, long line,
                           const char *type, iw_status want)
{
    char err[MSG_LEN];
    const char *text = jstr(cmd, "text");
    iw_module *m = NULL;
    iw_status st = load_module(c, cmd, &m, err, sizeof err);
    if (st == IW_OK) {
        fail(c, line, type, "module loaded, expected \"%s\"",
             text ? text : "?");
        return;
    }
    if (st == IW_ARG || st == IW_NOMEM) {
        fail(c, line, type, "%s: %s", iw_status_name(st), err);
        return;
    }
    if (st != want)
        note(c, line, type, "expected %s \"%s\", got %s: %s",
             iw_status_name(want), text ? text : "?", iw_status_name(st), err);
    c->passed++;
}

/* assert_unlinkable and assert_uninstantiable: loading must succeed and
 * instantiation fail with `want`. */
static void cmd_bad_instance(file_ctx *c, const cJSON *cmd, long line,
                             const char *type, iw_status want)
{
    char err[MSG_LEN];
    const char *text = jstr(cmd, "text");
    iw_module *m = NULL;
    iw_instance *inst = NULL;
    bool unresolved = false;
    iw_status st = load_module(c, cmd, &m, err, sizeof err);
    if (st != IW_OK) {
        fail(c, line, type, "load failed: %s: %s", iw_status_name(st), err);
        return;
    }
    st = instantiate(c, m, &inst, &unresolved, err, sizeof err);
    if (st != want) {
        if (st == IW_OK)
            fail(c, line, type, "instantiated, expected %s \"%s\"",
                 iw_status_name(want), text ? text : "?");
        else
            fail(c, line, type, "expected %s \"%s\", got %s: %s",
                 iw_status_name(want), text ? text : "?", iw_status_name(st),
                 err);
        return;
    }
    if (want == IW_TRAP && text &&
        !trap_text_matches(iw_store_errmsg(c->store), text))
        note(c, line, type, "trap text \"%s\", expected \"%s\"",
             iw_store_errmsg(c->store), text);
    c->passed++;
}

/* Runs one command of a JSON file. */
static void run_command(file_ctx *c, const cJSON *cmd, int index)
{
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(cmd, "line");
    long line = 0;
    if (cJSON_IsNumber(jl) && jl->valuedouble >= 0 && jl->valuedouble < 1e9)
        line = (long)jl->valuedouble;
    const char *type = cJSON_IsObject(cmd) ? jstr(cmd, "type") : NULL;
    if (!type) {
        fail(c, line, "?", "command %d has no \"type\"", index);
        return;
    }
    const char *mt = jstr(cmd, "module_type");
    if (mt && strcmp(mt, "text") == 0) {
        c->na++; /* tests of the text format: not applicable */
        return;
    }
    if (strcmp(type, "module") == 0)
        cmd_module(c, cmd, line);
    else if (strcmp(type, "register") == 0)
        cmd_register(c, cmd, line);
    else if (strcmp(type, "action") == 0)
        cmd_return(c, cmd, line, type, false);
    else if (strcmp(type, "assert_return") == 0)
        cmd_return(c, cmd, line, type, true);
    else if (strcmp(type, "assert_trap") == 0) {
        if (!cJSON_GetObjectItemCaseSensitive(cmd, "action") &&
            jstr(cmd, "filename"))
            cmd_bad_instance(c, cmd, line, type, IW_TRAP);
        else
            cmd_trap(c, cmd, line, type, false);
    } else if (strcmp(type, "assert_exhaustion") == 0)
        cmd_trap(c, cmd, line, type, true);
    else if (strcmp(type, "assert_invalid") == 0)
        cmd_bad_module(c, cmd, line, type, IW_INVALID);
    else if (strcmp(type, "assert_malformed") == 0)
        cmd_bad_module(c, cmd, line, type, IW_MALFORMED);
    else if (strcmp(type, "assert_unlinkable") == 0)
        cmd_bad_instance(c, cmd, line, type, IW_LINK);
    else if (strcmp(type, "assert_uninstantiable") == 0)
        cmd_bad_instance(c, cmd, line, type, IW_TRAP);
    else
        fail(c, line, type, "unknown command type");
}

/* ------------------------------------------------------------------------ */
/* Files.                                                                   */

typedef struct totals {
    unsigned long passed, failed, unexpected;
} totals;

/* Runs every command of one JSON file in a fresh store and prints its
 * summary line.  A file that cannot be read or parsed counts as one
 * unexpected failure. */
static void run_file(const char *path, known_set *known, totals *tot)
{
    file_ctx c;
    memset(&c, 0, sizeof c);
    c.known = known;

    /* "<dir>/<name>.json" -> dir and "<name>.wast" */
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base);
    if (blen > 5 && strcmp(base + blen - 5, ".json") == 0)
        blen -= 5;
    char *wast = malloc(blen + 6);
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path))
                      : strdup(".");
    char why[MSG_LEN];
    uint8_t *text = NULL;
    cJSON *root = NULL;
    if (!wast || !dir) {
        printf("%s: error: out of memory\n", path);
        tot->failed++;
        tot->unexpected++;
        goto out;
    }
    memcpy(wast, base, blen);
    memcpy(wast + blen, ".wast", 6);
    c.wast = wast;
    c.dir = dir;

    size_t len = 0;
    text = read_file(path, &len, why, sizeof why);
    if (text) {
        uint8_t *t2 = realloc(text, len + 1);
        if (!t2) {
            free(text);
            text = NULL;
            snprintf(why, sizeof why, "out of memory");
        } else {
            text = t2;
            text[len] = 0;
        }
    }
    if (text) {
        c.nul_marked = protect_nuls((char *)text, len);
        root = cJSON_ParseWithLength((const char *)text, len);
        if (!root)
            snprintf(why, sizeof why, "%s is not valid JSON", path);
    }
    const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(root, "commands");
    if (root && !cJSON_IsArray(cmds))
        snprintf(why, sizeof why, "%s has no \"commands\" array", path);
    if (!root || !cJSON_IsArray(cmds)) {
        fail(&c, 0, "file", "%s", why);
        goto summary;
    }

    c.store = iw_store_new(NULL);
    if (!c.store) {
        fail(&c, 0, "file", "iw_store_new failed");
        goto summary;
    }
    spectest_create(&c);
    int index = 0;
    const cJSON *cmd;
    cJSON_ArrayForEach(cmd, cmds)
    {
        run_command(&c, cmd, index);
        index++;
        fflush(stdout);
    }

summary:
    if (g_verbose) {
        size_t wl = strlen(c.wast);
        for (size_t i = 0; i < known->n; i++)
            if (!known->v[i].hit && strncmp(known->v[i].key, c.wast, wl) == 0 &&
                known->v[i].key[wl] == ':')
                printf("note: known failure %s did not fail\n",
                       known->v[i].key);
    }
    printf("%s: %lu passed, %lu failed, %lu known, %lu n/a\n", c.wast,
           c.passed, c.failed, c.known_failed, c.na);
    tot->passed += c.passed;
    tot->failed += c.failed;
    tot->unexpected += c.failed - c.known_failed;
out:
    if (c.store)
        iw_store_free(c.store);
    for (size_t i = 0; i < c.nmods; i++)
        iw_module_free(c.mods[i]);
    free(c.mods);
    list_free(&c.named);
    list_free(&c.regs);
    cJSON_Delete(root);
    free(text);
    free(wast);
    free(dir);
}

static void usage(void)
{
    fprintf(stderr, "usage: spec_driver [--known FILE] [--verbose] FILE.json...\n");
}

int main(int argc, char **argv)
{
    known_set known = {NULL, 0, 0};
    totals tot = {0, 0, 0};
    int nfiles = 0;
    int rc = 0;

    /* First pass: options. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--known") == 0) {
            if (i + 1 >= argc) {
                usage();
                rc = 2;
                goto done;
            }
            if (known_load(&known, argv[++i]) != 0) {
                rc = 2;
                goto done;
            }
        } else if (strcmp(argv[i], "--verbose") == 0 ||
                   strcmp(argv[i], "-v") == 0) {
            g_verbose = true;
        } else if (strcmp(argv[i], "--help") == 0 ||
                   strcmp(argv[i], "-h") == 0) {
            usage();
            goto done;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "spec_driver: unknown option %s\n", argv[i]);
            usage();
            rc = 2;
            goto done;
        } else {
            nfiles++;
        }
    }
    if (nfiles == 0) {
        usage();
        rc = 2;
        goto done;
    }
    /* Second pass: files. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--known") == 0) {
            i++;
            continue;
        }
        if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0)
            continue;
        run_file(argv[i], &known, &tot);
        fflush(stdout);
    }
    printf("%lu passed, %lu failed\n", tot.passed, tot.failed);
    rc = tot.unexpected ? 1 : 0;
done:
    known_free(&known);
    return rc;
}
