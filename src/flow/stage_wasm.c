/*
 * stage_wasm.c - the WebAssembly stage host: runs stages compiled to .wasm
 * with the SDK (sdk/src/stage_sdk.c) on isoflow's engine (wasm.h), one
 * store and instance per stage instance, under a fuel budget per call and a
 * memory cap, with the "isoflow" imports mapped to the runtime's
 * if_host_api table.
 *
 * Modules are loaded, validated and translated once per (path, content
 * hash) in a process-wide cache and shared between instances and threads
 * (an iw_module is immutable); the cache's mutex is taken at create/destroy
 * only, never on the message path.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_int.h"
#include "stage_host.h"
#include "wasm.h"

/* ---- The module cache. ------------------------------------------------- */

typedef struct fl__wmod {
    char *path;        /* as given in the declaration (owned) */
    uint64_t hash;     /* FNV-1a 64 of the file's bytes */
    size_t size;
    iw_module *mod;    /* owned */
    uint32_t refs;     /* instances and checks using it */
    struct fl__wmod *next;
} wmod;

static pthread_mutex_t wcache_lock = PTHREAD_MUTEX_INITIALIZER;
static wmod *wcache;

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Finds a cached module with this identity and takes a reference; the
 * caller holds the lock. */
static wmod *wcache_find(const char *path, uint64_t hash, size_t size)
{
    for (wmod *m = wcache; m; m = m->next) {
        if (m->hash == hash && m->size == size && strcmp(m->path, path) == 0) {
            m->refs++;
            return m;
        }
    }
    return NULL;
}

/* Returns the module of the file at `path` as it is now (a changed file is
 * loaded anew: the content hash identifies the version), with a reference
 * the caller drops with wmod_release().  Errors: FL_IO (unreadable),
 * FL_CHECK (the engine rejects it, its message in err), FL_NOMEM. */
static fl_status wmod_get(const fl__stage *d, const uint8_t *bytes,
                          size_t len, wmod **out, char *err, size_t errlen);

static fl_status wmod_acquire(const fl__stage *d, wmod **out, char *err,
                              size_t errlen)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    char why[512];
    const uint8_t *embedded = NULL;
    /* "embedded:NAME": bytes compiled into this binary (stage_embed.c). */
    fl_status st = fl_embed_find(d->path, &embedded, &len, why, sizeof why);
    if (st == FL_OK)
        return wmod_get(d, embedded, len, out, err, errlen);
    if (st == FL_PASS)
        st = fl__read_file(d->path, FL__MAX_STAGE_FILE, &bytes, &len, why,
                           sizeof why);
    if (st != FL_OK) {
        snprintf(err, errlen, "stage '%s': %s", d->name, why);
        return st;
    }
    st = wmod_get(d, bytes, len, out, err, errlen);
    free(bytes);
    return st;
}

/* The module of `bytes` (borrowed) for stage d: from the cache when the
 * same content was loaded for the same path, else loaded, validated and
 * cached.  A reference for the caller (wmod_release).  FL_CHECK with the
 * engine's message, FL_NOMEM. */
static fl_status wmod_get(const fl__stage *d, const uint8_t *bytes,
                          size_t len, wmod **out, char *err, size_t errlen)
{
    char why[512];
    uint64_t hash = fnv1a(bytes, len);
    pthread_mutex_lock(&wcache_lock);
    wmod *m = wcache_find(d->path, hash, len);
    pthread_mutex_unlock(&wcache_lock);
    if (m) {
        *out = m;
        return FL_OK;
    }
    /* Load outside the lock (it may take a while), then insert unless
     * another thread was faster. */
    iw_module *mod = NULL;
    iw_status ist = iw_module_load(bytes, len, &mod, why, sizeof why);
    if (ist != IW_OK) {
        snprintf(err, errlen, "stage '%s': %s: %s", d->name,
                 fl__base_name(d->path), why);
        return ist == IW_NOMEM ? FL_NOMEM : FL_CHECK;
    }
    m = calloc(1, sizeof *m);
    char *p = m ? strdup(d->path) : NULL;
    if (!m || !p) {
        free(m);
        iw_module_free(mod);
        snprintf(err, errlen, "stage '%s': out of memory", d->name);
        return FL_NOMEM;
    }
    m->path = p;
    m->hash = hash;
    m->size = len;
    m->mod = mod;
    m->refs = 1;
    pthread_mutex_lock(&wcache_lock);
    wmod *other = wcache_find(d->path, hash, len);
    if (!other) {
        m->next = wcache;
        wcache = m;
    }
    pthread_mutex_unlock(&wcache_lock);
    if (other) {
        iw_module_free(m->mod);
        free(m->path);
        free(m);
        m = other;
    }
    *out = m;
    return FL_OK;
}

