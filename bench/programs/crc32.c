/* crc32.c - table-driven CRC-32 (IEEE, reflected) over a generated buffer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    size_t mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 32;
    size_t len = mb << 20;
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint8_t *buf = malloc(len);
    if (!buf) return 1;
    uint32_t s = 99;
    for (size_t i = 0; i < len; i++) { s = s * 1664525u + 1013904223u; buf[i] = (uint8_t)(s >> 24); }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) crc = table[(crc ^ buf[i]) & 0xFF] ^ (crc >> 8);
    printf("crc32 %zu MiB checksum %08x\n", mb, crc ^ 0xFFFFFFFFu);
    free(buf);
    return 0;
}
