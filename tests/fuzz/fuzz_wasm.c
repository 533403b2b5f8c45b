/*
 * fuzz_wasm.c - libFuzzer entry point for the WebAssembly engine: loads an
 * arbitrary binary and, when it validates, instantiates it with dummy imports
 * and runs every export under a fuel budget.  Also linked into the corpus
 * replay driver (replay.c) for normal builds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "wasm.h"
#include "wasm_dummy.h"

/* Fuel for instantiation (start function) and for each exported call. */
#define FUZZ_FUEL 100000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs one input through load, instantiate and export calls.  Never fails:
 * rejections and traps are expected outcomes; crashes, hangs and leaks are
 * the bugs this looks for.  Always returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    iw_module *m = NULL;
    iw_store *s = NULL;
    iw_extern *imports = NULL;
    size_t nimports = 0;
    iw_instance *inst = NULL;
    iw_config cfg;
    char err[256];

    if (iw_module_load(data, size, &m, err, sizeof err) != IW_OK)
        return 0;

    iw_config_default(&cfg);
    cfg.max_memory_pages = WD_MAX_MEMORY_PAGES;
    cfg.max_table_elems = WD_MAX_TABLE_ELEMS;
    cfg.stack_slots = 64u * 1024u;
    cfg.max_call_depth = 1000;
    s = iw_store_new(&cfg);
    if (s == NULL)
        goto cleanup;
    if (wd_make_imports(s, m, &imports, &nimports, err, sizeof err) != IW_OK)
        goto cleanup;
    iw_store_set_fuel(s, FUZZ_FUEL); /* start functions may loop forever */
    if (iw_instantiate(s, m, imports, nimports, &inst, err, sizeof err) !=
        IW_OK)
        goto cleanup;
    wd_run_exports(s, inst, m, FUZZ_FUEL);

cleanup:
    free(imports);
    iw_store_free(s);
    iw_module_free(m);
    return 0;
}
