/* matmul.c - f32 matrix multiply (i-k-j order), deterministic inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 256;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = calloc((size_t)n * n, sizeof(float));
    if (!a || !b || !c) return 1;
    unsigned s = 12345;
    for (unsigned i = 0; i < n * n; i++) {
        s = s * 1103515245u + 12345u;
        a[i] = (float)((s >> 16) % 1000) / 1000.0f - 0.5f;
        s = s * 1103515245u + 12345u;
        b[i] = (float)((s >> 16) % 1000) / 1000.0f - 0.5f;
    }
    for (unsigned i = 0; i < n; i++)
        for (unsigned k = 0; k < n; k++) {
            float aik = a[i * n + k];
            for (unsigned j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
        }
    unsigned h = 2166136261u;
    for (unsigned i = 0; i < n * n; i++) {
        unsigned bits;
        memcpy(&bits, &c[i], 4);
        h = (h ^ bits) * 16777619u;
    }
    printf("matmul %ux%u checksum %08x\n", n, n, h);
    free(a); free(b); free(c);
    return 0;
}
