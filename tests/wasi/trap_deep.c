/* trap_deep.c - WASI test guest: traps (unreachable) five calls deep inside
 * a function named deep_fault, so the runner can name it. */
#include <stdio.h>

__attribute__((noinline)) static int deep_fault(int x) {
    if (x > 0) __builtin_trap();
    return x;
}
__attribute__((noinline)) static int level(int n, int x) {
    return n == 0 ? deep_fault(x) : level(n - 1, x + 1) + 1;
}

int main(void) {
    printf("about to trap\n");
    fflush(stdout);
    return level(5, 1);
}
