/*
 * rt_kv.c - the key-value state a stage instance keeps through if_kv_*: a
 * bounded open-addressing hash table (linear probing, backward-shift
 * deletion) owned by the runtime, so it outlives trap-restarts.
 */
#include <stdlib.h>
#include <string.h>

#include "rt_int.h"

/* FNV-1a over the key bytes. */
static uint32_t kv_hash(const char *key, size_t klen)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < klen; i++) {
        h ^= (uint8_t)key[i];
        h *= 16777619u;
    }
    return h;
}

/* Slot of the key, or of the empty slot where it would go. */
static uint32_t kv_find(const fl__kv *kv, const char *key, size_t klen,
                        uint32_t h)
{
    uint32_t i = h & (kv->cap - 1);
    for (;;) {
        const fl__kv_ent *e = &kv->slots[i];
        if (!e->block)
            return i;
        if (e->hash == h && e->klen == klen && memcmp(e->block, key, klen) == 0)
            return i;
        i = (i + 1) & (kv->cap - 1);
    }
}

/* Doubles the table (or creates it with 16 slots); false on OOM. */
static bool kv_grow(fl__kv *kv)
{
    uint32_t ncap = kv->cap ? kv->cap * 2 : 16;
    fl__kv_ent *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return false;
    for (uint32_t i = 0; i < kv->cap; i++) {
        fl__kv_ent *e = &kv->slots[i];
        if (!e->block)
            continue;
        uint32_t j = e->hash & (ncap - 1);
        while (ns[j].block)
            j = (j + 1) & (ncap - 1);
        ns[j] = *e;
    }
    free(kv->slots);
    kv->slots = ns;
    kv->cap = ncap;
    return true;
}

int fl__kv_get(const fl__kv *kv, const char *key, size_t klen, void *buf,
               size_t cap)
{
    uint32_t i;
    const fl__kv_ent *e;
    if (klen == 0 || klen > FL__KV_MAX_KEY)
        return klen ? IF_ETOOBIG : IF_EINVAL;
    if (kv->count == 0)
        return IF_ENOTFOUND;
    i = kv_find(kv, key, klen, kv_hash(key, klen));
    e = &kv->slots[i];
    if (!e->block)
        return IF_ENOTFOUND;
    if (buf && cap)
        memcpy(buf, e->block + e->klen, cap < e->vlen ? cap : e->vlen);
    return (int)e->vlen;
}

int fl__kv_set(fl__kv *kv, const char *key, size_t klen, const void *val,
               size_t vlen)
{
    uint32_t h, i;
    fl__kv_ent *e;
    uint8_t *block;
    if (klen == 0)
        return IF_EINVAL;
    if (klen > FL__KV_MAX_KEY || vlen > FL__KV_MAX_VAL)
        return IF_ETOOBIG;
    h = kv_hash(key, klen);
    if (kv->cap) {
        i = kv_find(kv, key, klen, h);
        e = &kv->slots[i];
        if (e->block) { /* replace the value */
            if (kv->bytes - e->vlen + vlen > FL__KV_MAX_BYTES)
                return IF_EFULL;
            block = realloc(e->block, klen + vlen + 1);
            if (!block)
                return IF_EFULL;
            if (vlen)
                memcpy(block + klen, val, vlen);
            kv->bytes = kv->bytes - e->vlen + vlen;
            e->block = block;
            e->vlen = (uint32_t)vlen;
            return IF_OK;
        }
    }
    if (kv->count >= FL__KV_MAX_KEYS ||
        kv->bytes + klen + vlen > FL__KV_MAX_BYTES)
        return IF_EFULL;
    if ((kv->count + 1) * 2 > kv->cap && !kv_grow(kv))
        return IF_EFULL;
    block = malloc(klen + vlen + 1);
    if (!block)
        return IF_EFULL;
    memcpy(block, key, klen);
    if (vlen)
        memcpy(block + klen, val, vlen);
    i = kv_find(kv, key, klen, h);
    e = &kv->slots[i];
    e->block = block;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    e->hash = h;
    kv->count++;
    kv->bytes += klen + vlen;
    return IF_OK;
}

/* Backward-shift deletion keeps every probe chain unbroken without
 * tombstones. */
int fl__kv_del(fl__kv *kv, const char *key, size_t klen)
{
    uint32_t i, j, mask;
    if (klen == 0 || klen > FL__KV_MAX_KEY)
        return klen ? IF_ETOOBIG : IF_EINVAL;
    if (kv->count == 0)
        return IF_ENOTFOUND;
    mask = kv->cap - 1;
    i = kv_find(kv, key, klen, kv_hash(key, klen));
    if (!kv->slots[i].block)
        return IF_ENOTFOUND;
    kv->bytes -= kv->slots[i].klen + kv->slots[i].vlen;
    free(kv->slots[i].block);
    kv->slots[i].block = NULL;
    kv->count--;
    j = i;
    for (;;) {
        uint32_t home;
        j = (j + 1) & mask;
        if (!kv->slots[j].block)
            break;
        home = kv->slots[j].hash & mask;
        /* Move j back to the hole i when its home is not in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            kv->slots[i] = kv->slots[j];
            kv->slots[j].block = NULL;
            i = j;
        }
    }
    return IF_OK;
}

void fl__kv_fini(fl__kv *kv)
{
    for (uint32_t i = 0; i < kv->cap; i++)
        free(kv->slots[i].block);
    free(kv->slots);
    memset(kv, 0, sizeof *kv);
}
