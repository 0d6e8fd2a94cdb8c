/* hist.h: log-scale latency histogram (HDR-style, 4 sub-buckets per octave). */
#ifndef OMNI_HIST_H
#define OMNI_HIST_H

#include <stdint.h>

/* 120 buckets of microseconds. Buckets 0..3 hold exactly 0..3 us; above,
 * k = floor(log2 us), bucket = 4 * (k - 1) + ((us >> (k - 2)) & 3), so each
 * octave [2^k, 2^(k+1)) is split into 4 equal parts. The last bucket takes
 * everything from 7 << 28 us (~31 minutes) on. Reporting a bucket's
 * midpoint is off by at most 12.5% of the true value. sql/002 mirrors
 * this. */
#define OMNI_HIST_BUCKETS 120

/* Bucket index for a latency in microseconds. Pure, never fails. */
int omni_hist_bucket(uint64_t us);

/* Inclusive lower and exclusive upper bound, in microseconds, of bucket b. */
uint64_t omni_hist_lower(int b);
uint64_t omni_hist_upper(int b);

#endif
