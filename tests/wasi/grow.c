/* grow.c - WASI test guest: allocates 1 MiB blocks until malloc fails and
 * reports how much it got; the host's memory cap must make malloc fail
 * gracefully (memory.grow returns -1).  The blocks are kept and read back
 * so that the compiler cannot elide the allocations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOCKS 8192

static unsigned char *blocks[MAX_BLOCKS];

int main(void) {
    size_t got = 0;
    unsigned long check = 0;
    while (got < MAX_BLOCKS) {
        unsigned char *p = malloc(1 << 20);
        if (!p) break;
        memset(p, 0xAB, 1 << 20);
        blocks[got++] = p;
    }
    for (size_t i = 0; i < got; i++) check += blocks[i][i % (1 << 20)];
    printf("allocated %zu MiB before malloc failed (check %lu)\n", got,
           check / 0xAB);
    for (size_t i = 0; i < got; i++) free(blocks[i]);
    return 0;
}
