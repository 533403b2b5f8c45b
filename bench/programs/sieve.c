/* sieve.c - integer sieve of Eratosthenes over a byte array, repeated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 4000000;
    unsigned reps = 4, count = 0, sum = 0;
    unsigned char *flags = malloc(n + 1);
    if (!flags) return 1;
    for (unsigned r = 0; r < reps; r++) {
        memset(flags, 1, n + 1);
        flags[0] = flags[1] = 0;
        for (unsigned i = 2; (unsigned long long)i * i <= n; i++)
            if (flags[i])
                for (unsigned j = i * i; j <= n; j += i) flags[j] = 0;
        count = 0;
        for (unsigned i = 0; i <= n; i++)
            if (flags[i]) { count++; sum += i * (r + 1); }
    }
    printf("primes<=%u: %u checksum %u\n", n, count, sum);
    free(flags);
    return 0;
}
