/* hello.c - WASI test guest: greets, echoes its arguments and environment
 * variable GREETING, exits with status 0. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *g = getenv("GREETING");
    printf("hello from wasm, argc=%d\n", argc);
    for (int i = 1; i < argc; i++) printf("arg[%d]=%s\n", i, argv[i]);
    if (g) printf("GREETING=%s\n", g);
    return 0;
}
