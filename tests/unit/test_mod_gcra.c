/* test_mod_gcra.c: GCRA arithmetic (ngx_omni_module/omni_gcra.c) and the
 * embedded Redis script (omni_limit_lua.h) against its source file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omni_gcra.h"
#include "omni_limit_lua.h"
#include "unit.h"

#define SEC INT64_C(1000000)
#define T0 (INT64_C(1700000000) * SEC) /* a unix time in microseconds */

/* xorshift64*: a fixed seed keeps failures reproducible */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static int64_t rnd(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng() % (uint64_t)(hi - lo + 1));
}

static omni_gcra_limit_t limit(int64_t interval, int64_t burst)
{
    omni_gcra_limit_t l;

    l.interval = interval;
    l.burst = burst;
    return l;
}

/* One request against *tat, storing the new state as the module does. */
static omni_gcra_result_t hit(
    const omni_gcra_limit_t *l, int64_t cost, int64_t *tat, int64_t now)
{
    omni_gcra_result_t res;

    memset(&res, 0x55, sizeof(res));
    if (omni_gcra_check(l, cost, *tat, now, &res) != 0) {
        fprintf(stderr, "    check refused T=%lld B=%lld c=%lld\n",
            (long long)l->interval, (long long)l->burst, (long long)cost);
        abort();
    }
    if (res.ttl_us > 0)
        *tat = res.tat;
    return res;
}

static void test_burst_of_b_plus_one_is_admitted_then_denied(void)
{
    omni_gcra_limit_t l = limit(SEC / 10, 4); /* 10r/s burst=4 */
    omni_gcra_result_t r;
    int64_t tat = 0;
    int i;

    for (i = 0; i < 5; i++) {
        r = hit(&l, 1, &tat, T0);
        CHECK(r.allowed);
        CHECK_EQ_INT(r.remaining, 4 - i);
    }
    r = hit(&l, 1, &tat, T0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.remaining, 0);
    CHECK_EQ_INT(r.retry_after_us, SEC / 10);
    CHECK_EQ_INT(tat, T0 + 5 * (SEC / 10));
}

static void test_burst_zero_admits_one_at_a_time(void)
{
    omni_gcra_limit_t l = limit(SEC, 0);
    omni_gcra_result_t r;
    int64_t tat = 0;

    r = hit(&l, 1, &tat, T0);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.remaining, 0);
    r = hit(&l, 1, &tat, T0 + SEC - 1);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.retry_after_us, 1);
    CHECK(hit(&l, 1, &tat, T0 + SEC).allowed);
}

static void test_steady_rate_is_admitted(void)
{
    omni_gcra_limit_t l = limit(SEC / 100, 0); /* 100r/s, no burst */
    int64_t tat = 0, now = T0;
    int i;

    for (i = 0; i < 10000; i++, now += SEC / 100)
        CHECK(hit(&l, 1, &tat, now).allowed);
    /* one microsecond early is too early */
    CHECK(!hit(&l, 1, &tat, now - 1).allowed);
}

static void test_retry_after_is_exact(void)
{
    omni_gcra_limit_t l = limit(333333, 2); /* 3r/s burst=2 */
    omni_gcra_result_t r;
    int64_t tat = 0, now = T0;
    int i;

    for (i = 0; i < 3; i++)
        CHECK(hit(&l, 1, &tat, now).allowed);
    now += 1000;
    r = hit(&l, 1, &tat, now);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.retry_after_us, 333333 - 1000);
    CHECK(!hit(&l, 1, &tat, now + r.retry_after_us - 1).allowed);
    CHECK(hit(&l, 1, &tat, now + r.retry_after_us).allowed);

    /* and for a cost of 2, which needs two intervals free */
    now += r.retry_after_us;
    r = hit(&l, 2, &tat, now);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.retry_after_us, 2 * 333333);
    CHECK(!hit(&l, 2, &tat, now + r.retry_after_us - 1).allowed);
    CHECK(hit(&l, 2, &tat, now + r.retry_after_us).allowed);
}

