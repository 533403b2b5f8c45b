/*
 * stage_native.c - the native stage host: runs a stage built as a shared
 * object (`isoflow build --native`) in the process itself.  Each instance
 * loads its own private copy of the .so (a temporary file, unlinked once
 * loaded) so that the stage's globals are per instance, as they are with
 * one Wasm store per instance.
 *
 * Live update (rt_swap.c) replaces a native stage's code with new bytes
 * (fl__nmod: the .so's bytes in memory, shared by reference); every
 * instance still loads a private copy of them.
 *
 * A native stage is not sandboxed: a crash or a runaway loop takes the
 * whole node down, and there is no fuel or memory cap.  It exists for
 * trusted code that needs native speed or libraries; the same C source
 * built as .wasm behaves identically and is isolated.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt_int.h"
#include "stage_host.h"

typedef int32_t (*fn_i)(void);
typedef int32_t (*fn_cfg)(const char *, size_t);
typedef int32_t (*fn_msg)(const uint8_t *, size_t);
typedef int32_t (*fn_mig)(int32_t);
typedef void (*fn_bind)(const if_host_api *, void *);

/* A native module's bytes, shared by reference (instances, swap state). */
struct fl__nmod {
    uint8_t *bytes;         /* owned */
    size_t len;
    uint64_t hash;          /* FNV-1a 64 of the bytes */
    _Atomic uint32_t refs;
};

typedef struct ninst {
    const fl__stage *d;     /* borrowed from the graph */
    fl__nmod *mod;          /* the code it was loaded from (a reference) */
    const if_host_api *api; /* the runtime's table (borrowed) */
    void *ctx;
    void *dl;               /* dlopen handle of the private copy */
    fn_i abi, caps, produce;
    fn_cfg init;
    fn_msg process, actuation;
    fn_mig migrate;
    fn_bind bind;
    uint32_t ncaps;         /* IF_CAP_* */
    uint32_t emits;         /* emits during the current call */
} ninst;

static ninst *N(fl__inst *in) { return (ninst *)(void *)in; }

/* ---- The table the stage gets: the runtime's, with the same limits the
 * wasm host applies. ---------------------------------------------------- */

static int t_emit(void *ctx, const char *topic, size_t topic_len,
                  const void *data, size_t len)
{
    ninst *n = ctx;
    int rc = fl__check_emit(&n->emits, topic_len, len);
    if (rc != IF_OK)
        return rc;
    return n->api->emit(n->ctx, topic_len ? topic : NULL, topic_len, data,
                        len);
}

static int t_actuate(void *ctx, const void *data, size_t len)
{
    ninst *n = ctx;
    int rc = fl__check_emit(&n->emits, 0, len);
    if (rc != IF_OK)
        return rc;
    return n->api->actuate(n->ctx, data, len);
}

static void t_log(void *ctx, int level, const char *text, size_t len)
{
    ninst *n = ctx;
    n->api->log(n->ctx, level, text, len > FL__MAX_LOG ? FL__MAX_LOG : len);
}

static int64_t t_now(void *ctx)
{
    ninst *n = ctx;
    return n->api->now_ns(n->ctx);
}

static int64_t t_meta(void *ctx, int field)
{
    ninst *n = ctx;
    return n->api->meta(n->ctx, field);
}

static int t_meta_str(void *ctx, int field, char *buf, size_t cap)
{
    ninst *n = ctx;
    return n->api->meta_str(n->ctx, field, buf, cap);
}

static int t_kv_get(void *ctx, const char *key, size_t key_len, void *buf,
                    size_t cap)
{
    ninst *n = ctx;
    int rc = fl__check_kv(key_len, 0);
    return rc != IF_OK ? rc : n->api->kv_get(n->ctx, key, key_len, buf, cap);
}

static int t_kv_set(void *ctx, const char *key, size_t key_len,
                    const void *val, size_t len)
{
    ninst *n = ctx;
    int rc = fl__check_kv(key_len, len);
    return rc != IF_OK ? rc : n->api->kv_set(n->ctx, key, key_len, val, len);
}

