/*
 * sw_stage.c - the stage swapped by tests/flow/test_swap.c, built in
 * variants by -D flags: plain, SW_MIGRATE (exports stage_migrate, which
 * stores from_version in kv "from"), SW_TRAP (every message traps),
 * SW_BAD_INIT (init fails).  Each message bumps the kv counter "n" and
 * emits "VERSION N FROM".
 */
#include "isoflow/json.h"
#include "isoflow/stage.h"

int stage_init(const char *cfg, size_t len)
{
    (void)cfg;
    (void)len;
#ifdef SW_BAD_INIT
    uint32_t poison = 999999;
    if_kv_set("n", &poison, sizeof poison); /* must be undone */
    return -7;
#else
    return 0;
#endif
}

int stage_process(const uint8_t *m, size_t len)
{
    uint32_t n = 0;
    int32_t from = -1;
    char out[64];
    (void)m;
    (void)len;
#ifdef SW_TRAP
    __builtin_trap();
#endif
    if_kv_get("n", &n, sizeof n);
    n++;
    if_kv_set("n", &n, sizeof n);
    if_kv_get("from", &from, sizeof from);
    int k = if_snprintf(out, sizeof out, "%d %u %d",
                        (int)if_meta(IF_META_VERSION), (unsigned)n, (int)from);
    return if_emit(out, (size_t)k);
}

#ifdef SW_MIGRATE
int stage_migrate(int32_t from_version)
{
    return if_kv_set("from", &from_version, sizeof from_version);
}
#endif
