/* exitcode.c - WASI test guest: exits with the status given as argv[1],
 * through exit() (proc_exit) after printing to stderr. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    long code = argc > 1 ? strtol(argv[1], NULL, 10) : 0;
    fprintf(stderr, "exiting with %ld\n", code);
    exit((int)code);
}
