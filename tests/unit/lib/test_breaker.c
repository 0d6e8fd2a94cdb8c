/* test_breaker.c: the circuit breaker's transitions, driven by a fake
 * clock and fixed random numbers. */
#include <stdint.h>

#include "lib/breaker.h"
#include "unit.h"

static const omni_breaker_conf_t conf = {
    .failure_threshold = 3, .cooldown_ms = 30000, .jitter_pct = 0};

static void test_opens_after_threshold_consecutive_failures(void)
{
    omni_breaker_t b;

    omni_breaker_init(&b);
    CHECK_EQ_INT(omni_breaker_failure(&b, &conf, 1000, 0), 0);
    CHECK_EQ_INT(omni_breaker_failure(&b, &conf, 1001, 0), 0);
    CHECK_EQ_INT(b.state, OMNI_BREAKER_CLOSED);
    CHECK_EQ_INT(omni_breaker_failure(&b, &conf, 1002, 0), 1);
    CHECK_EQ_INT(b.state, OMNI_BREAKER_OPEN);
    CHECK_EQ_INT(b.failures, 3);
    CHECK_EQ_INT(b.opened_at_ms, 1002);
    CHECK_EQ_INT(b.next_probe_ms, 31002);
}

static void test_a_success_resets_the_failure_count(void)
{
    omni_breaker_t b;

    omni_breaker_init(&b);
    omni_breaker_failure(&b, &conf, 1, 0);
    omni_breaker_failure(&b, &conf, 2, 0);
    CHECK_EQ_INT(omni_breaker_success(&b), 0);
    CHECK_EQ_INT(b.failures, 0);
    omni_breaker_failure(&b, &conf, 3, 0);
    omni_breaker_failure(&b, &conf, 4, 0);
    CHECK_EQ_INT(b.state, OMNI_BREAKER_CLOSED);
}

static void test_open_refuses_until_cooldown_then_half_opens(void)
{
    omni_breaker_t b;
    int changed;

    omni_breaker_init(&b);
    omni_breaker_failure(&b, &conf, 0, 0);
    omni_breaker_failure(&b, &conf, 0, 0);
    omni_breaker_failure(&b, &conf, 0, 0);
    CHECK_EQ_INT(omni_breaker_allow(&b, 29999, &changed), 0);
    CHECK_EQ_INT(changed, 0);
    CHECK_EQ_INT(b.state, OMNI_BREAKER_OPEN);
    CHECK_EQ_INT(omni_breaker_allow(&b, 30000, &changed), 1);
    CHECK_EQ_INT(changed, 1);
    CHECK_EQ_INT(b.state, OMNI_BREAKER_HALF_OPEN);
}

static void test_half_open_closes_on_success(void)
{
    omni_breaker_t b;

    omni_breaker_init(&b);
    b.state = OMNI_BREAKER_HALF_OPEN;
    b.failures = 5;
    CHECK_EQ_INT(omni_breaker_success(&b), 1);
    CHECK_EQ_INT(b.state, OMNI_BREAKER_CLOSED);
    CHECK_EQ_INT(b.failures, 0);
    CHECK_EQ_INT(omni_breaker_allow(&b, 0, NULL), 1);
}

static void test_half_open_reopens_on_one_failure(void)
{
    omni_breaker_t b;

    omni_breaker_init(&b);
    b.state = OMNI_BREAKER_HALF_OPEN;
    b.failures = 3;
    CHECK_EQ_INT(omni_breaker_failure(&b, &conf, 50000, 0), 1);
    CHECK_EQ_INT(b.state, OMNI_BREAKER_OPEN);
    CHECK_EQ_INT(b.opened_at_ms, 50000);
    CHECK_EQ_INT(b.next_probe_ms, 80000);
}

static void test_failures_while_open_do_not_extend_the_cooldown(void)
{
    omni_breaker_t b;

    omni_breaker_init(&b);
    omni_breaker_failure(&b, &conf, 0, 0);
    omni_breaker_failure(&b, &conf, 0, 0);
    omni_breaker_failure(&b, &conf, 0, 0);
    CHECK_EQ_INT(omni_breaker_failure(&b, &conf, 20000, 0), 0);
    CHECK_EQ_INT(b.next_probe_ms, 30000);
}

static void test_jitter_stays_within_its_percentage(void)
{
    omni_breaker_conf_t j = conf;
    omni_breaker_t b;
    uint32_t rnd;
    int64_t lo = INT64_MAX, hi = 0;

    j.failure_threshold = 1;
    j.jitter_pct = 10;
    for (rnd = 0; rnd < 100000; rnd += 7) {
        omni_breaker_init(&b);
        omni_breaker_failure(&b, &j, 1000, rnd * 2654435761u);
        CHECK(b.next_probe_ms >= 31000);
        CHECK(b.next_probe_ms <= 34000);
        lo = b.next_probe_ms < lo ? b.next_probe_ms : lo;
        hi = b.next_probe_ms > hi ? b.next_probe_ms : hi;
    }
    /* the jitter is used, not just allowed */
    CHECK(hi - lo > 2500);
}

static void test_threshold_below_one_opens_at_the_first_failure(void)
{
    omni_breaker_conf_t z = conf;
    omni_breaker_t b;

    z.failure_threshold = 0;
    omni_breaker_init(&b);
    CHECK_EQ_INT(omni_breaker_failure(&b, &z, 5, 0), 1);
    CHECK_EQ_INT(b.state, OMNI_BREAKER_OPEN);
}

static void test_state_names_round_trip(void)
{
    omni_breaker_state_t s;

    CHECK_STR_EQ(omni_breaker_state_name(OMNI_BREAKER_HALF_OPEN), "half_open");
    CHECK_EQ_INT(omni_breaker_state_parse("open", &s), 0);
    CHECK_EQ_INT(s, OMNI_BREAKER_OPEN);
    CHECK_EQ_INT(omni_breaker_state_parse("half-open", &s), -1);
    CHECK_EQ_INT(omni_breaker_state_parse(NULL, &s), -1);
}

UNIT_MAIN(UNIT_TEST(test_opens_after_threshold_consecutive_failures),
    UNIT_TEST(test_a_success_resets_the_failure_count),
    UNIT_TEST(test_open_refuses_until_cooldown_then_half_opens),
    UNIT_TEST(test_half_open_closes_on_success),
    UNIT_TEST(test_half_open_reopens_on_one_failure),
    UNIT_TEST(test_failures_while_open_do_not_extend_the_cooldown),
    UNIT_TEST(test_jitter_stays_within_its_percentage),
    UNIT_TEST(test_threshold_below_one_opens_at_the_first_failure),
    UNIT_TEST(test_state_names_round_trip))
