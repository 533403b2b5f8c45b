/*
 * wasm_dummy.h - test helpers that satisfy any module's imports with inert
 * dummies and call every export with default arguments (used by the fuzzer,
 * the corpus replay and the mutation tests).
 */
#ifndef ISOFLOW_TESTS_WASM_DUMMY_H
#define ISOFLOW_TESTS_WASM_DUMMY_H

#include <stddef.h>
#include <stdint.h>

#include "wasm.h"

/* Caps applied to dummy memories/tables so that a hostile input cannot make
 * the harness allocate gigabytes. */
#define WD_MAX_MEMORY_PAGES 256u
#define WD_MAX_TABLE_ELEMS 100000u

/* Builds one dummy extern for every import of `m`, in import order:
 *   func   -> a host function returning zeros of its result types
 *   table  -> a table of the declared min (max kept, capped), null elements
 *   memory -> a memory of the declared min pages (max kept, capped)
 *   global -> a global of the declared type and mutability holding 0
 * On success returns IW_OK and *out is a malloc'ed array of *n externs the
 * caller frees with free() (the objects themselves belong to the store; *out
 * may be NULL when the module has no imports).  On failure (a limit above the
 * caps, or out of memory) returns IW_LINK/IW_NOMEM, sets *out = NULL, *n = 0
 * and writes a message into err. */
iw_status wd_make_imports(iw_store *s, const iw_module *m, iw_extern **out,
                          size_t *n, char *err, size_t errlen);

/* Calls every exported function of `inst` (an instance of `m`) with
 * zero/null arguments, refilling the store's fuel to `fuel` before each
 * call.  Traps, exits and errors are ignored. */
void wd_run_exports(iw_store *s, iw_instance *inst, const iw_module *m,
                    int64_t fuel);

#endif /* ISOFLOW_TESTS_WASM_DUMMY_H */
