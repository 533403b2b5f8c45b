/*
 * threads_guest.c - freestanding wasm32 guest for tests/unit/
 * test_wasm_threads.c: a checksum over a buffer in linear memory (real work
 * in every instance's own memory), and a call through the host that comes
 * back into the guest (via_host -> env.host_twice -> square).
 */
#define EXPORT(name) __attribute__((export_name(name)))
#define IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))

#define NWORDS 4096

static unsigned buf[NWORDS];

/* Fills the buffer from a linear congruential generator seeded with `seed`,
 * then folds it `rounds` times with FNV-1a (mixing in the round number).
 * Returns the hash. */
EXPORT("checksum") unsigned checksum(unsigned seed, unsigned rounds)
{
    unsigned x = seed, h = 2166136261u;
    for (unsigned i = 0; i < NWORDS; i++) {
        x = x * 1664525u + 1013904223u;
        buf[i] = x;
    }
    for (unsigned r = 0; r < rounds; r++)
        for (unsigned i = 0; i < NWORDS; i++) {
            h ^= buf[i] + r;
            h *= 16777619u;
        }
    return h;
}

/* Provided by the host: returns 2 * square(x), calling square() back. */
IMPORT("env", "host_twice") unsigned host_twice(unsigned x);

EXPORT("square") unsigned square(unsigned x)
{
    return x * x;
}

/* 2 * x * x + 1, computed through the host. */
EXPORT("via_host") unsigned via_host(unsigned x)
{
    return host_twice(x) + 1;
}