static int t_kv_del(void *ctx, const char *key, size_t key_len)
{
    ninst *n = ctx;
    int rc = fl__check_kv(key_len, 0);
    return rc != IF_OK ? rc : n->api->kv_del(n->ctx, key, key_len);
}

static const if_host_api native_api = {
    IF_ABI_VERSION, t_emit,  t_actuate,  t_log,    t_now,
    t_meta,         t_meta_str, t_kv_get, t_kv_set, t_kv_del,
};

/* ---- Loading. ---------------------------------------------------------- */

/* dlerror() names the temporary copy; say the stage's file instead. */
static void dl_error(const fl__stage *d, const char *tmp, char *err,
                     size_t errlen)
{
    const char *e = dlerror();
    char msg[512];
    if (!e)
        e = "unknown dlopen error";
    const char *at = tmp ? strstr(e, tmp) : NULL;
    if (at) {
        snprintf(msg, sizeof msg, "%.*s%s%s", (int)(at - e), e,
                 fl__base_name(d->path), at + strlen(tmp));
        e = msg;
    }
    snprintf(err, errlen, "stage '%s': %s: cannot load: %s", d->name,
             fl__base_name(d->path), e);
}

static uint64_t nmod_fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* A module holding `bytes` (taken over: freed with the module). */
static fl__nmod *nmod_new(uint8_t *bytes, size_t len)
{
    fl__nmod *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->bytes = bytes;
    m->len = len;
    m->hash = nmod_fnv1a(bytes, len);
    atomic_init(&m->refs, 1);
    return m;
}

fl__nmod *fl__native_mod_ref(fl__nmod *m)
{
    if (m)
        atomic_fetch_add(&m->refs, 1);
    return m;
}

void fl__native_mod_release(fl__nmod *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
        free(m->bytes);
        free(m);
    }
}

uint64_t fl__native_mod_hash(const fl__nmod *m) { return m ? m->hash : 0; }

static void ninst_free(ninst *n);

/* Loads a private copy of the module `given` (NULL: the file d->path) and
 * resolves the ABI.  Does not bind or call anything but isoflow_abi and
 * isoflow_caps.  The instance holds a reference to its module. */
static fl_status ninst_new(const fl__stage *d, fl__nmod *given, ninst **out,
                           char *err, size_t errlen)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    char why[512], tmp[4096];
    const char *file = fl__base_name(d->path ? d->path : "module.so");
    fl__nmod *mod = NULL;
    if (given) {
        mod = fl__native_mod_ref(given);
    } else {
        if (!d->path) {
            snprintf(err, errlen, "stage '%s': no .so file given", d->name);
            return FL_CHECK;
        }
        fl_status st = fl__read_file(d->path, FL__MAX_STAGE_FILE, &bytes,
                                     &len, why, sizeof why);
        if (st != FL_OK) {
            snprintf(err, errlen, "stage '%s': %s", d->name, why);
            return st;
        }
        mod = nmod_new(bytes, len);
        if (!mod) {
            free(bytes);
            snprintf(err, errlen, "stage '%s': out of memory", d->name);
            return FL_NOMEM;
        }
    }
    bytes = mod->bytes;
    len = mod->len;
    const char *dir = getenv("TMPDIR");
    if (!dir || !dir[0])
        dir = "/tmp";
    snprintf(tmp, sizeof tmp, "%s/isoflow-stage-XXXXXX", dir);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "stage '%s': cannot create a copy in %s: %s",
                 d->name, dir, strerror(errno));
        fl__native_mod_release(mod);
        return FL_IO;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, bytes + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, errlen, "stage '%s': cannot write %s: %s", d->name,
                     tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            fl__native_mod_release(mod);
            return FL_IO;
        }
        done += (size_t)w;
    }
    close(fd);
    void *dl = dlopen(tmp, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        dl_error(d, tmp, err, errlen);
    unlink(tmp);
    if (!dl) {
        fl__native_mod_release(mod);
        return FL_CHECK;
    }
    ninst *n = calloc(1, sizeof *n);
    if (!n) {
        dlclose(dl);
        fl__native_mod_release(mod);
        snprintf(err, errlen, "stage '%s': out of memory", d->name);
        return FL_NOMEM;
    }
    n->d = d;
    n->dl = dl;
    n->mod = mod;
    /* POSIX guarantees that object and function pointers convert through
     * dlsym's void *; memcpy keeps ISO C quiet about it. */
    static const struct {
        const char *name;
        size_t off;
    } syms[] = {
        {"isoflow_abi", offsetof(ninst, abi)},
        {"isoflow_caps", offsetof(ninst, caps)},
        {"isoflow_bind", offsetof(ninst, bind)},
        {"isoflow_init", offsetof(ninst, init)},
        {"isoflow_process", offsetof(ninst, process)},
        {"isoflow_produce", offsetof(ninst, produce)},
        {"isoflow_actuation", offsetof(ninst, actuation)},
        {"isoflow_migrate", offsetof(ninst, migrate)},
    };
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *p = dlsym(dl, syms[i].name);
        if (!p) {
            snprintf(err, errlen,
                     "stage '%s': %s does not export %s (not built with the "
                     "isoflow SDK?)",
                     d->name, file, syms[i].name);
            ninst_free(n);
            return FL_CHECK;
        }
        memcpy((char *)n + syms[i].off, &p, sizeof p);
    }
    int32_t abi = n->abi();
    if (abi != IF_ABI_VERSION) {
        snprintf(err, errlen,
                 "stage '%s': %s is built for stage ABI %d; this isoflow "
                 "runs ABI %d",
                 d->name, file, abi, IF_ABI_VERSION);
        ninst_free(n);
        return FL_CHECK;
    }
    n->ncaps = (uint32_t)n->caps();
    *out = n;
    return FL_OK;
}

