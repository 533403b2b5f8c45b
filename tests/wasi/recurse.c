/* recurse.c - WASI test guest: unbounded recursion (must trap with "call
 * stack exhausted", never crash the host).  The stop condition reads a
 * volatile that is never met, and the result is used in a way clang cannot
 * turn into a loop, so the recursion is real at any -O level. */
#include <limits.h>
#include <stdio.h>

static volatile unsigned never = UINT_MAX;

__attribute__((noinline)) static unsigned down(unsigned n) {
    if (n == never) return n;
    return n - down(n + 1); /* not a tail call, not an accumulator */
}

int main(void) {
    printf("recursing\n");
    fflush(stdout);
    return (int)down(0);
}
