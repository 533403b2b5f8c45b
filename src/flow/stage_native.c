/*
 * stage_native.c - the native stage host: runs a stage built as a shared
 * object (`isoflow build --native`) in the process itself.  Each instance
 * loads its own private copy of the .so (a temporary file, unlinked once
 * loaded) so that the stage's globals are per instance, as they are with
 * one Wasm store per instance.
 *
 * A native stage is not sandboxed: a crash or a runaway loop takes the
 * whole node down, and there is no fuel or memory cap.  It exists for
 * trusted code that needs native speed or libraries; the same C source
 * built as .wasm behaves identically and is isolated.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stage_host.h"

typedef int32_t (*fn_i)(void);
typedef int32_t (*fn_cfg)(const char *, size_t);
typedef int32_t (*fn_msg)(const uint8_t *, size_t);
typedef int32_t (*fn_mig)(int32_t);
typedef void (*fn_bind)(const if_host_api *, void *);

typedef struct ninst {
    const fl__stage *d;     /* borrowed from the graph */
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

/* Loads a private copy of d->path and resolves the ABI.  Does not bind or
 * call anything but isoflow_abi and isoflow_caps. */
static fl_status ninst_new(const fl__stage *d, ninst **out, char *err,
                           size_t errlen)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    char why[512], tmp[4096];
    const char *file = fl__base_name(d->path);
    if (!d->path) {
        snprintf(err, errlen, "stage '%s': no .so file given", d->name);
        return FL_CHECK;
    }
    fl_status st =
        fl__read_file(d->path, FL__MAX_STAGE_FILE, &bytes, &len, why,
                      sizeof why);
    if (st != FL_OK) {
        snprintf(err, errlen, "stage '%s': %s", d->name, why);
        return st;
    }
    const char *dir = getenv("TMPDIR");
    if (!dir || !dir[0])
        dir = "/tmp";
    snprintf(tmp, sizeof tmp, "%s/isoflow-stage-XXXXXX", dir);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "stage '%s': cannot create a copy in %s: %s",
                 d->name, dir, strerror(errno));
        free(bytes);
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
            free(bytes);
            return FL_IO;
        }
        done += (size_t)w;
    }
    close(fd);
    free(bytes);
    void *dl = dlopen(tmp, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        dl_error(d, tmp, err, errlen);
    unlink(tmp);
    if (!dl)
        return FL_CHECK;
    ninst *n = calloc(1, sizeof *n);
    if (!n) {
        dlclose(dl);
        snprintf(err, errlen, "stage '%s': out of memory", d->name);
        return FL_NOMEM;
    }
    n->d = d;
    n->dl = dl;
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
            dlclose(dl);
            free(n);
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
        dlclose(dl);
        free(n);
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
    free(n);
}

static fl_status native_check(const fl__stage *d, char *err, size_t errlen)
{
    ninst *n = NULL;
    fl_status st = ninst_new(d, &n, err, errlen);
    if (st == FL_IO)
        st = FL_CHECK;
    if (st != FL_OK)
        return st;
    st = fl__check_caps(d, n->ncaps, err, errlen);
    ninst_free(n);
    return st;
}

static fl_status native_create(const fl__stage *d, const if_host_api *api,
                               void *ctx, int32_t device, fl__inst **out,
                               char *err, size_t errlen)
{
    ninst *n = NULL;
    (void)device;
    fl_status st = ninst_new(d, &n, err, errlen);
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