static void ninst_free(ninst *n)
{
    if (!n)
        return;
    if (n->dl)
        dlclose(n->dl);
    fl__native_mod_release(n->mod);
    free(n);
}

static fl_status native_check(const fl__stage *d, char *err, size_t errlen)
{
    ninst *n = NULL;
    fl_status st = ninst_new(d, NULL, &n, err, errlen);
    if (st == FL_IO)
        st = FL_CHECK;
    if (st != FL_OK)
        return st;
    st = fl__check_caps(d, n->ncaps, err, errlen);
    ninst_free(n);
    return st;
}

/* Creates an instance of `given` (NULL: the file d->path), binds the host
 * table and runs its init(config).  *out owned by the caller. */
static fl_status native_create_from(const fl__stage *d, fl__nmod *given,
                                    const if_host_api *api, void *ctx,
                                    fl__inst **out, char *err, size_t errlen)
{
    ninst *n = NULL;
    fl_status st = ninst_new(d, given, &n, err, errlen);
    if (st != FL_OK)
        return st;
    n->api = api;
    n->ctx = ctx;
    n->bind(&native_api, n);
    const char *cfg = d->config ? d->config : "";
    n->emits = 0;
    int32_t rc = n->init(cfg, strlen(cfg));
    if (rc != 0) {
        snprintf(err, errlen, "stage '%s': stage_init returned %d", d->name,
                 rc);
        ninst_free(n);
        return FL_STAGE;
    }
    *out = (fl__inst *)(void *)n;
    return FL_OK;
}

static fl_status native_create(const fl__stage *d, const if_host_api *api,
                               void *ctx, int32_t device, fl__inst **out,
                               char *err, size_t errlen)
{
    (void)device;
    return native_create_from(d, NULL, api, ctx, out, err, errlen);
}

/* ---- Live update (rt_int.h). ------------------------------------------ */

/*
 * A new version of native stage d from `bytes` (copied): a private copy is
 * loaded once to check the ABI and the exports the stage's role needs (no
 * stage code runs but isoflow_abi/caps).  FL_OK with a reference
 * (fl__native_mod_release), FL_ARG (not a native stage), FL_CHECK or
 * FL_NOMEM with a message.
 */
