/*
 * lat.c - the latency sink of the node benchmarks (bench/nodes/): placed on
 * the cloud node, it measures every message's end-to-end latency (now minus
 * the production time stamped on the device) and logs a summary line, so
 * the figure spans all three processes and both TLS links.
 */
#include <isoflow/stage.h>

/* Latency histogram: 10 us buckets up to 1 s, one overflow bucket. */
#define BUCKET_US 10
#define NBUCKETS 100000
static uint32_t hist[NBUCKETS + 1];
static uint64_t count, max_us;
static int64_t first_ns, start_ns, end_ns, last_log_ns;
static int64_t skip_ns = 2000000000, window_ns = 5000000000;
static int done;

/* Reads the integer after "key=" in the config (seconds); returns it, or
 * dflt when absent. */
static int64_t config_int(const char *c, size_t len, const char *key,
                          int64_t dflt)
{
    size_t k = 0;
    while (key[k])
        k++;
    for (size_t i = 0; i + k < len; i++) {
        size_t j = 0;
        while (j < k && c[i + j] == key[j])
            j++;
        if (j == k && c[i + k] == '=' && (i == 0 || c[i - 1] == ' ')) {
            int64_t v = 0;
            for (size_t p = i + k + 1; p < len && c[p] >= '0' && c[p] <= '9';
                 p++)
                v = v * 10 + (c[p] - '0');
            return v;
        }
    }
    return dflt;
}

/* Config "skip=S window=W" (seconds): measure the W seconds that follow the
 * first S seconds after the first message.  Returns 0. */
int stage_init(const char *config, size_t len)
{
    skip_ns = config_int(config, len, "skip", 2) * 1000000000;
    window_ns = config_int(config, len, "window", 5) * 1000000000;
    return 0;
}

/* The q-quantile of the histogram in microseconds (upper bucket bound). */
static uint64_t quantile_us(double q)
{
    uint64_t want = (uint64_t)(q * (double)count), seen = 0;
    if (want >= count)
        want = count ? count - 1 : 0;
    for (uint32_t i = 0; i <= NBUCKETS; i++) {
        seen += hist[i];
        if (seen > want)
            return i == NBUCKETS ? max_us : (uint64_t)(i + 1) * BUCKET_US;
    }
    return max_us;
}

/* Logs "nodes-lat n=N p50_us=A p99_us=B max_us=C final=F". */
static void report(int final)
{
    if_log(IF_LOG_INFO, "nodes-lat n=%llu p50_us=%llu p99_us=%llu "
           "max_us=%llu final=%d", (unsigned long long)count,
           (unsigned long long)quantile_us(0.50),
           (unsigned long long)quantile_us(0.99),
           (unsigned long long)max_us, final);
}

/* Adds the message's latency to the histogram while inside the window;
 * emits nothing.  Returns 0. */
int stage_process(const uint8_t *msg, size_t len)
{
    (void)msg;
    (void)len;
    if (done)
        return 0;
    int64_t now = if_now_ns();
    if (!first_ns) {
        first_ns = now;
        start_ns = now + skip_ns;
        end_ns = start_ns + window_ns;
        last_log_ns = now;
    }
    if (now < start_ns)
        return 0;
    if (now >= end_ns) {
        done = 1;
        report(1);
        return 0;
    }
    int64_t lat = now - if_meta(IF_META_TS);
    uint64_t us = lat > 0 ? (uint64_t)lat / 1000 : 0;
    uint64_t b = us / BUCKET_US;
    hist[b < NBUCKETS ? b : NBUCKETS]++;
    count++;
    if (us > max_us)
        max_us = us;
    if (now - last_log_ns >= 1000000000) {
        last_log_ns = now;
        report(0);
    }
    return 0;
}
