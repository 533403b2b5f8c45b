/*
 * wasm_dummy.c - dummy imports for arbitrary modules and a driver that calls
 * every export with default arguments under a fuel budget (test helpers).
 */
#include "wasm_dummy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Zeroes a value while keeping its type; references become null. */
static void wd_zero_val(iw_val *v, uint8_t type)
{
    memset(v, 0, sizeof *v);
    v->type = type;
    if (type == IW_FUNCREF || type == IW_EXTERNREF)
        v->of.ref = NULL;
    else
        v->of.i64 = 0;
}

/* Host function used for every imported function: returns zeros.  `user`
 * carries the result count (the result types are preset by the engine), so
 * no per-function allocation is needed. */
static iw_status wd_host_zero(iw_call *call, const iw_val *args,
                              iw_val *results, void *user)
{
    uintptr_t nresults = (uintptr_t)user;
    uintptr_t i;
    (void)call;
    (void)args;
    for (i = 0; i < nresults; i++)
        wd_zero_val(&results[i], results[i].type);
    return IW_OK;
}

/* Clamps declared limits for a dummy: min must not exceed cap (else the
 * dummy is refused), max (if any) is lowered to cap but kept >= min. */
static int wd_clamp_limits(iw_limits *lim, uint32_t cap)
{
    if (lim->min > cap)
        return 0;
    if (lim->has_max && lim->max > cap)
        lim->max = cap;
    if (lim->has_max && lim->max < lim->min)
        return 0; /* cannot happen for valid modules */
    return 1;
}

/* Creates the dummy for one import description; returns IW_OK and fills
 * *ext, or an error with a message. */
static iw_status wd_make_one(iw_store *s, const iw_module *m, uint32_t i,
                             iw_extern *ext, char *err, size_t errlen)
{
    iw_extern_desc d;
    iw_limits lim;
    iw_val v;

    if (iw_module_import(m, i, &d) != IW_OK) {
        snprintf(err, errlen, "dummy: cannot describe import %u", i);
        return IW_ARG;
    }
    memset(ext, 0, sizeof *ext);
    ext->kind = d.kind;
    switch (d.kind) {
    case IW_EXTERN_FUNC: {
        iw_func *f = iw_func_new_host(s, d.func.params, d.func.nparams,
                                      d.func.results, d.func.nresults,
                                      wd_host_zero,
                                      (void *)(uintptr_t)d.func.nresults);
        if (f == NULL)
            goto nomem;
        ext->of.func = f;
        return IW_OK;
    }
    case IW_EXTERN_TABLE:
        lim = d.limits;
        if (!wd_clamp_limits(&lim, WD_MAX_TABLE_ELEMS)) {
            snprintf(err, errlen, "dummy: table import %u too large (%u)", i,
                     d.limits.min);
            return IW_LINK;
        }
        ext->of.table = iw_table_new(s, d.elemtype, lim, NULL);
        if (ext->of.table == NULL)
            goto nomem;
        return IW_OK;
    case IW_EXTERN_MEMORY:
        lim = d.limits;
        if (!wd_clamp_limits(&lim, WD_MAX_MEMORY_PAGES)) {
            snprintf(err, errlen, "dummy: memory import %u too large (%u)",
                     i, d.limits.min);
            return IW_LINK;
        }
        ext->of.memory = iw_memory_new(s, lim);
        if (ext->of.memory == NULL)
            goto nomem;
        return IW_OK;
    case IW_EXTERN_GLOBAL:
        wd_zero_val(&v, d.valtype);
        ext->of.global = iw_global_new(s, v, d.mut);
        if (ext->of.global == NULL)
            goto nomem;
        return IW_OK;
    default:
        snprintf(err, errlen, "dummy: import %u has unknown kind %d", i,
                 (int)d.kind);
        return IW_ARG;
    }
nomem:
    snprintf(err, errlen, "dummy: cannot create %s import %u",
             iw_extern_kind_name(d.kind), i);
    return IW_NOMEM;
}

iw_status wd_make_imports(iw_store *s, const iw_module *m, iw_extern **out,
                          size_t *n, char *err, size_t errlen)
{
    uint32_t count = iw_module_import_count(m);
    iw_extern *exts = NULL;
    iw_status st;
    uint32_t i;

    *out = NULL;
    *n = 0;
    if (err == NULL)
        errlen = 0; /* snprintf(NULL, 0, ...) is a harmless no-op */
    else if (errlen > 0)
        err[0] = '\0';
    if (count == 0)
        return IW_OK;
    exts = calloc(count, sizeof *exts);
    if (exts == NULL) {
        snprintf(err, errlen, "dummy: out of memory for %u imports", count);
        return IW_NOMEM;
    }
    for (i = 0; i < count; i++) {
        st = wd_make_one(s, m, i, &exts[i], err, errlen);
        if (st != IW_OK) {
            free(exts); /* created objects belong to the store */
            return st;
        }
    }
    *out = exts;
    *n = count;
    return IW_OK;
}

/* Calls one function with zero arguments; the outcome is ignored. */
static void wd_call_zero(iw_func *f)
{
    iw_functype ft = iw_func_type(f);
    iw_val *args = NULL, *res = NULL;
    uint32_t i;

    args = calloc((size_t)ft.nparams + 1, sizeof *args);
    res = calloc((size_t)ft.nresults + 1, sizeof *res);
    if (args == NULL || res == NULL)
        goto cleanup;
    for (i = 0; i < ft.nparams; i++)
        wd_zero_val(&args[i], ft.params[i]);
    (void)iw_call_func(f, args, ft.nparams, res, ft.nresults);
cleanup:
    free(args);
    free(res);
}

void wd_run_exports(iw_store *s, iw_instance *inst, const iw_module *m,
                    int64_t fuel)
{
    uint32_t count = iw_module_export_count(m);
    uint32_t i;

    for (i = 0; i < count; i++) {
        iw_extern_desc d;
        iw_extern e;
        size_t len;
        memset(&d, 0, sizeof d);
        if (iw_module_export(m, i, &d) != IW_OK || d.kind != IW_EXTERN_FUNC ||
            d.name == NULL)
            continue;
        /* name_len 0 with a non-empty name: a decoder that leaves the
         * length unset; fall back to the NUL-terminated copy. */
        len = d.name_len != 0 ? d.name_len : strlen(d.name);
        if (iw_instance_export_n(inst, d.name, len, &e) != IW_OK ||
            e.kind != IW_EXTERN_FUNC || e.of.func == NULL)
            continue;
        iw_store_set_fuel(s, fuel);
        wd_call_zero(e.of.func);
    }
}
