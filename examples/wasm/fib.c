/*
 * fib.c - example guest: naive recursive Fibonacci, a call-heavy benchmark
 * for the interpreter.  Built freestanding for wasm32 (no libc); compiled
 * natively with -DISOFLOW_NATIVE it prints the reference results.
 *
 * Reference: fib(0)=0, fib(10)=55, fib(25)=75025, fib(30)=832040,
 *            fib_iter(90)=2880067194370816120, fib_mod(90, 1000007)=577833;
 *            fib_mod(n, 0) traps in wasm.
 */
#ifdef __wasm__
#define EXPORT(name) __attribute__((export_name(name)))
#else
#define EXPORT(name)
#endif

/* Returns the n-th Fibonacci number (wrapping modulo 2^32), computed with
 * the exponential-time recursion on purpose; n <= 1 returns n. */
EXPORT("fib") int fib(int n)
{
    if (n <= 1)
        return n;
    return (int)((unsigned)fib(n - 1) + (unsigned)fib(n - 2));
}

/* Iterative variant with a 64-bit result, to check the recursion. */
EXPORT("fib_iter") long long fib_iter(int n)
{
    unsigned long long a = 0, b = 1;
    for (int i = 0; i < n; i++) {
        unsigned long long t = a + b;
        a = b;
        b = t;
    }
    return (long long)a;
}

/* fib_iter(n) modulo m.  In WebAssembly m == 0 traps with "integer divide
 * by zero" (the demo uses it to show a contained guest fault). */
EXPORT("fib_mod") long long fib_mod(int n, long long m)
{
    return (long long)((unsigned long long)fib_iter(n) % (unsigned long long)m);
}

#ifdef ISOFLOW_NATIVE
/* Native reference: `fib FUNC ARGS...` prints what FUNC returns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long arg(const char *s, long long lo, long long hi)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "bad argument '%s'\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "fib") == 0)
        printf("%d\n", fib((int)arg(argv[2], 0, 45)));
    else if (argc == 3 && strcmp(argv[1], "fib_iter") == 0)
        printf("%lld\n", fib_iter((int)arg(argv[2], 0, 1000000)));
    else if (argc == 4 && strcmp(argv[1], "fib_mod") == 0)
        printf("%lld\n", fib_mod((int)arg(argv[2], 0, 1000000),
                                 arg(argv[3], 1, 0x7fffffffffffffffLL)));
    else {
        fprintf(stderr, "usage: fib fib N | fib_iter N | fib_mod N M\n");
        return 2;
    }
    return 0;
}
#endif