fl_status fl__native_load(const fl__stage *d, const uint8_t *bytes,
                          size_t len, fl__nmod **out, char *err,
                          size_t errlen)
{
    ninst *n = NULL;
    if (strcmp(d->kind ? d->kind : "", "native") != 0) {
        snprintf(err, errlen, "stage '%s' is not a native stage", d->name);
        return FL_ARG;
    }
    uint8_t *copy = malloc(len ? len : 1);
    fl__nmod *m = copy ? nmod_new(copy, len) : NULL;
    if (!m) {
        free(copy);
        snprintf(err, errlen, "stage '%s': out of memory", d->name);
        return FL_NOMEM;
    }
    if (len)
        memcpy(copy, bytes, len);
    fl_status st = ninst_new(d, m, &n, err, errlen);
    if (st == FL_OK)
        st = fl__check_caps(d, n->ncaps, err, errlen);
    ninst_free(n);
    if (st != FL_OK) {
        fl__native_mod_release(m);
        return st == FL_NOMEM ? FL_NOMEM : FL_CHECK;
    }
    *out = m;
    return FL_OK;
}

fl__nmod *fl__native_inst_mod(fl__inst *in)
{
    return fl__native_mod_ref(N(in)->mod);
}

fl_status fl__native_create_mod(const fl__stage *d, fl__nmod *m,
                                const if_host_api *api, void *ctx,
                                fl__inst **out, char *err, size_t errlen)
{
    return native_create_from(d, m, api, ctx, out, err, errlen);
}

/* Runs stage_migrate(from) when the stage defines it: FL_OK (also when it
 * does not) or FL_STAGE (it returned non-zero). */
fl_status fl__native_migrate(fl__inst *in, int32_t from, char *err,
                             size_t errlen)
{
    ninst *n = N(in);
    if (!(n->ncaps & IF_CAP_MIGRATE))
        return FL_OK;
    n->emits = 0;
    int32_t rc = n->migrate(from);
    if (rc != 0) {
        snprintf(err, errlen, "stage_migrate returned %d", rc);
        return FL_STAGE;
    }
    return FL_OK;
}

static fl_status native_process(fl__inst *in, const uint8_t *msg,
                                size_t len, char *err, size_t errlen)
{
    ninst *n = N(in);
    if (!(n->ncaps & IF_CAP_PROCESS)) {
        snprintf(err, errlen, "%s does not define stage_process",
                 fl__base_name(n->d->path));
        return FL_STAGE;
    }
    n->emits = 0;
    int32_t rc = n->process(msg, len);
    if (rc < 0) {
        snprintf(err, errlen, "stage_process returned %d", rc);
        return FL_STAGE;
    }
    return FL_OK;
}

static fl_status native_produce(fl__inst *in, char *err, size_t errlen)
{
    ninst *n = N(in);
    if (!(n->ncaps & IF_CAP_PRODUCE)) {
        snprintf(err, errlen, "%s does not define stage_produce",
                 fl__base_name(n->d->path));
        return FL_STAGE;
    }
    n->emits = 0;
    int32_t rc = n->produce();
    if (rc < 0) {
        snprintf(err, errlen, "stage_produce returned %d", rc);
        return FL_STAGE;
    }
    return FL_OK;
}

static fl_status native_actuation(fl__inst *in, const uint8_t *msg,
                                  size_t len, char *err, size_t errlen)
{
    ninst *n = N(in);
    if (!(n->ncaps & IF_CAP_ACTUATION))
        return FL_PASS;
    n->emits = 0;
    int32_t rc = n->actuation(msg, len);
    if (rc == 1)
        return FL_PASS;
    if (rc < 0) {
        snprintf(err, errlen, "stage_actuation returned %d", rc);
        return FL_STAGE;
    }
    return FL_OK;
}

static void native_destroy(fl__inst *in) { ninst_free(N(in)); }

const fl__stage_ops fl__native_ops = {
    "native",
    "a stage compiled to a native shared object (not sandboxed)",
    "native \"FILE.so\" [CONFIG]\n"
    "  Runs a stage built with `isoflow build --native STAGE.c` (the same C\n"
    "  source as a wasm stage) directly in the isoflow process.  Each\n"
    "  instance loads a private copy of the .so, so globals are per\n"
    "  instance.  NOT SANDBOXED: no fuel, no memory cap, and a crash takes\n"
    "  the whole node down; use it only for trusted code.  CONFIG is handed\n"
    "  to stage_init.\n",
    native_check,
    native_create,
    native_process,
    native_produce,
    native_actuation,
    native_destroy,
};
