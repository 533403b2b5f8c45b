/* load_guest.c - a real ~100 KB C program for the module-load benchmark:
 * isoflow's own engine (src/wasm/ without wasi.c) compiled to wasm32-wasi
 * with this small driver.  bench_engine only loads and instantiates it; run
 * it (`load_guest FILE.wasm [EXPORT [I32...]]`) and it validates FILE.wasm
 * and, when the module has no imports, calls an i32 export. */
#include "wasm.h"

#include <stdio.h>
#include <stdlib.h>

/* Reads a whole file into a malloc'ed buffer (caller frees); NULL on error. */
static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    char err[256];
    size_t len = 0;
    iw_module *m = NULL;
    iw_store *s = NULL;
    iw_instance *inst = NULL;
    int rc = 1;
    if (argc < 2) {
        fprintf(stderr, "usage: load_guest FILE.wasm [EXPORT [I32...]]\n");
        return 2;
    }
    unsigned char *bytes = read_all(argv[1], &len);
    if (!bytes) {
        fprintf(stderr, "load_guest: cannot read %s\n", argv[1]);
        return 1;
    }
    if (iw_module_load(bytes, len, &m, err, sizeof err) != IW_OK) {
        printf("invalid: %s\n", err);
        goto out;
    }
    printf("valid: %u functions, %u imports, %u exports\n",
           iw_module_func_count(m), iw_module_import_count(m),
           iw_module_export_count(m));
    rc = 0;
    if (argc < 3 || iw_module_import_count(m) != 0)
        goto out;
    rc = 1;
    s = iw_store_new(NULL);
    if (!s || iw_instantiate(s, m, NULL, 0, &inst, err, sizeof err) != IW_OK) {
        printf("instantiate: %s\n", s ? err : "out of memory");
        goto out;
    }
    iw_func *f = iw_instance_func(inst, argv[2]);
    iw_val args[8], res;
    size_t nargs = (size_t)(argc - 3);
    if (!f || nargs > 8) {
        printf("no export %s (or too many arguments)\n", argv[2]);
        goto out;
    }
    for (size_t i = 0; i < nargs; i++) {
        args[i].type = IW_I32;
        args[i].of.i32 = (int32_t)strtol(argv[3 + i], NULL, 10);
    }
    if (iw_call_func(f, args, nargs, &res, 1) != IW_OK) {
        printf("call: %s\n", iw_store_errmsg(s));
        goto out;
    }
    printf("%s = %d\n", argv[2], (int)res.of.i32);
    rc = 0;
out:
    iw_store_free(s);
    iw_module_free(m);
    free(bytes);
    return rc;
}