static void test_cost_spends_several_units(void)
{
    omni_gcra_limit_t l = limit(SEC, 9); /* capacity 10 */
    omni_gcra_result_t r;
    int64_t tat = 0;

    r = hit(&l, 4, &tat, T0);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.remaining, 6);
    CHECK_EQ_INT(r.reset_us, 4 * SEC);
    r = hit(&l, 6, &tat, T0);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.remaining, 0);
    r = hit(&l, 3, &tat, T0 + SEC);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.retry_after_us, 2 * SEC);
    r = hit(&l, 1, &tat, T0 + SEC);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.remaining, 0);
    /* a cost of exactly B + 1 fits an empty key */
    tat = 0;
    r = hit(&l, 10, &tat, T0);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.remaining, 0);
    CHECK_EQ_INT(r.reset_us, 10 * SEC);
}

static void test_cost_above_capacity_is_never_allowed(void)
{
    omni_gcra_limit_t l = limit(SEC, 4);
    omni_gcra_result_t r;
    int64_t tat = 0;

    r = hit(&l, 6, &tat, T0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.retry_after_us, OMNI_GCRA_NEVER);
    CHECK_EQ_INT(r.remaining, 0);
    CHECK_EQ_INT(r.reset_us, 0);
    CHECK_EQ_INT(r.ttl_us, 0);
    CHECK_EQ_INT(tat, 0);
    r = hit(&l, OMNI_GCRA_MAX_COST, &tat, T0 + 1000 * SEC);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.retry_after_us, OMNI_GCRA_NEVER);
    /* the key is untouched: a full burst still passes */
    CHECK(hit(&l, 5, &tat, T0).allowed);
}

static void test_fractional_rate_ten_per_minute(void)
{
    int64_t t = omni_gcra_interval(10, 60 * SEC);
    omni_gcra_limit_t l = limit(t, 1);
    omni_gcra_result_t r;
    int64_t tat = 0;

    CHECK_EQ_INT(t, 6 * SEC);
    CHECK(hit(&l, 1, &tat, T0).allowed);
    CHECK(hit(&l, 1, &tat, T0).allowed);
    r = hit(&l, 1, &tat, T0 + SEC);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.retry_after_us, 5 * SEC);
    CHECK_EQ_INT(r.reset_us, 11 * SEC);
    r = hit(&l, 1, &tat, T0 + 6 * SEC);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.remaining, 0);
    CHECK_EQ_INT(r.reset_us, 12 * SEC);
}

static void test_interval_rounds_to_the_nearest_microsecond(void)
{
    CHECK_EQ_INT(omni_gcra_interval(1, SEC), SEC);
    CHECK_EQ_INT(omni_gcra_interval(3, SEC), 333333);
    CHECK_EQ_INT(omni_gcra_interval(3, 2 * SEC), 666667);
    CHECK_EQ_INT(omni_gcra_interval(2, 3), 2); /* 1.5 rounds up */
    CHECK_EQ_INT(omni_gcra_interval(7, 3600 * SEC), 514285714);
    CHECK_EQ_INT(omni_gcra_interval(1, 3600 * SEC), 3600 * SEC);
    CHECK_EQ_INT(omni_gcra_interval(1000000, SEC), 1);
    CHECK_EQ_INT(omni_gcra_interval(1000001, SEC), -1);
    CHECK_EQ_INT(omni_gcra_interval(0, SEC), -1);
    CHECK_EQ_INT(omni_gcra_interval(-1, SEC), -1);
    CHECK_EQ_INT(omni_gcra_interval(1, 0), -1);
    CHECK_EQ_INT(omni_gcra_interval(1, OMNI_GCRA_MAX_SPAN), OMNI_GCRA_MAX_SPAN);
    CHECK_EQ_INT(omni_gcra_interval(1, OMNI_GCRA_MAX_SPAN + 1), -1);
    CHECK_EQ_INT(omni_gcra_interval(INT64_MAX, INT64_MAX), 1);
    CHECK_EQ_INT(omni_gcra_interval(3, INT64_MAX), -1);
}

