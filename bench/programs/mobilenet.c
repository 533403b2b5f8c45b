/* mobilenet.c - MobileNetV2-style blocks: 3x3 depthwise convolution
 * (stride 1, zero padding) + ReLU6, then 1x1 pointwise convolution over a
 * 112x112x32 f32 tensor (HWC layout), deterministic weights.  argv[1] is the
 * number of blocks (default 1); each block's output is the next one's input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H 112
#define W 112
#define C 32
#define CO 32

_Static_assert(CO == C, "a block's output feeds the next block's input");

static float relu6(float x) { return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x); }

/* One block: depthwise 3x3 + ReLU6 from in into mid, pointwise 1x1 into out. */
static void block(const float *in, float *mid, float *out, float dw[3][3][C], float pw[C][CO]) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float acc[C];
            memset(acc, 0, sizeof acc);
            for (int ky = 0; ky < 3; ky++) {
                int yy = y + ky - 1;
                if (yy < 0 || yy >= H) continue;
                for (int kx = 0; kx < 3; kx++) {
                    int xx = x + kx - 1;
                    if (xx < 0 || xx >= W) continue;
                    const float *px = &in[(yy * W + xx) * C];
                    for (int c = 0; c < C; c++) acc[c] += px[c] * dw[ky][kx][c];
                }
            }
            for (int c = 0; c < C; c++) mid[(y * W + x) * C + c] = relu6(acc[c]);
        }
    for (int p = 0; p < H * W; p++) {
        const float *m = &mid[p * C];
        float *o = &out[p * CO];
        for (int k = 0; k < CO; k++) o[k] = 0.0f;
        for (int c = 0; c < C; c++) {
            float v = m[c];
            for (int k = 0; k < CO; k++) o[k] += v * pw[c][k];
        }
    }
}

int main(int argc, char **argv) {
    int blocks = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 1;
    float *in = malloc(sizeof(float) * H * W * C), *mid = malloc(sizeof(float) * H * W * C),
          *out = malloc(sizeof(float) * H * W * CO);
    float dw[3][3][C], pw[C][CO];
    if (!in || !mid || !out) return 1;
    unsigned s = 7;
    for (int i = 0; i < H * W * C; i++) { s = s * 1103515245u + 12345u; in[i] = (float)((s >> 16) & 255) / 64.0f - 2.0f; }
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++)
            for (int c = 0; c < C; c++) { s = s * 1103515245u + 12345u; dw[ky][kx][c] = (float)((s >> 16) & 255) / 256.0f - 0.5f; }
    for (int c = 0; c < C; c++)
        for (int o = 0; o < CO; o++) { s = s * 1103515245u + 12345u; pw[c][o] = (float)((s >> 16) & 255) / 512.0f - 0.25f; }
    for (int b = 0; b < blocks; b++) {
        if (b > 0) memcpy(in, out, sizeof(float) * H * W * C);
        block(in, mid, out, dw, pw);
    }
    unsigned h = 2166136261u;
    for (int i = 0; i < H * W * CO; i++) {
        unsigned bits;
        memcpy(&bits, &out[i], 4);
        h = (h ^ bits) * 16777619u;
    }
    printf("mobilenet %d blocks %dx%dx%d checksum %08x\n", blocks, H, W, C, h);
    free(in); free(mid); free(out);
    return 0;
}