/* Drops a reference; the last one frees the module (after every store
 * using it is gone). */
static void wmod_release(wmod *m)
{
    int last = 0;
    pthread_mutex_lock(&wcache_lock);
    if (--m->refs == 0) {
        last = 1;
        for (wmod **pp = &wcache; *pp; pp = &(*pp)->next) {
            if (*pp == m) {
                *pp = m->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&wcache_lock);
    if (last) {
        iw_module_free(m->mod);
        free(m->path);
        free(m);
    }
}

/* ---- Instances. -------------------------------------------------------- */

typedef struct winst {
    const fl__stage *d;     /* borrowed from the graph */
    const if_host_api *api; /* borrowed from the runtime */
    void *ctx;
    wmod *mod;              /* a reference on the cached module */
    iw_store *store;        /* owned: the instance and host functions */
    iw_instance *inst;
    iw_memory *mem;
    iw_func *f_buffer, *f_init, *f_process, *f_produce, *f_actuation,
        *f_migrate, *f_abi, *f_caps;
    uint32_t caps;          /* IF_CAP_* from isoflow_caps */
    int64_t fuel;           /* per call */
    uint32_t buf_ptr;       /* the SDK's message buffer, 0 until asked */
    uint32_t buf_cap;       /* bytes known to fit there */
    uint32_t emits;         /* emits during the current call */
} winst;

static winst *W(fl__inst *in) { return (winst *)(void *)in; }

/* Checks that [ptr, ptr+len) lies in the caller's memory; returns its
 * address or NULL after recording a trap naming the import. */
static uint8_t *guest_ptr(iw_call *call, uint32_t ptr, uint32_t len,
                          const char *what)
{
    iw_memory *mem = iw_call_memory(call);
    char msg[128];
    if (mem && (uint64_t)ptr + len <= iw_memory_size(mem))
        return iw_memory_data(mem) + ptr;
    snprintf(msg, sizeof msg,
             "out of bounds memory access in isoflow.%s (offset %u, "
             "length %u)",
             what, ptr, len);
    iw_call_trap(call, msg);
    return NULL;
}

#define U32(v) ((uint32_t)(v).of.i32)

static iw_status h_emit(iw_call *call, const iw_val *a, iw_val *r, void *u)
{
    winst *w = u;
    uint32_t tlen = U32(a[1]), dlen = U32(a[3]);
    int rc = fl__check_emit(&w->emits, tlen, dlen);
    if (rc == IF_OK) {
        const uint8_t *t = tlen ? guest_ptr(call, U32(a[0]), tlen, "emit")
                                : (const uint8_t *)"";
        const uint8_t *data = guest_ptr(call, U32(a[2]), dlen, "emit");
        if (!t || !data)
            return IW_TRAP;
        rc = w->api->emit(w->ctx, tlen ? (const char *)t : NULL, tlen, data,
                          dlen);
    }
    r[0].of.i32 = rc;
    return IW_OK;
}

static iw_status h_actuate(iw_call *call, const iw_val *a, iw_val *r,
                           void *u)
{
    winst *w = u;
    uint32_t len = U32(a[1]);
    int rc = fl__check_emit(&w->emits, 0, len);
    if (rc == IF_OK) {
        const uint8_t *data = guest_ptr(call, U32(a[0]), len, "actuate");
        if (!data)
            return IW_TRAP;
        rc = w->api->actuate(w->ctx, data, len);
    }
    r[0].of.i32 = rc;
    return IW_OK;
}

static iw_status h_log(iw_call *call, const iw_val *a, iw_val *r, void *u)
{
    winst *w = u;
    uint32_t len = U32(a[2]);
    (void)r;
    if (len > FL__MAX_LOG)
        len = FL__MAX_LOG;
    const uint8_t *text = guest_ptr(call, U32(a[1]), len, "log");
    if (!text)
        return IW_TRAP;
    w->api->log(w->ctx, a[0].of.i32, (const char *)text, len);
    return IW_OK;
}

static iw_status h_now_ns(iw_call *call, const iw_val *a, iw_val *r,
                          void *u)
{
    winst *w = u;
    (void)call, (void)a;
    r[0].of.i64 = w->api->now_ns(w->ctx);
    return IW_OK;
}

static iw_status h_meta(iw_call *call, const iw_val *a, iw_val *r, void *u)
{
    winst *w = u;
    (void)call;
    r[0].of.i64 = w->api->meta(w->ctx, a[0].of.i32);
    return IW_OK;
}

static iw_status h_meta_str(iw_call *call, const iw_val *a, iw_val *r,
                            void *u)
{
    winst *w = u;
    uint32_t cap = U32(a[2]);
    uint8_t *buf = guest_ptr(call, U32(a[1]), cap, "meta_str");
    if (!buf)
        return IW_TRAP;
    r[0].of.i32 = w->api->meta_str(w->ctx, a[0].of.i32, (char *)buf, cap);
    return IW_OK;
}

static iw_status h_kv_get(iw_call *call, const iw_val *a, iw_val *r,
                          void *u)
{
    winst *w = u;
    uint32_t klen = U32(a[1]), cap = U32(a[3]);
    int rc = fl__check_kv(klen, 0);
    if (rc == IF_OK) {
        const uint8_t *key = guest_ptr(call, U32(a[0]), klen, "kv_get");
        uint8_t *buf = key ? guest_ptr(call, U32(a[2]), cap, "kv_get") : NULL;
        if (!buf)
            return IW_TRAP;
        rc = w->api->kv_get(w->ctx, (const char *)key, klen, buf, cap);
    }
    r[0].of.i32 = rc;
    return IW_OK;
}

static iw_status h_kv_set(iw_call *call, const iw_val *a, iw_val *r,
                          void *u)
{
    winst *w = u;
    uint32_t klen = U32(a[1]), vlen = U32(a[3]);
    int rc = fl__check_kv(klen, vlen);
    if (rc == IF_OK) {
        const uint8_t *key = guest_ptr(call, U32(a[0]), klen, "kv_set");
        const uint8_t *val =
            key ? guest_ptr(call, U32(a[2]), vlen, "kv_set") : NULL;
        if (!val)
            return IW_TRAP;
        rc = w->api->kv_set(w->ctx, (const char *)key, klen, val, vlen);
    }
    r[0].of.i32 = rc;
    return IW_OK;
}

static iw_status h_kv_del(iw_call *call, const iw_val *a, iw_val *r,
                          void *u)
{
    winst *w = u;
    uint32_t klen = U32(a[1]);
    int rc = fl__check_kv(klen, 0);
    if (rc == IF_OK) {
        const uint8_t *key = guest_ptr(call, U32(a[0]), klen, "kv_del");
        if (!key)
            return IW_TRAP;
        rc = w->api->kv_del(w->ctx, (const char *)key, klen);
    }
    r[0].of.i32 = rc;
    return IW_OK;
}

/* The "isoflow" imports (stage.h's ABI), with their signatures. */
typedef struct wimport {
    const char *name;
    uint8_t np, nr;
    uint8_t params[4];
    uint8_t result;
    iw_host_fn fn;
} wimport;

static const wimport wimports[] = {
    {"emit", 4, 1, {IW_I32, IW_I32, IW_I32, IW_I32}, IW_I32, h_emit},
    {"actuate", 2, 1, {IW_I32, IW_I32}, IW_I32, h_actuate},
    {"log", 3, 0, {IW_I32, IW_I32, IW_I32}, 0, h_log},
    {"now_ns", 0, 1, {0}, IW_I64, h_now_ns},
    {"meta", 1, 1, {IW_I32}, IW_I64, h_meta},
    {"meta_str", 3, 1, {IW_I32, IW_I32, IW_I32}, IW_I32, h_meta_str},
    {"kv_get", 4, 1, {IW_I32, IW_I32, IW_I32, IW_I32}, IW_I32, h_kv_get},
    {"kv_set", 4, 1, {IW_I32, IW_I32, IW_I32, IW_I32}, IW_I32, h_kv_set},
    {"kv_del", 2, 1, {IW_I32, IW_I32}, IW_I32, h_kv_del},
};
#define NWIMPORTS (sizeof wimports / sizeof wimports[0])

static int same_type(const wimport *wi, const iw_functype *ft)
{
    if (ft->nparams != wi->np || ft->nresults != wi->nr)
        return 0;
    if (wi->np && memcmp(ft->params, wi->params, wi->np) != 0)
        return 0;
    return wi->nr == 0 || ft->results[0] == wi->result;
}

/* Builds the import list for the module (only "isoflow" functions exist)
 * with host functions calling w's api.  Returns FL_OK or FL_CHECK/NOMEM
 * with a message. */
static fl_status link_imports(winst *w, iw_extern **out, size_t *nout,
                              char *err, size_t errlen)
{
    const iw_module *m = w->mod->mod;
    uint32_t n = iw_module_import_count(m);
    iw_extern *ext = calloc(n ? n : 1, sizeof *ext);
    const char *file = fl__base_name(w->d->path);
    if (!ext) {
        snprintf(err, errlen, "stage '%s': out of memory", w->d->name);
        return FL_NOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        iw_extern_desc desc;
        const wimport *wi = NULL;
        iw_module_import(m, i, &desc);
        if (desc.kind == IW_EXTERN_FUNC && strcmp(desc.module, "isoflow") == 0)
            for (size_t k = 0; k < NWIMPORTS; k++)
                if (strlen(wimports[k].name) == desc.name_len &&
                    memcmp(wimports[k].name, desc.name, desc.name_len) == 0)
                    wi = &wimports[k];
        if (!wi) {
            snprintf(err, errlen,
                     "stage '%s': %s imports %s %s.%s, which isoflow does not "
                     "provide (stages import only the \"isoflow\" functions "
                     "of isoflow/stage.h)",
                     w->d->name, file, iw_extern_kind_name(desc.kind),
                     desc.module, desc.name);
            free(ext);
            return FL_CHECK;
        }
        if (!same_type(wi, &desc.func)) {
            snprintf(err, errlen,
                     "stage '%s': %s imports isoflow.%s with the wrong type "
                     "(built with another SDK version?)",
                     w->d->name, file, wi->name);
            free(ext);
            return FL_CHECK;
        }
        iw_func *f = iw_func_new_host(w->store, wi->params, wi->np,
                                      &wi->result, wi->nr, wi->fn, w);
        if (!f) {
            snprintf(err, errlen, "stage '%s': out of memory", w->d->name);
            free(ext);
            return FL_NOMEM;
        }
        ext[i].kind = IW_EXTERN_FUNC;
        ext[i].of.func = f;
    }
    *out = ext;
    *nout = n;
    return FL_OK;
}

/* Formats the store's trap as "<message> in function <name>"; `entry` is
 * the export called, used when the engine does not know the function. */
static void trap_text(winst *w, const char *entry, char *err, size_t errlen)
{
    const char *msg = iw_store_errmsg(w->store);
    if (!msg || !msg[0])
        msg = iw_trap_msg(iw_store_trap(w->store));
    int64_t fidx = iw_store_trap_func(w->store);
    const char *name = NULL;
    if (fidx >= 0 && fidx <= (int64_t)UINT32_MAX)
        name = iw_module_func_name(w->mod->mod, (uint32_t)fidx);
    if (name)
        snprintf(err, errlen, "%s in function %s", msg, name);
    else if (fidx >= 0)
        snprintf(err, errlen, "%s in function #%lld", msg, (long long)fidx);
    else
        snprintf(err, errlen, "%s in function %s", msg, entry);
}

/* Calls an i32-returning export under the fuel budget.  FL_OK with *ret,
 * FL_TRAP with the trap's text, FL_NOMEM. */
static fl_status wcall(winst *w, iw_func *f, const char *entry,
                       const iw_val *args, size_t nargs, int32_t *ret,
                       char *err, size_t errlen)
{
    iw_val r;
    w->emits = 0;
    iw_store_set_fuel(w->store, w->fuel);
    iw_status st = iw_call_func(f, args, nargs, &r, 1);
    if (st == IW_OK) {
        *ret = r.of.i32;
        return FL_OK;
    }
    if (st == IW_TRAP || st == IW_EXIT) {
        trap_text(w, entry, err, errlen);
        if (iw_store_can_resume(w->store))
            iw_store_abandon(w->store);
        return FL_TRAP;
    }
    snprintf(err, errlen, "%s: %s", entry,
             st == IW_NOMEM ? "out of memory" : iw_store_errmsg(w->store));
    return st == IW_NOMEM ? FL_NOMEM : FL_STAGE;
}

static void winst_free(winst *w)
{
    if (!w)
        return;
    if (w->store)
        iw_store_free(w->store);
    if (w->mod)
        wmod_release(w->mod);
    free(w);
}

/* Makes room for len bytes in the SDK's buffer (asking isoflow_buffer only
 * when the known room is too small) and copies data there.  Returns the
 * guest offset or 0 with an error (FL_TRAP / FL_STAGE in *st). */
static uint32_t put_buffer(winst *w, const void *data, size_t len,
                           fl_status *st, char *err, size_t errlen)
{
    if (!w->buf_ptr || len > w->buf_cap) {
        iw_val a = {.type = IW_I32, .of.i32 = (int32_t)len};
        int32_t p = 0;
        *st = wcall(w, w->f_buffer, "isoflow_buffer", &a, 1, &p, err, errlen);
        if (*st != FL_OK)
            return 0;
        if (p == 0 ||
            (uint64_t)(uint32_t)p + len > iw_memory_size(w->mem)) {
            snprintf(err, errlen,
                     "isoflow_buffer(%zu) gave no room for the message "
                     "(memory cap %u pages?)",
                     len, w->d->max_memory_pages ? w->d->max_memory_pages
                                                 : FL__DEFAULT_PAGES);
            *st = FL_STAGE;
            return 0;
        }
        w->buf_ptr = (uint32_t)p;
        w->buf_cap = (uint32_t)len;
    }
    if (len)
        iw_memory_write(w->mem, w->buf_ptr, data, len);
    *st = FL_OK;
    return w->buf_ptr;
}

/* Creates the store and instance, links the imports, finds the exports.
 * Does not call anything but isoflow_abi and isoflow_caps.  The module is
 * `given` (a new reference is taken) or, when NULL, the file d->path. */
static fl_status winst_new(const fl__stage *d, wmod *given,
                           const if_host_api *api, void *ctx, winst **out,
                           char *err, size_t errlen)
{
    winst *w = calloc(1, sizeof *w);
    iw_extern *ext = NULL;
    size_t next = 0;
    fl_status st;
    char why[512];
    if (!w) {
        snprintf(err, errlen, "stage '%s': out of memory", d->name);
        return FL_NOMEM;
    }
    w->d = d;
    w->api = api;
    w->ctx = ctx;
    w->fuel = d->fuel ? (int64_t)d->fuel : (int64_t)FL__DEFAULT_FUEL;
    if (given) {
        pthread_mutex_lock(&wcache_lock);
        given->refs++;
        pthread_mutex_unlock(&wcache_lock);
        w->mod = given;
        st = FL_OK;
    } else {
        st = wmod_acquire(d, &w->mod, err, errlen);
    }
    if (st != FL_OK)
        goto fail;
    const char *file = fl__base_name(d->path);
    iw_config cfg;
    iw_config_default(&cfg);
    cfg.max_memory_pages =
        d->max_memory_pages ? d->max_memory_pages : FL__DEFAULT_PAGES;
    w->store = iw_store_new(&cfg);
    if (!w->store) {
        snprintf(err, errlen, "stage '%s': out of memory", d->name);
        st = FL_NOMEM;
        goto fail;
    }
    st = link_imports(w, &ext, &next, err, errlen);
    if (st != FL_OK)
        goto fail;
    /* Instantiation (segments, a start function) runs under fuel too. */
    iw_store_set_fuel(w->store, w->fuel);
    iw_status ist =
        iw_instantiate(w->store, w->mod->mod, ext, next, &w->inst, why,
                       sizeof why);
    free(ext);
    ext = NULL;
    if (ist != IW_OK) {
        snprintf(err, errlen, "stage '%s': %s: cannot instantiate: %s",
                 d->name, file, why);
        st = ist == IW_NOMEM ? FL_NOMEM : FL_CHECK;
        goto fail;
    }
    w->mem = iw_instance_memory(w->inst);
    static const struct {
        const char *name;
        size_t off;
    } exports[] = {
        {"isoflow_abi", offsetof(winst, f_abi)},
        {"isoflow_caps", offsetof(winst, f_caps)},
        {"isoflow_buffer", offsetof(winst, f_buffer)},
        {"isoflow_init", offsetof(winst, f_init)},
        {"isoflow_process", offsetof(winst, f_process)},
        {"isoflow_produce", offsetof(winst, f_produce)},
        {"isoflow_actuation", offsetof(winst, f_actuation)},
        {"isoflow_migrate", offsetof(winst, f_migrate)},
    };
    for (size_t i = 0; i < sizeof exports / sizeof exports[0]; i++) {
        iw_func *f = iw_instance_func(w->inst, exports[i].name);
        if (!f) {
            snprintf(err, errlen,
                     "stage '%s': %s does not export %s (not built with the "
                     "isoflow SDK?)",
                     d->name, file, exports[i].name);
            st = FL_CHECK;
            goto fail;
        }
        memcpy((char *)w + exports[i].off, &f, sizeof f);
    }
    if (!w->mem) {
        snprintf(err, errlen, "stage '%s': %s does not export its memory",
                 d->name, file);
        st = FL_CHECK;
        goto fail;
    }
    int32_t v = 0;
    st = wcall(w, w->f_abi, "isoflow_abi", NULL, 0, &v, why, sizeof why);
    if (st == FL_OK && v != IF_ABI_VERSION) {
        snprintf(err, errlen,
                 "stage '%s': %s is built for stage ABI %d; this isoflow "
                 "runs ABI %d",
                 d->name, file, v, IF_ABI_VERSION);
        st = FL_CHECK;
        goto fail;
    }
    if (st == FL_OK)
        st = wcall(w, w->f_caps, "isoflow_caps", NULL, 0, &v, why,
                   sizeof why);
    if (st != FL_OK) {
        snprintf(err, errlen, "stage '%s': %s", d->name, why);
        goto fail;
    }
    w->caps = (uint32_t)v;
    *out = w;
    return FL_OK;
fail:
    free(ext);
    winst_free(w);
    return st;
}

/* check: the module loads, links against the "isoflow" imports only,
 * exports the ABI, and defines what the stage's role needs. */
static fl_status wasm_check(const fl__stage *d, char *err, size_t errlen)
{
    winst *w = NULL;
    if (!d->path) {
        snprintf(err, errlen, "stage '%s': no .wasm file given", d->name);
        return FL_CHECK;
    }
    fl_status st = winst_new(d, NULL, &fl__dummy_api, NULL, &w, err, errlen);
    if (st == FL_IO)
        st = FL_CHECK;
    if (st != FL_OK)
        return st;
    st = fl__check_caps(d, w->caps, err, errlen);
    winst_free(w);
    return st;
}

/* Runs w's init(config) with host api/ctx from now on; on failure w is
 * freed and err says why. */
static fl_status wasm_init(const fl__stage *d, winst *w,
                           const if_host_api *api, void *ctx, char *err,
                           size_t errlen)
{
    fl_status st = FL_OK;
    w->api = api;
    w->ctx = ctx;
    const char *cfg = d->config ? d->config : "";
    size_t len = strlen(cfg);
    char why[512];
    uint32_t p = put_buffer(w, cfg, len, &st, why, sizeof why);
    if (st == FL_OK) {
        iw_val a[2] = {{.type = IW_I32, .of.i32 = (int32_t)p},
                       {.type = IW_I32, .of.i32 = (int32_t)len}};
        int32_t rc = 0;
        st = wcall(w, w->f_init, "isoflow_init", a, 2, &rc, why, sizeof why);
        if (st == FL_OK && rc != 0) {
            snprintf(why, sizeof why, "stage_init returned %d", rc);
            st = FL_STAGE;
        }
    }
    if (st != FL_OK) {
        snprintf(err, errlen, "stage '%s': %s", d->name, why);
        winst_free(w);
        return st;
    }
    return FL_OK;
}

/* Creates an instance of `given` (NULL: the file d->path) and runs its
 * init(config).  *out owned by the caller. */
static fl_status wasm_create_from(const fl__stage *d, wmod *given,
                                  const if_host_api *api, void *ctx,
                                  fl__inst **out, char *err, size_t errlen)
{
    winst *w = NULL;
    fl_status st = winst_new(d, given, api, ctx, &w, err, errlen);
    if (st == FL_OK)
        st = wasm_init(d, w, api, ctx, err, errlen);
    if (st != FL_OK)
        return st;
    *out = (fl__inst *)(void *)w;
    return FL_OK;
}

static fl_status wasm_create(const fl__stage *d, const if_host_api *api,
                             void *ctx, int32_t device, fl__inst **out,
                             char *err, size_t errlen)
{
    (void)device;
    return wasm_create_from(d, NULL, api, ctx, out, err, errlen);
}

/* Calls an export taking (ptr, len) of a message copied into the guest. */
static fl_status call_msg(winst *w, iw_func *f, const char *entry,
                          const char *stage_fn, const uint8_t *msg,
                          size_t len, int32_t *rc, char *err, size_t errlen)
{
    fl_status st;
    if (len > FL__MAX_MSG) {
        snprintf(err, errlen, "message of %zu bytes is larger than %u", len,
                 FL__MAX_MSG);
        return FL_STAGE;
    }
    uint32_t p = put_buffer(w, msg, len, &st, err, errlen);
    if (st != FL_OK)
        return st;
    iw_val a[2] = {{.type = IW_I32, .of.i32 = (int32_t)p},
                   {.type = IW_I32, .of.i32 = (int32_t)len}};
    st = wcall(w, f, entry, a, 2, rc, err, errlen);
    if (st == FL_OK && *rc < 0) {
        snprintf(err, errlen, "%s returned %d", stage_fn, *rc);
        return FL_STAGE;
    }
    return st;
}

static fl_status wasm_process(fl__inst *in, const uint8_t *msg, size_t len,
                              char *err, size_t errlen)
{
    winst *w = W(in);
    int32_t rc;
    if (!(w->caps & IF_CAP_PROCESS)) {
        snprintf(err, errlen, "%s does not define stage_process",
                 fl__base_name(w->d->path));
        return FL_STAGE;
    }
    return call_msg(w, w->f_process, "isoflow_process", "stage_process", msg,
                    len, &rc, err, errlen);
}

static fl_status wasm_produce(fl__inst *in, char *err, size_t errlen)
{
    winst *w = W(in);
    int32_t rc = 0;
    if (!(w->caps & IF_CAP_PRODUCE)) {
        snprintf(err, errlen, "%s does not define stage_produce",
                 fl__base_name(w->d->path));
        return FL_STAGE;
    }
    fl_status st = wcall(w, w->f_produce, "isoflow_produce", NULL, 0, &rc,
                         err, errlen);
    if (st == FL_OK && rc < 0) {
        snprintf(err, errlen, "stage_produce returned %d", rc);
        return FL_STAGE;
    }
    return st;
}

static fl_status wasm_actuation(fl__inst *in, const uint8_t *msg,
                                size_t len, char *err, size_t errlen)
{
    winst *w = W(in);
    int32_t rc = 0;
    if (!(w->caps & IF_CAP_ACTUATION))
        return FL_PASS;
    fl_status st = call_msg(w, w->f_actuation, "isoflow_actuation",
                            "stage_actuation", msg, len, &rc, err, errlen);
    if (st == FL_OK && rc == 1)
        return FL_PASS;
    return st;
}

static void wasm_destroy(fl__inst *in) { winst_free(W(in)); }

const fl__stage_ops fl__wasm_ops = {
    "wasm",
    "a stage compiled to WebAssembly with the isoflow SDK",
    "wasm \"FILE.wasm\" [CONFIG]\n"
    "  Runs a stage written in C against isoflow/stage.h and compiled with\n"
    "  `isoflow build STAGE.c` (or the CMake helper isoflow_add_stage) on\n"
    "  isoflow's WebAssembly engine.  Each instance has its own store and\n"
    "  linear memory (capped by the stage's memory limit, default 256 pages\n"
    "  = 16 MiB) and runs every call under a fuel budget (default 100M\n"
    "  checkpoints): a stage that traps or loops costs a dead letter and a\n"
    "  fresh instance, never the node.  CONFIG is handed to stage_init.\n"
    "  The module may import only the \"isoflow\" functions; it is loaded\n"
    "  once per file content and shared by all instances.\n",
    wasm_check,
    wasm_create,
    wasm_process,
    wasm_produce,
    wasm_actuation,
    wasm_destroy,
};

/* ---- Live update (rt_swap.c; declared in rt_int.h). -------------------- */

/*
 * Loads and validates `bytes` as a new version of wasm stage d: the engine
 * validates it, it links against the "isoflow" imports only, exports the
 * ABI and defines what the stage's role needs (checked on a throw-away
 * instance with no host behind it; no stage code but isoflow_abi/caps and a
 * start function runs).  Cached by (path, content hash) like the file's
 * modules.  Returns FL_OK with a reference (fl__wasm_mod_release), or
 * FL_CHECK / FL_NOMEM with a message.
 */
fl_status fl__wasm_load(const fl__stage *d, const uint8_t *bytes, size_t len,
                        fl__wmod **out, fl__inst **spare, char *err,
                        size_t errlen)
{
    wmod *m = NULL;
    winst *w = NULL;
    fl_status st;
    if (!d->path || strcmp(d->kind ? d->kind : "", "wasm") != 0) {
        snprintf(err, errlen, "stage '%s' is not a wasm stage", d->name);
        return FL_ARG;
    }
    st = wmod_get(d, bytes, len, &m, err, errlen);
    if (st != FL_OK)
        return st;
    st = winst_new(d, m, &fl__dummy_api, NULL, &w, err, errlen);
    if (st == FL_OK)
        st = fl__check_caps(d, w->caps, err, errlen);
    if (st != FL_OK) {
        winst_free(w);
        wmod_release(m);
        return st == FL_NOMEM ? FL_NOMEM : FL_CHECK;
    }
    if (spare)
        *spare = (fl__inst *)(void *)w;
    else
        winst_free(w);
    *out = m;
    return FL_OK;
}

void fl__wasm_mod_release(fl__wmod *m)
{
    if (m)
        wmod_release(m);
}

fl__wmod *fl__wasm_mod_ref(fl__wmod *m)
{
    pthread_mutex_lock(&wcache_lock);
    m->refs++;
    pthread_mutex_unlock(&wcache_lock);
    return m;
}

uint64_t fl__wasm_mod_hash(const fl__wmod *m) { return m ? m->hash : 0; }

/* The module a wasm instance runs, with a new reference. */
fl__wmod *fl__wasm_inst_mod(fl__inst *in)
{
    wmod *m = W(in)->mod;
    pthread_mutex_lock(&wcache_lock);
    m->refs++;
    pthread_mutex_unlock(&wcache_lock);
    return m;
}

fl_status fl__wasm_create_mod(const fl__stage *d, fl__wmod *m,
                              const if_host_api *api, void *ctx,
                              fl__inst **out, char *err, size_t errlen)
{
    return wasm_create_from(d, m, api, ctx, out, err, errlen);
}

fl_status fl__wasm_instantiate(const fl__stage *d, fl__wmod *m,
                               fl__inst **out, char *err, size_t errlen)
{
    winst *w = NULL;
    fl_status st = winst_new(d, m, &fl__dummy_api, NULL, &w, err, errlen);
    if (st != FL_OK)
        return st;
    *out = (fl__inst *)(void *)w;
    return FL_OK;
}

void fl__wasm_inst_free(fl__inst *in)
{
    winst_free(in ? W(in) : NULL);
}

fl_status fl__wasm_init(const fl__stage *d, fl__inst *in,
                        const if_host_api *api, void *ctx, char *err,
                        size_t errlen)
{
    return wasm_init(d, W(in), api, ctx, err, errlen);
}

/* Runs isoflow_migrate(from) when the stage defines stage_migrate: FL_OK
 * (also when it does not), FL_STAGE (it returned non-zero), FL_TRAP. */
fl_status fl__wasm_migrate(fl__inst *in, int32_t from, char *err,
                           size_t errlen)
{
    winst *w = W(in);
    int32_t rc = 0;
    if (!(w->caps & IF_CAP_MIGRATE))
        return FL_OK;
    iw_val a = {.type = IW_I32, .of.i32 = from};
    fl_status st = wcall(w, w->f_migrate, "isoflow_migrate", &a, 1, &rc,
                         err, errlen);
    if (st == FL_OK && rc != 0) {
        snprintf(err, errlen, "stage_migrate returned %d", rc);
        return FL_STAGE;
    }
    return st;
}