static void test_remaining_and_reset_follow_the_clock(void)
{
    omni_gcra_limit_t l = limit(SEC, 4);
    omni_gcra_result_t r;
    int64_t tat = 0;

    r = hit(&l, 1, &tat, T0);
    CHECK_EQ_INT(r.remaining, 4);
    CHECK_EQ_INT(r.reset_us, SEC);
    CHECK_EQ_INT(r.ttl_us, SEC);
    CHECK_EQ_INT(r.tat, T0 + SEC);
    r = hit(&l, 3, &tat, T0 + SEC / 2);
    CHECK_EQ_INT(r.remaining, 1); /* 5 - 0.5 - 3 = 1.5 free */
    CHECK_EQ_INT(r.reset_us, 3 * SEC + SEC / 2);
    r = hit(&l, 1, &tat, T0 + 2 * SEC);
    CHECK_EQ_INT(r.remaining, 2); /* 5 - (4 - 2) - 1 = 2 */
    CHECK_EQ_INT(r.reset_us, 3 * SEC);
    /* deny: reset is the time until the key is empty, state unchanged */
    r = hit(&l, 3, &tat, T0 + 2 * SEC);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.reset_us, 3 * SEC);
    CHECK_EQ_INT(r.retry_after_us, SEC);
    CHECK_EQ_INT(r.ttl_us, 0);
    CHECK_EQ_INT(r.tat, T0 + 5 * SEC);
    /* long after the last request the key is full again */
    r = hit(&l, 1, &tat, T0 + 60 * SEC);
    CHECK_EQ_INT(r.remaining, 4);
    CHECK_EQ_INT(r.reset_us, SEC);
}

static void test_expired_state_is_no_state(void)
{
    omni_gcra_limit_t l = limit(250000, 3);
    omni_gcra_result_t with, without;
    int64_t tat = 0;
    int i;

    for (i = 0; i < 3; i++)
        hit(&l, 1, &tat, T0);
    /* once ttl has passed, dropping the state changes nothing */
    CHECK_EQ_INT(omni_gcra_check(&l, 2, tat, tat, &with), 0);
    CHECK_EQ_INT(omni_gcra_check(&l, 2, 0, tat, &without), 0);
    CHECK(memcmp(&with, &without, sizeof(with)) == 0);
}

static void test_state_ahead_of_capacity_is_lowered_to_a_full_debt(void)
{
    omni_gcra_limit_t l = limit(SEC, 1);
    omni_gcra_result_t r;
    int64_t tat = T0 + 3600 * SEC; /* the clock stepped back an hour */

    r = hit(&l, 1, &tat, T0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.retry_after_us, SEC);
    CHECK_EQ_INT(r.reset_us, 2 * SEC);
    CHECK_EQ_INT(r.ttl_us, 2 * SEC);
    CHECK_EQ_INT(tat, T0 + 2 * SEC);
    /* retry_after holds: the lowered state is what the next call sees */
    r = hit(&l, 1, &tat, T0 + SEC - 1);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.ttl_us, 0);
    r = hit(&l, 1, &tat, T0 + SEC);
    CHECK(r.allowed);
    CHECK_EQ_INT(tat, T0 + 3 * SEC);
    /* a cost above capacity lowers it too */
    tat = INT64_C(1) << 61;
    r = hit(&l, 3, &tat, T0);
    CHECK_EQ_INT(r.retry_after_us, OMNI_GCRA_NEVER);
    CHECK_EQ_INT(tat, T0 + 2 * SEC);
}

static void test_all_or_nothing_still_lowers_states_ahead(void)
{
    omni_gcra_item_t it[2];
    omni_gcra_result_t r;

    memset(it, 0, sizeof(it));
    it[0].limit = limit(SEC, 9);
    it[0].cost = 1;
    it[1].limit = limit(SEC, 0);
    it[1].cost = 1;
    it[1].tat = T0 + 3600 * SEC;
    CHECK_EQ_INT(omni_gcra_check_all(it, 2, T0, &r), 0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.index, 1);
    CHECK_EQ_INT(r.retry_after_us, SEC);
    CHECK_EQ_INT(it[0].tat, 0);
    CHECK_EQ_INT(it[0].ttl_us, 0);
    CHECK_EQ_INT(it[1].tat, T0 + SEC);
    CHECK_EQ_INT(it[1].ttl_us, SEC);
    CHECK_EQ_INT(omni_gcra_check_all(it, 2, T0 + SEC, &r), 0);
    CHECK(r.allowed);
    CHECK_EQ_INT(it[0].tat, T0 + 2 * SEC);
    CHECK_EQ_INT(it[1].tat, T0 + 2 * SEC);
}

