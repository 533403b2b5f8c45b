/* fib.c - recursive calls: naive Fibonacci, dominated by call/return cost. */
#include <stdio.h>
#include <stdlib.h>

static unsigned fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 32;
    printf("fib(%u) checksum %u\n", n, fib(n));
    return 0;
}
