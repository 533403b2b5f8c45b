/* records.c - parse and aggregate a million short text sensor records such
 * as "room07,co2=812.5,temp=21.37,hum=44.1\n": per-room count, mean and max,
 * with a hand-written number parser (no strtod, so results are identical on
 * every platform and engine). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROOMS 64

typedef struct { unsigned n; double co2, temp, hum, co2max; } agg;

static double parse_num(const char **pp) {
    const char *p = *pp;
    int neg = 0;
    double v = 0, scale = 1;
    if (*p == '-') { neg = 1; p++; }
    while (*p >= '0' && *p <= '9') v = v * 10 + (*p++ - '0');
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') { v = v * 10 + (*p++ - '0'); scale *= 10; }
    }
    *pp = p;
    return (neg ? -v : v) / scale;
}

int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 1000000;
    size_t cap = (size_t)n * 48 + 1;
    char *text = malloc(cap);
    if (!text) return 1;
    size_t len = 0;
    unsigned s = 4242;
    for (unsigned i = 0; i < n; i++) {
        s = s * 1103515245u + 12345u; unsigned room = (s >> 16) % ROOMS;
        s = s * 1103515245u + 12345u; unsigned co2 = 400 + (s >> 16) % 1600, co2f = (s >> 8) % 10;
        s = s * 1103515245u + 12345u; unsigned t = 1500 + (s >> 16) % 1500;
        s = s * 1103515245u + 12345u; unsigned h = 200 + (s >> 16) % 600;
        len += (size_t)snprintf(text + len, cap - len, "room%02u,co2=%u.%u,temp=%u.%02u,hum=%u.%u\n",
                                room, co2, co2f, t / 100, t % 100, h / 10, h % 10);
    }
    agg a[ROOMS];
    memset(a, 0, sizeof a);
    const char *p = text, *end = text + len;
    unsigned bad = 0;
    while (p < end) {
        if (strncmp(p, "room", 4) != 0) { bad++; break; }
        p += 4;
        unsigned room = 0;
        while (*p >= '0' && *p <= '9') room = room * 10 + (unsigned)(*p++ - '0');
        if (room >= ROOMS) { bad++; break; }
        double co2 = 0, temp = 0, hum = 0;
        while (*p == ',') {
            p++;
            const char *key = p;
            while (*p && *p != '=') p++;
            size_t klen = (size_t)(p - key);
            p++;
            double v = parse_num(&p);
            if (klen == 3 && memcmp(key, "co2", 3) == 0) co2 = v;
            else if (klen == 4 && memcmp(key, "temp", 4) == 0) temp = v;
            else if (klen == 3 && memcmp(key, "hum", 3) == 0) hum = v;
        }
        if (*p == '\n') p++;
        agg *g = &a[room];
        g->n++; g->co2 += co2; g->temp += temp; g->hum += hum;
        if (co2 > g->co2max) g->co2max = co2;
    }
    unsigned long long h = 1469598103934665603ull;
    for (int r = 0; r < ROOMS; r++) {
        if (!a[r].n) continue;
        long long m1 = (long long)(a[r].co2 / a[r].n * 1000), m2 = (long long)(a[r].temp / a[r].n * 1000),
                  m3 = (long long)(a[r].hum / a[r].n * 1000), m4 = (long long)(a[r].co2max * 10);
        h = (h ^ (unsigned long long)(a[r].n + m1 + 3 * m2 + 7 * m3 + 11 * m4)) * 1099511628211ull;
    }
    printf("records %u (bad %u) checksum %016llx\n", n, bad, h);
    free(text);
    return 0;
}
