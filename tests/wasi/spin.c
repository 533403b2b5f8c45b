/* spin.c - WASI test guest: loops forever (stopped by fuel or a timeout). */
#include <stdio.h>

int main(void) {
    volatile unsigned long n = 0;
    printf("spinning\n");
    fflush(stdout);
    for (;;) n++;
    return 0;
}
