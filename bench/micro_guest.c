/* micro_guest.c - the guest side of bench_engine's micro-benchmarks: tiny
 * exports whose cost is dominated by the host->Wasm call path, plus a loop-
 * and a call-heavy function for the metering (fuel) overhead.  Built
 * freestanding for wasm32 (no libc). */
#define EXPORT(name) __attribute__((export_name(name)))

/* Where the host writes messages for on_msg (bench_engine asks for its
 * address once). */
static unsigned char inbox[256];

/* Returns a constant: measures the bare cost of one host->Wasm call. */
EXPORT("tiny") int tiny(void) { return 42; }

/* The linear-memory address of the 256-byte inbox. */
EXPORT("inbox") int inbox_addr(void) { return (int)(unsigned long)inbox; }

/* A message handler as a stage would have one: reads 4 bytes of the message
 * at p (bytes 0, 1, len/2 and len-1) and returns them packed little-endian
 * into one i32, or -1 when len < 2. */
EXPORT("on_msg") int on_msg(const unsigned char *p, int len)
{
    if (len < 2)
        return -1;
    return (int)((unsigned)p[0] | (unsigned)p[1] << 8 |
                 (unsigned)p[len / 2] << 16 | (unsigned)p[len - 1] << 24);
}

/* Loop-heavy: n xorshift32 steps in a loop that clang must not unroll, so
 * every iteration (about ten instructions) is one metering checkpoint.
 * Returns the final state. */
EXPORT("spin") unsigned spin(unsigned n)
{
    unsigned x = 2463534242u;
#pragma clang loop unroll(disable)
    for (unsigned i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
    }
    return x;
}

/* A leaf that must stay a real call. */
__attribute__((noinline)) static unsigned lcg(unsigned x)
{
    return x * 1664525u + 1013904223u;
}

/* Call-heavy: n calls of a tiny leaf function from a loop (two checkpoints
 * per step: the call and the loop iteration).  Returns the final value. */
EXPORT("calls") unsigned calls(unsigned n)
{
    unsigned x = 1;
#pragma clang loop unroll(disable)
    for (unsigned i = 0; i < n; i++)
        x = lcg(x);
    return x;
}