static void test_all_or_nothing_across_two_limits(void)
{
    omni_gcra_item_t it[2];
    omni_gcra_result_t r;
    int i;

    memset(it, 0, sizeof(it));
    it[0].limit = limit(SEC, 9); /* 10 at once */
    it[0].cost = 1;
    it[1].limit = limit(SEC / 2, 2); /* 3 at once */
    it[1].cost = 1;

    for (i = 0; i < 3; i++) {
        CHECK_EQ_INT(omni_gcra_check_all(it, 2, T0, &r), 0);
        CHECK(r.allowed);
        CHECK_EQ_INT(r.index, 1);
        CHECK_EQ_INT(r.remaining, 2 - i);
        CHECK_EQ_INT(it[0].tat, T0 + (i + 1) * SEC);
        CHECK_EQ_INT(it[0].ttl_us, (i + 1) * SEC);
        CHECK_EQ_INT(it[1].tat, T0 + (i + 1) * (SEC / 2));
    }

    /* the second limit denies: the first is not charged */
    CHECK_EQ_INT(omni_gcra_check_all(it, 2, T0, &r), 0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.index, 1);
    CHECK_EQ_INT(r.retry_after_us, SEC / 2);
    CHECK_EQ_INT(it[0].tat, T0 + 3 * SEC);
    CHECK_EQ_INT(it[1].tat, T0 + 3 * (SEC / 2));
    CHECK_EQ_INT(it[0].ttl_us, 0);
    CHECK_EQ_INT(it[1].ttl_us, 0);

    /* half a second later both allow, and both are charged */
    CHECK_EQ_INT(omni_gcra_check_all(it, 2, T0 + SEC / 2, &r), 0);
    CHECK(r.allowed);
    CHECK_EQ_INT(it[0].tat, T0 + 4 * SEC);
    CHECK_EQ_INT(it[1].tat, T0 + 4 * (SEC / 2));
}

static void test_tightest_limit_is_reported(void)
{
    omni_gcra_item_t it[3];
    omni_gcra_result_t r;

    memset(it, 0, sizeof(it));
    it[0].limit = limit(SEC, 5);
    it[1].limit = limit(SEC, 5);
    it[2].limit = limit(2 * SEC, 2);
    it[0].cost = it[1].cost = it[2].cost = 1;

    /* allow: lowest remaining (4, 4, 2) */
    CHECK_EQ_INT(omni_gcra_check_all(it, 3, T0, &r), 0);
    CHECK_EQ_INT(r.index, 2);
    CHECK_EQ_INT(r.remaining, 2);
    CHECK_EQ_INT(r.reset_us, 2 * SEC);
    CHECK_EQ_INT(r.tat, T0 + 2 * SEC);

    /* equal remaining: the longer reset, then the lower index */
    it[2].limit = limit(2 * SEC, 5);
    it[2].tat = 0;
    it[0].tat = it[1].tat = 0;
    CHECK_EQ_INT(omni_gcra_check_all(it, 3, T0, &r), 0);
    CHECK_EQ_INT(r.remaining, 5);
    CHECK_EQ_INT(r.index, 2);
    it[0].tat = it[1].tat = it[2].tat = 0;
    CHECK_EQ_INT(omni_gcra_check_all(it, 2, T0, &r), 0);
    CHECK_EQ_INT(r.index, 0);

    /* deny: the longest retry_after, and NEVER is longest */
    it[0].limit = limit(SEC, 0);
    it[1].limit = limit(3 * SEC, 0);
    it[2].limit = limit(SEC, 0);
    it[0].tat = it[1].tat = it[2].tat = 0;
    CHECK_EQ_INT(omni_gcra_check_all(it, 3, T0, &r), 0);
    CHECK(r.allowed);
    CHECK_EQ_INT(omni_gcra_check_all(it, 3, T0, &r), 0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.index, 1);
    CHECK_EQ_INT(r.retry_after_us, 3 * SEC);
    CHECK_EQ_INT(r.reset_us, 3 * SEC);
    it[2].cost = 2;
    CHECK_EQ_INT(omni_gcra_check_all(it, 3, T0, &r), 0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.index, 2);
    CHECK_EQ_INT(r.retry_after_us, OMNI_GCRA_NEVER);

    /* an allowing limit is never reported when another denies */
    it[0].limit = limit(SEC, 100);
    it[0].tat = 0;
    it[1].limit = limit(SEC, 0);
    it[1].tat = T0 + SEC;
    CHECK_EQ_INT(omni_gcra_check_all(it, 2, T0 + SEC / 2, &r), 0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.index, 1);
    CHECK_EQ_INT(it[0].tat, 0);
}

