/* test_hist.c: bucket arithmetic of the log-scale latency histogram. */
#include <stdint.h>

#include "lib/hist.h"
#include "unit.h"

#define LAST (OMNI_HIST_BUCKETS - 1)

/* xorshift64*: a fixed seed keeps failures reproducible */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static void test_small_values_have_exact_buckets(void)
{
    uint64_t us;

    for (us = 0; us < 4; us++) {
        CHECK_EQ_INT(omni_hist_bucket(us), us);
        CHECK_EQ_INT(omni_hist_lower((int)us), us);
        CHECK_EQ_INT(omni_hist_upper((int)us), us + 1);
    }
    CHECK_EQ_INT(omni_hist_bucket(4), 4);
}

static void test_octaves_split_into_four_equal_parts(void)
{
    /* [4, 8) is 4,5,6,7; [8, 16) is 8-9, 10-11, 12-13, 14-15 */
    CHECK_EQ_INT(omni_hist_bucket(5), 5);
    CHECK_EQ_INT(omni_hist_bucket(7), 7);
    CHECK_EQ_INT(omni_hist_bucket(8), 8);
    CHECK_EQ_INT(omni_hist_bucket(9), 8);
    CHECK_EQ_INT(omni_hist_bucket(10), 9);
    CHECK_EQ_INT(omni_hist_bucket(15), 11);
    CHECK_EQ_INT(omni_hist_bucket(16), 12);
    CHECK_EQ_INT(omni_hist_lower(12), 16);
    CHECK_EQ_INT(omni_hist_upper(12), 20);
    CHECK_EQ_INT(omni_hist_lower(13), 20);
    CHECK_EQ_INT(omni_hist_lower(15), 28);
    CHECK_EQ_INT(omni_hist_upper(15), 32);
}

static void test_every_bucket_holds_its_own_bounds(void)
{
    int b;

    for (b = 0; b < LAST; b++) {
        uint64_t lo = omni_hist_lower(b), hi = omni_hist_upper(b);

        CHECK(lo < hi);
        CHECK_EQ_INT(omni_hist_bucket(lo), b);
        CHECK_EQ_INT(omni_hist_bucket(hi - 1), b);
        CHECK_EQ_INT(hi, omni_hist_lower(b + 1));
        CHECK_EQ_INT(omni_hist_bucket(hi), b + 1);
    }
    CHECK_EQ_INT(omni_hist_bucket(omni_hist_lower(LAST)), LAST);
}

static void test_bucket_width_is_a_quarter_octave(void)
{
    int b;

    for (b = 4; b < LAST; b++) {
        uint64_t lo = omni_hist_lower(b), hi = omni_hist_upper(b);
        int k = 63 - __builtin_clzll(lo);

        CHECK_EQ_INT(hi - lo, 1ull << (k - 2));
    }
}

static void test_buckets_are_monotonic(void)
{
    uint64_t v, prev_v = 0;
    int prev = omni_hist_bucket(0);

    for (v = 1; v <= 1000000000ull; v = v + 1 + v / 64) {
        int b = omni_hist_bucket(v);

        CHECK(b >= prev);
        CHECK(b >= 0 && b < OMNI_HIST_BUCKETS);
        CHECK(omni_hist_lower(b) <= v);
        CHECK(v < omni_hist_upper(b));
        /* a bucket is at least v/8 wide, the step v/64: none skipped */
        CHECK(b - prev <= 1);
        prev = b;
        prev_v = v;
    }
    CHECK(prev_v > 900000000ull);
}

static void test_last_bucket_takes_everything_beyond(void)
{
    CHECK_EQ_INT(omni_hist_bucket(UINT64_MAX), LAST);
    CHECK_EQ_INT(omni_hist_bucket(1ull << 40), LAST);
    CHECK_EQ_INT(omni_hist_bucket(1ull << 63), LAST);
    CHECK_EQ_INT(omni_hist_bucket(omni_hist_lower(LAST) - 1), LAST - 1);
    CHECK(omni_hist_upper(LAST) == UINT64_MAX);
}

static void test_bucket_midpoint_is_within_an_eighth(void)
{
    uint64_t top = omni_hist_lower(LAST);
    int i;

    for (i = 0; i < 200000; i++) {
        /* log-uniform: a random octave below the last bucket's, then a
         * random value inside it */
        int k = 2 + (int)(rng() % 29);
        uint64_t v = (1ull << k) | (rng() & ((1ull << k) - 1));
        int b;
        double mid, err;

        if (v >= top)
            v = 4 + v % (top - 4);
        b = omni_hist_bucket(v);
        mid = ((double)omni_hist_lower(b) + (double)omni_hist_upper(b)) / 2;
        err = mid > (double)v ? mid - (double)v : (double)v - mid;
        if (err > 0.125 * (double)v) {
            fprintf(stderr, "    v = %llu, bucket %d, midpoint %.1f\n",
                (unsigned long long)v, b, mid);
            CHECK(err <= 0.125 * (double)v);
        }
    }
}

static void test_bucket_edges_are_within_an_eighth(void)
{
    int b;

    /* the worst cases are the edges of each bucket */
    for (b = 4; b < LAST; b++) {
        double lo = (double)omni_hist_lower(b);
        double hi = (double)omni_hist_upper(b);
        double mid = (lo + hi) / 2;

        CHECK(mid - lo <= 0.125 * lo);
        CHECK(hi - 1 - mid <= 0.125 * (hi - 1));
    }
}

UNIT_MAIN(UNIT_TEST(test_small_values_have_exact_buckets),
    UNIT_TEST(test_octaves_split_into_four_equal_parts),
    UNIT_TEST(test_every_bucket_holds_its_own_bounds),
    UNIT_TEST(test_bucket_width_is_a_quarter_octave),
    UNIT_TEST(test_buckets_are_monotonic),
    UNIT_TEST(test_last_bucket_takes_everything_beyond),
    UNIT_TEST(test_bucket_midpoint_is_within_an_eighth),
    UNIT_TEST(test_bucket_edges_are_within_an_eighth))
