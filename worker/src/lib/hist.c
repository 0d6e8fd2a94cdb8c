/* hist.c: bucket arithmetic of the log-scale latency histogram. */
#include "lib/hist.h"


int omni_hist_bucket(uint64_t us)
{
    int k, b;

    if (us < 4) {
        return (int)us;
    }

    k = 63 - __builtin_clzll(us);
    b = 4 * (k - 1) + (int)((us >> (k - 2)) & 3);

    return b < OMNI_HIST_BUCKETS ? b : OMNI_HIST_BUCKETS - 1;
}


uint64_t omni_hist_lower(int b)
{
    int k;

    if (b < 4) {
        return (uint64_t)b;
    }

    k = b / 4 + 1;
    return (uint64_t)(4 + b % 4) << (k - 2);
}


uint64_t omni_hist_upper(int b)
{
    if (b >= OMNI_HIST_BUCKETS - 1) {
        return UINT64_MAX;
    }
    return omni_hist_lower(b + 1);
}
