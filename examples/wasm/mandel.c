/*
 * mandel.c - example guest: floating-point work on the Mandelbrot set.
 * Built freestanding for wasm32 (no libc); compiled natively with
 * -DISOFLOW_NATIVE it prints the reference results.  Contraction into
 * fused multiply-add is disabled so native and wasm results agree exactly.
 *
 * Reference: mandel_checksum(320, 240, 256) = 8575320203237716442,
 *            mandel_area(320, 240, 256) = 1.5273763020833333.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#ifdef __wasm__
#define EXPORT(name) __attribute__((export_name(name)))
#else
#define EXPORT(name)
#endif

/* Iterations before the orbit of c = cr + ci*i escapes |z| > 2 (at most
 * iters). */
static int escape_time(double cr, double ci, int iters)
{
    double zr = 0.0, zi = 0.0;
    int k = 0;
    while (k < iters) {
        double zr2 = zr * zr, zi2 = zi * zi;
        if (zr2 + zi2 > 4.0)
            break;
        zi = 2.0 * zr * zi + ci;
        zr = zr2 - zi2 + cr;
        k++;
    }
    return k;
}

/* Renders a w x h view of [-2.5, 1] x [-1.25, 1.25] and returns a checksum
 * mixing every pixel's escape time with its position (0 for bad sizes). */
EXPORT("mandel_checksum") long long mandel_checksum(int w, int h, int iters)
{
    unsigned long long sum = 0;
    if (w <= 0 || h <= 0 || iters < 0)
        return 0;
    for (int y = 0; y < h; y++) {
        double ci = -1.25 + 2.5 * (double)y / (double)h;
        for (int x = 0; x < w; x++) {
            double cr = -2.5 + 3.5 * (double)x / (double)w;
            unsigned k = (unsigned)escape_time(cr, ci, iters);
            sum = sum * 31u + k;
        }
    }
    return (long long)sum;
}

/* Estimates the area of the Mandelbrot set from the same w x h grid: the
 * fraction of points that never escaped times the view's area (8.75). */
EXPORT("mandel_area") double mandel_area(int w, int h, int iters)
{
    long long inside = 0;
    if (w <= 0 || h <= 0 || iters <= 0)
        return 0.0;
    for (int y = 0; y < h; y++) {
        double ci = -1.25 + 2.5 * (double)y / (double)h;
        for (int x = 0; x < w; x++) {
            double cr = -2.5 + 3.5 * (double)x / (double)w;
            if (escape_time(cr, ci, iters) == iters)
                inside++;
        }
    }
    return 8.75 * (double)inside / ((double)w * (double)h);
}

#ifdef ISOFLOW_NATIVE
/* Native reference: `mandel FUNC W H ITERS` prints what FUNC returns. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int arg(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0 || v > 100000) {
        fprintf(stderr, "bad argument '%s'\n", s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "mandel_checksum") == 0)
        printf("%lld\n",
               mandel_checksum(arg(argv[2]), arg(argv[3]), arg(argv[4])));
    else if (argc == 5 && strcmp(argv[1], "mandel_area") == 0)
        printf("%.17g\n",
               mandel_area(arg(argv[2]), arg(argv[3]), arg(argv[4])));
    else {
        fprintf(stderr, "usage: mandel mandel_checksum|mandel_area W H "
                        "ITERS\n");
        return 2;
    }
    return 0;
}
#endif
