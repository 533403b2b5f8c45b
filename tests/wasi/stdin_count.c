/* stdin_count.c - WASI test guest: counts bytes, lines and the sum of the
 * numbers read from standard input. */
#include <stdio.h>

int main(void) {
    long bytes = 0, lines = 0, sum = 0, cur = 0;
    int c, innum = 0;
    while ((c = getchar()) != EOF) {
        bytes++;
        if (c == '\n') lines++;
        if (c >= '0' && c <= '9') { cur = cur * 10 + (c - '0'); innum = 1; }
        else { if (innum) sum += cur; cur = 0; innum = 0; }
    }
    if (innum) sum += cur;
    printf("bytes=%ld lines=%ld sum=%ld\n", bytes, lines, sum);
    return 0;
}