static void test_no_limits_allow_with_no_index(void)
{
    omni_gcra_result_t r;

    memset(&r, 0x55, sizeof(r));
    CHECK_EQ_INT(omni_gcra_check_all(NULL, 0, T0, &r), 0);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.index, -1);
    CHECK_EQ_INT(r.remaining, 0);
    CHECK_EQ_INT(r.retry_after_us, 0);
    CHECK_EQ_INT(r.reset_us, 0);
}

static void test_invalid_item_changes_nothing(void)
{
    omni_gcra_item_t it[2];
    omni_gcra_result_t r;

    memset(it, 0, sizeof(it));
    it[0].limit = limit(SEC, 1);
    it[0].cost = 1;
    it[1].limit = limit(SEC, 1);
    it[1].cost = 0;
    it[0].ttl_us = it[1].ttl_us = 77;
    memset(&r, 0x55, sizeof(r));
    CHECK_EQ_INT(omni_gcra_check_all(it, 2, T0, &r), OMNI_GCRA_INVALID);
    CHECK_EQ_INT(it[0].tat, 0);
    CHECK_EQ_INT(it[0].ttl_us, 77);
    CHECK_EQ_INT(r.index, 0x55555555);
    it[1].cost = 1;
    CHECK_EQ_INT(omni_gcra_check_all(it, 2, -1, &r), OMNI_GCRA_INVALID);
    CHECK_EQ_INT(omni_gcra_check_all(it, 2, T0, &r), 0);
}

static void test_out_of_range_arguments_are_refused(void)
{
    omni_gcra_limit_t l = limit(SEC, 1);
    omni_gcra_limit_t bad[] = {limit(0, 0), limit(-1, 0), limit(1, -1),
        limit(OMNI_GCRA_MAX_SPAN + 1, 0), limit(OMNI_GCRA_MAX_SPAN, 1),
        limit(1, OMNI_GCRA_MAX_SPAN), limit(INT64_MAX, INT64_MAX),
        limit(2, INT64_MAX), limit(1024, OMNI_GCRA_MAX_SPAN / 1024)};
    omni_gcra_result_t r;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!omni_gcra_limit_valid(&bad[i]));
        CHECK_EQ_INT(omni_gcra_check(&bad[i], 1, 0, T0, &r), OMNI_GCRA_INVALID);
    }
    CHECK_EQ_INT(omni_gcra_check(&l, 0, 0, T0, &r), OMNI_GCRA_INVALID);
    CHECK_EQ_INT(omni_gcra_check(&l, -1, 0, T0, &r), OMNI_GCRA_INVALID);
    CHECK_EQ_INT(omni_gcra_check(&l, OMNI_GCRA_MAX_COST + 1, 0, T0, &r),
        OMNI_GCRA_INVALID);
    CHECK_EQ_INT(omni_gcra_check(&l, 1, -1, T0, &r), OMNI_GCRA_INVALID);
    CHECK_EQ_INT(omni_gcra_check(&l, 1, 0, -1, &r), OMNI_GCRA_INVALID);
    CHECK_EQ_INT(omni_gcra_check(&l, 1, 0, OMNI_GCRA_MAX_TIME + 1, &r),
        OMNI_GCRA_INVALID);
    CHECK_EQ_INT(omni_gcra_check(&l, 1, 0, INT64_MAX, &r), OMNI_GCRA_INVALID);
}

