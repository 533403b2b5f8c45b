/* sort.c - sorting 1M pseudo-random 32-bit integers with our own
 * introsort-style quicksort (median of three, insertion sort below 16). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void isort(uint32_t *a, long n) {
    for (long i = 1; i < n; i++) {
        uint32_t v = a[i];
        long j = i - 1;
        while (j >= 0 && a[j] > v) { a[j + 1] = a[j]; j--; }
        a[j + 1] = v;
    }
}

static void qsort_u32(uint32_t *a, long n) {
    while (n > 16) {
        uint32_t x = a[0], y = a[n / 2], z = a[n - 1];
        uint32_t p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        long i = 0, j = n - 1;
        for (;;) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i >= j) break;
            uint32_t t = a[i]; a[i] = a[j]; a[j] = t;
            i++; j--;
        }
        long left = j + 1;
        if (left < n - left) { qsort_u32(a, left); a += left; n -= left; }
        else { qsort_u32(a + left, n - left); n = left; }
    }
    isort(a, n);
}

int main(int argc, char **argv) {
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
    uint32_t *a = malloc(sizeof(uint32_t) * (size_t)n);
    if (!a) return 1;
    uint32_t s = 2463534242u;
    for (long i = 0; i < n; i++) { s ^= s << 13; s ^= s >> 17; s ^= s << 5; a[i] = s; }
    qsort_u32(a, n);
    uint32_t h = 0;
    for (long i = 0; i < n; i++) {
        if (i && a[i - 1] > a[i]) { printf("not sorted\n"); return 1; }
        h = h * 31u + a[i];
    }
    printf("sort %ld checksum %08x\n", n, h);
    free(a);
    return 0;
}
