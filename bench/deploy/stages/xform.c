/*
 * xform.c - the ~100 KB stage of the live-update benchmark (bench/deploy/):
 * a table-driven sensor calibration.  A reading {"co2":..,"temp":..} is
 * mapped through three calibration tables (NDIR CO2 response, thermistor
 * curve, dew-point factor) held in the module's data, and tagged with the
 * code version ("v":"v1") so the harness sees which version processed it.
 *
 * XFORM_VERSION is the one constant a new version changes (the harness
 * rewrites that line); the tables are computed by the compiler from
 * polynomial fits, so the module's size is its real data.
 */
#include <isoflow/json.h>
#include <isoflow/stage.h>

#define XFORM_VERSION 1

/* Expands F(i) for 8^k consecutive indices: each index is one octal
 * literal pasted digit by digit (0, 01, ..., 07777), which keeps the
 * expanded text, and the compile, small. */
#define T8(F, p) \
    F(p##0), F(p##1), F(p##2), F(p##3), F(p##4), F(p##5), F(p##6), F(p##7)
#define T64(F, p)                                                          \
    T8(F, p##0), T8(F, p##1), T8(F, p##2), T8(F, p##3), T8(F, p##4),       \
        T8(F, p##5), T8(F, p##6), T8(F, p##7)
#define T512(F, p)                                                         \
    T64(F, p##0), T64(F, p##1), T64(F, p##2), T64(F, p##3), T64(F, p##4),  \
        T64(F, p##5), T64(F, p##6), T64(F, p##7)
#define T4096(F, p)                                                        \
    T512(F, p##0), T512(F, p##1), T512(F, p##2), T512(F, p##3),            \
        T512(F, p##4), T512(F, p##5), T512(F, p##6), T512(F, p##7)

/* NDIR CO2: normalised absorbance a = i / 16384 -> ppm, the quartic fit
 * 27800 a^4 - 31100 a^3 + 17900 a^2 + 5200 a + 400 of a sensor
 * response up to 20,000 ppm, with the coefficients pre-scaled for i. */
#define CO2_N 16384
#define CO2_AT(i)                                                          \
    ((float)((((3.85803e-13 * i - 7.07132e-9) * i + 6.66827e-5) * i +       \
              0.317383) * i + 400.0))
static const float co2_table[CO2_N] = {T4096(CO2_AT, 00), T4096(CO2_AT, 01),
                                       T4096(CO2_AT, 02), T4096(CO2_AT, 03)};

/* Thermistor: 12-bit ADC code i -> degrees C, the cubic fit
 * -118 x^3 + 190 x^2 + 93.5 x - 40 (x = i / 4096) of a 10k NTC in a
 * divider, -40..125 C. */
#define TEMP_N 4096
#define TEMP_AT(i) \
    ((float)(((-1.71713e-9 * i + 1.13249e-5) * i + 0.0228271) * i - 40.0))
static const float temp_table[TEMP_N] = {T4096(TEMP_AT, 0)};

/* Magnus dew-point factor gamma(T) for T = -40 + i * 165 / 2048 C: the
 * quadratic fit -0.000257 T^2 + 0.0722 T + 0.01 of 17.62 T / (243.12 + T),
 * expanded in i. */
#define DEW_N 2048
#define DEW_AT(i) \
    ((float)((-1.66817e-6 * i + 0.00747334) * i - 3.2892))
static const float dew_table[DEW_N] = {T512(DEW_AT, 00), T512(DEW_AT, 01),
                                       T512(DEW_AT, 02), T512(DEW_AT, 03)};

/* Linear interpolation in table t of n entries at x in [0, 1]. */
static double lookup(const float *t, int n, double x)
{
    if (!(x > 0.0))
        return t[0];
    double pos = x * (n - 1);
    int k = (int)pos;
    if (k >= n - 1)
        return t[n - 1];
    double f = pos - k;
    return t[k] + (t[k + 1] - t[k]) * f;
}

/* Calibrates one reading and emits it tagged with the version; readings
 * without "co2" are counted as errors (-1). */
int stage_process(const uint8_t *msg, size_t len)
{
    double co2 = 0, temp = 20.0;
    char out[192], tag[8];
    if (if_json_num(msg, len, "co2", &co2) != 0)
        return -1;
    (void)if_json_num(msg, len, "temp", &temp);
    double ppm = lookup(co2_table, CO2_N, co2 / 10000.0);
    double tc = lookup(temp_table, TEMP_N, (temp + 40.0) / 165.0);
    double g = lookup(dew_table, DEW_N, (tc + 40.0) / 165.0);
    if_snprintf(tag, sizeof tag, "v%d", XFORM_VERSION);
    if_json_writer w;
    if_json_begin(&w, out, sizeof out);
    if_json_add_str(&w, "v", tag);
    if_json_add_num(&w, "co2", co2, 1);
    if_json_add_num(&w, "co2_ppm", ppm, 1);
    if_json_add_num(&w, "temp_c", tc, 2);
    g += -0.693147; /* ln(RH) at the 50 % RH the bench readings assume */
    if_json_add_num(&w, "dew_c", 243.12 * g / (17.62 - g), 2);
    int n = if_json_end(&w);
    if (n < 0)
        return -1;
    return if_emit(out, (size_t)n) < 0 ? -1 : 0;
}