/* The largest values accepted: UBSan reports any signed overflow. */
static void test_largest_values_do_not_overflow(void)
{
    omni_gcra_limit_t span1 = limit(OMNI_GCRA_MAX_SPAN, 0);
    omni_gcra_limit_t fast = limit(1, 999999); /* 1e6 r/s, 1e6 at once */
    omni_gcra_limit_t wide = limit(OMNI_GCRA_MAX_SPAN / 1000001, 1000000);
    omni_gcra_result_t r;
    int64_t max = OMNI_GCRA_MAX_TIME;

    CHECK(omni_gcra_limit_valid(&span1));
    CHECK(omni_gcra_limit_valid(&wide));

    CHECK_EQ_INT(omni_gcra_check(&span1, 1, 0, max, &r), 0);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.tat, max + OMNI_GCRA_MAX_SPAN);
    CHECK_EQ_INT(omni_gcra_check(&span1, 1, max, max, &r), 0);
    CHECK(r.allowed);
    CHECK_EQ_INT(omni_gcra_check(&span1, 1, max, 0, &r), 0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.retry_after_us, OMNI_GCRA_MAX_SPAN);
    CHECK_EQ_INT(r.reset_us, OMNI_GCRA_MAX_SPAN);
    CHECK_EQ_INT(omni_gcra_check(&span1, OMNI_GCRA_MAX_COST, max, max, &r), 0);
    CHECK_EQ_INT(r.retry_after_us, OMNI_GCRA_NEVER);
    /* any state is accepted: one far ahead is lowered */
    CHECK_EQ_INT(omni_gcra_check(&span1, 1, INT64_MAX, max, &r), 0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.tat, max + OMNI_GCRA_MAX_SPAN);
    CHECK_EQ_INT(r.retry_after_us, OMNI_GCRA_MAX_SPAN);
    CHECK_EQ_INT(omni_gcra_check(&span1, 1, INT64_MAX, 0, &r), 0);
    CHECK_EQ_INT(r.tat, OMNI_GCRA_MAX_SPAN);

    CHECK_EQ_INT(omni_gcra_check(&fast, OMNI_GCRA_MAX_COST, 0, max, &r), 0);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.remaining, 0);
    CHECK_EQ_INT(r.tat, max + OMNI_GCRA_MAX_COST);
    CHECK_EQ_INT(omni_gcra_check(&fast, 1, r.tat, max, &r), 0);
    CHECK(!r.allowed);
    CHECK_EQ_INT(r.retry_after_us, 1);

    CHECK_EQ_INT(omni_gcra_check(&wide, OMNI_GCRA_MAX_COST, 0, max, &r), 0);
    CHECK(r.allowed);
    CHECK_EQ_INT(r.remaining, 1);
    CHECK_EQ_INT(omni_gcra_check(&wide, OMNI_GCRA_MAX_COST, max, 0, &r), 0);
    CHECK(!r.allowed);
    CHECK(r.retry_after_us > 0);
}

/* Whatever the arrivals, a key with cost-1 requests is admitted at most
 * B + 1 + floor(d / T) times in any window of d microseconds. */
static void test_admissions_never_exceed_burst_plus_rate(void)
{
    enum {
        N = 3000
    };
    static int64_t at[N];
    omni_gcra_limit_t l;
    int64_t tat, now, n, round;
    size_t i, j, k;

    for (round = 0; round < 20; round++) {
        l = limit(rnd(1, 5000), rnd(0, 6));
        tat = 0;
        now = T0;
        n = 0;
        for (i = 0; i < N; i++) {
            now += rng() % 4 == 0 ? 0 : rnd(0, 2 * l.interval);
            if (hit(&l, 1, &tat, now).allowed)
                at[n++] = now;
        }
        CHECK(n > 0);
        for (j = 0; j < (size_t)n; j++) {
            for (k = j; k < (size_t)n; k++) {
                if ((int64_t)(k - j + 1)
                    > l.burst + 1 + (at[k] - at[j]) / l.interval) {
                    fprintf(stderr, "    T=%lld B=%lld: %zu in %lld us\n",
                        (long long)l.interval, (long long)l.burst, k - j + 1,
                        (long long)(at[k] - at[j]));
                    CHECK(0);
                }
            }
        }
    }
}

static void test_per_node_share_divides_rate_and_burst(void)
{
    omni_gcra_limit_t l = limit(SEC / 10, 20), share;

    memset(&share, 0, sizeof(share));
    CHECK_EQ_INT(omni_gcra_limit_per_node(&l, 1, &share), 0);
    CHECK_EQ_INT(share.interval, SEC / 10);
    CHECK_EQ_INT(share.burst, 20);
    CHECK_EQ_INT(omni_gcra_limit_per_node(&l, 3, &share), 0);
    CHECK_EQ_INT(share.interval, 3 * (SEC / 10));
    CHECK_EQ_INT(share.burst, 6);
    CHECK_EQ_INT(omni_gcra_limit_per_node(&l, 40, &share), 0);
    CHECK_EQ_INT(share.burst, 0);
    CHECK_EQ_INT(omni_gcra_limit_per_node(&l, 0, &share), OMNI_GCRA_INVALID);
    l = limit(OMNI_GCRA_MAX_SPAN / 2, 0);
    CHECK_EQ_INT(omni_gcra_limit_per_node(&l, 2, &share), 0);
    CHECK_EQ_INT(omni_gcra_limit_per_node(&l, 3, &share), OMNI_GCRA_INVALID);
    CHECK_EQ_INT(
        omni_gcra_limit_per_node(&l, INT64_MAX, &share), OMNI_GCRA_INVALID);
    CHECK_EQ_INT(share.interval, OMNI_GCRA_MAX_SPAN);
}

