/*
 * sieve.c - example guest: counts primes with the sieve of Eratosthenes over
 * a static array in linear memory.  Built freestanding for wasm32 (no libc);
 * compiled natively with -DISOFLOW_NATIVE it prints the reference results.
 *
 * Reference: count_primes(100)=25, count_primes(1000000)=78498,
 *            count_primes(2000000)=148933.
 */
#ifdef __wasm__
#define EXPORT(name) __attribute__((export_name(name)))
#else
#define EXPORT(name)
#endif

#define SIEVE_MAX 2000000

/* One stamp per number: a number is crossed out in the current run when its
 * stamp equals the run's generation, so the array never needs clearing
 * (which would otherwise pull in a libc memset). */
static unsigned stamp[SIEVE_MAX + 1];
static unsigned generation;

/* Returns the number of primes <= n, or -1 when n exceeds SIEVE_MAX. */
EXPORT("count_primes") int count_primes(int n)
{
    unsigned gen;
    int count = 0;
    if (n > SIEVE_MAX)
        return -1;
    if (n < 2)
        return 0;
    gen = ++generation;
    for (int i = 2; i <= n; i++) {
        if (stamp[i] == gen)
            continue;
        count++;
        for (long long j = (long long)i * i; j <= n; j += i)
            stamp[j] = gen;
    }
    return count;
}

/* Returns the largest prime <= n (0 when there is none or n is too big). */
EXPORT("largest_prime") int largest_prime(int n)
{
    if (count_primes(n) <= 0)
        return 0;
    for (int i = n; i >= 2; i--)
        if (stamp[i] != generation)
            return i;
    return 0;
}

#ifdef ISOFLOW_NATIVE
/* Native reference: `sieve FUNC N` prints what FUNC returns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    char *end;
    long n;
    if (argc != 3)
        goto usage;
    n = strtol(argv[2], &end, 10);
    if (end == argv[2] || *end != '\0' || n < 0 || n > SIEVE_MAX)
        goto usage;
    if (strcmp(argv[1], "count_primes") == 0)
        printf("%d\n", count_primes((int)n));
    else if (strcmp(argv[1], "largest_prime") == 0)
        printf("%d\n", largest_prime((int)n));
    else
        goto usage;
    return 0;
usage:
    fprintf(stderr, "usage: sieve count_primes|largest_prime N\n");
    return 2;
}
#endif