static void test_ms_rounds_durations_up(void)
{
    CHECK_EQ_INT(omni_gcra_ms(0), 0);
    CHECK_EQ_INT(omni_gcra_ms(1), 1);
    CHECK_EQ_INT(omni_gcra_ms(999), 1);
    CHECK_EQ_INT(omni_gcra_ms(1000), 1);
    CHECK_EQ_INT(omni_gcra_ms(1001), 2);
    CHECK_EQ_INT(omni_gcra_ms(6 * SEC), 6000);
    CHECK_EQ_INT(omni_gcra_ms(OMNI_GCRA_NEVER), -1);
}

/* The file's bytes next to this test's source or under the working
 * directory; NULL when neither opens (the caller's CHECK fails). */
static char *read_module_file(const char *name, size_t *len)
{
    const char *slash = strrchr(__FILE__, '/');
    int dir = slash ? (int)(slash - __FILE__) : 0;
    char path[512], *buf;
    size_t size = 1 << 16;
    FILE *f;

    snprintf(path, sizeof(path), "%.*s%s../../ngx_omni_module/%s", dir,
        __FILE__, slash ? "/" : "", name);
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(path, sizeof(path), "ngx_omni_module/%s", name);
        f = fopen(path, "rb");
    }
    if (f == NULL)
        return NULL;
    buf = malloc(size);
    if (buf != NULL)
        *len = fread(buf, 1, size, f);
    fclose(f);
    return buf;
}

static void check_embedded(const char *name, const char *embedded,
    size_t len)
{
    size_t n = 0;
    char *buf = read_module_file(name, &n);

    CHECK(buf != NULL);
    if (n != len || memcmp(buf, embedded, n) != 0) {
        fprintf(stderr,
            "    %s differs from omni_limit_lua.h: run "
            "ngx_omni_module/gen_limit_lua.sh\n",
            name);
        free(buf);
        CHECK(0);
    }
    free(buf);
    CHECK(strlen(embedded) == len);
}

/* The script the module embeds is omni_limit.lua, byte for byte. */
static void test_embedded_script_matches_omni_limit_lua(void)
{
    static const char embedded[] = OMNI_LIMIT_LUA;

    check_embedded("omni_limit.lua", embedded, sizeof(embedded) - 1);
}

/* The batch script the module sends is omni_limit_batch.lua, byte for
 * byte. */
static void test_embedded_batch_matches_omni_limit_batch_lua(void)
{
    static const char embedded[] = OMNI_LIMIT_BATCH_LUA;

    check_embedded("omni_limit_batch.lua", embedded, sizeof(embedded) - 1);
}

UNIT_MAIN(UNIT_TEST(test_burst_of_b_plus_one_is_admitted_then_denied),
    UNIT_TEST(test_burst_zero_admits_one_at_a_time),
    UNIT_TEST(test_steady_rate_is_admitted),
    UNIT_TEST(test_retry_after_is_exact),
    UNIT_TEST(test_cost_spends_several_units),
    UNIT_TEST(test_cost_above_capacity_is_never_allowed),
    UNIT_TEST(test_fractional_rate_ten_per_minute),
    UNIT_TEST(test_interval_rounds_to_the_nearest_microsecond),
    UNIT_TEST(test_remaining_and_reset_follow_the_clock),
    UNIT_TEST(test_expired_state_is_no_state),
    UNIT_TEST(test_state_ahead_of_capacity_is_lowered_to_a_full_debt),
    UNIT_TEST(test_all_or_nothing_still_lowers_states_ahead),
    UNIT_TEST(test_all_or_nothing_across_two_limits),
    UNIT_TEST(test_tightest_limit_is_reported),
    UNIT_TEST(test_no_limits_allow_with_no_index),
    UNIT_TEST(test_invalid_item_changes_nothing),
    UNIT_TEST(test_out_of_range_arguments_are_refused),
    UNIT_TEST(test_largest_values_do_not_overflow),
    UNIT_TEST(test_admissions_never_exceed_burst_plus_rate),
    UNIT_TEST(test_per_node_share_divides_rate_and_burst),
    UNIT_TEST(test_ms_rounds_durations_up),
    UNIT_TEST(test_embedded_script_matches_omni_limit_lua),
    UNIT_TEST(test_embedded_batch_matches_omni_limit_batch_lua))
