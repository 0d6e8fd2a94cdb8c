/* test_rollup.c: per-minute rollup accumulation and its flush parameters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "http/metrics.h"
#include "services/dashboard/rollup.h"
#include "unit.h"

#define T0 1700000100 /* a multiple of 60 */

static const omni_route_t routes[] = {
    {"GET", "/api/v1/health", NULL, 0},
    {"PUT", "/api/v1/config/{key}", NULL, 0},
};

static omni_rollup_table_t *table_new(void)
{
    return calloc(1, sizeof(omni_rollup_table_t));
}

/* The entry for a key, or NULL. */
static omni_rollup_entry_t *find(
    omni_rollup_table_t *t, int64_t minute, int route, int status)
{
    int i;

    for (i = 0; i < OMNI_ROLLUP_MAX; i++) {
        omni_rollup_entry_t *e = &t->e[i];

        if (e->minute == minute && e->route == route && e->status == status)
            return e;
    }
    return NULL;
}

static int count_used(const omni_rollup_table_t *t)
{
    int i, n = 0;

    for (i = 0; i < OMNI_ROLLUP_MAX; i++)
        n += t->e[i].minute != 0;
    return n;
}

static uint64_t hist_total(const omni_rollup_entry_t *e)
{
    uint64_t n = 0;
    int b;

    for (b = 0; b < OMNI_HIST_BUCKETS; b++)
        n += e->hist[b];
    return n;
}

static void test_record_lands_in_its_minute(void)
{
    omni_rollup_table_t *t = table_new();
    omni_rollup_entry_t *e;

    CHECK(t != NULL);
    omni_rollup_record(t, T0 + 25, 0, 200, 100);
    CHECK_EQ_INT(t->used, 1);
    CHECK_EQ_INT(count_used(t), 1);
    e = find(t, T0, 0, 200);
    CHECK(e != NULL);
    CHECK_EQ_INT(e->count, 1);
    CHECK_EQ_INT(t->dropped, 0);
    free(t);
}

static void test_same_minute_shares_an_entry(void)
{
    omni_rollup_table_t *t = table_new();
    omni_rollup_entry_t *e;

    CHECK(t != NULL);
    omni_rollup_record(t, T0, 0, 200, 1);
    omni_rollup_record(t, T0 + 59, 0, 200, 1);
    CHECK_EQ_INT(t->used, 1);
    e = find(t, T0, 0, 200);
    CHECK(e != NULL);
    CHECK_EQ_INT(e->count, 2);

    /* the next second starts the next minute; the one before, the last */
    omni_rollup_record(t, T0 + 60, 0, 200, 1);
    omni_rollup_record(t, T0 - 1, 0, 200, 1);
    CHECK_EQ_INT(t->used, 3);
    CHECK(find(t, T0 + 60, 0, 200) != NULL);
    CHECK_EQ_INT(find(t, T0 + 60, 0, 200)->count, 1);
    CHECK(find(t, T0 - 60, 0, 200) != NULL);
    CHECK_EQ_INT(find(t, T0 - 60, 0, 200)->count, 1);
    CHECK_EQ_INT(find(t, T0, 0, 200)->count, 2);
    free(t);
}

static void test_route_and_status_make_distinct_keys(void)
{
    omni_rollup_table_t *t = table_new();

    CHECK(t != NULL);
    omni_rollup_record(t, T0 + 1, 0, 200, 1);
    omni_rollup_record(t, T0 + 2, 1, 200, 1);
    omni_rollup_record(t, T0 + 3, 0, 404, 1);
    omni_rollup_record(t, T0 + 4, -1, 404, 1);
    omni_rollup_record(t, T0 + 5, 0, 200, 1);
    CHECK_EQ_INT(t->used, 4);
    CHECK_EQ_INT(count_used(t), 4);
    CHECK_EQ_INT(find(t, T0, 0, 200)->count, 2);
    CHECK_EQ_INT(find(t, T0, 1, 200)->count, 1);
    CHECK_EQ_INT(find(t, T0, 0, 404)->count, 1);
    CHECK_EQ_INT(find(t, T0, -1, 404)->count, 1);
    free(t);
}

static void test_record_sums_maxes_and_buckets_latency(void)
{
    omni_rollup_table_t *t = table_new();
    omni_rollup_entry_t *e;

    CHECK(t != NULL);
    omni_rollup_record(t, T0, 0, 200, 10);
    omni_rollup_record(t, T0, 0, 200, 1000);
    omni_rollup_record(t, T0, 0, 200, 5);
    omni_rollup_record(t, T0, 0, 200, 11);
    e = find(t, T0, 0, 200);
    CHECK(e != NULL);
    CHECK_EQ_INT(e->count, 4);
    CHECK_EQ_INT(e->sum_us, 1026);
    CHECK_EQ_INT(e->max_us, 1000);
    CHECK_EQ_INT(e->hist[omni_hist_bucket(10)], 2); /* 10 and 11 share one */
    CHECK_EQ_INT(e->hist[omni_hist_bucket(1000)], 1);
    CHECK_EQ_INT(e->hist[omni_hist_bucket(5)], 1);
    CHECK_EQ_INT(hist_total(e), 4);
    free(t);
}

static void test_huge_latency_goes_to_the_last_bucket(void)
{
    omni_rollup_table_t *t = table_new();
    omni_rollup_entry_t *e;

    CHECK(t != NULL);
    omni_rollup_record(t, T0, 0, 504, UINT64_MAX / 2);
    e = find(t, T0, 0, 504);
    CHECK(e != NULL);
    CHECK(e->max_us == UINT64_MAX / 2);
    CHECK_EQ_INT(e->hist[OMNI_HIST_BUCKETS - 1], 1);
    free(t);
}

static void test_add_accumulates_counts_and_keeps_the_max(void)
{
    omni_rollup_table_t *t = table_new();
    omni_rollup_entry_t *e;
    uint64_t h[OMNI_HIST_BUCKETS] = {0};

    CHECK(t != NULL);
    omni_rollup_record(t, T0, 0, 200, 50);
    h[omni_hist_bucket(20)] = 2;
    h[omni_hist_bucket(30)] += 1;
    omni_rollup_add(t, T0, 0, 200, 3, 70, 30, h);
    e = find(t, T0, 0, 200);
    CHECK(e != NULL);
    CHECK_EQ_INT(t->used, 1);
    CHECK_EQ_INT(e->count, 4);
    CHECK_EQ_INT(e->sum_us, 120);
    CHECK_EQ_INT(e->max_us, 50);
    CHECK_EQ_INT(hist_total(e), 4);
    CHECK_EQ_INT(e->hist[omni_hist_bucket(20)], 2);

    omni_rollup_add(t, T0, 0, 200, 1, 900, 900, h);
    CHECK_EQ_INT(e->max_us, 900);

    /* a new key through add */
    omni_rollup_add(t, T0 + 60, 1, 500, 2, 10, 6, h);
    CHECK_EQ_INT(t->used, 2);
    CHECK(find(t, T0 + 60, 1, 500) != NULL);
    CHECK_EQ_INT(find(t, T0 + 60, 1, 500)->count, 2);
    free(t);
}

static void test_merge_adds_tables(void)
{
    omni_rollup_table_t *a = table_new(), *b = table_new();
    omni_rollup_entry_t *e;

    CHECK(a != NULL && b != NULL);
    omni_rollup_record(a, T0, 0, 200, 10);
    omni_rollup_record(a, T0, 1, 201, 20);
    a->dropped = 3;
    omni_rollup_record(b, T0, 0, 200, 40);
    omni_rollup_record(b, T0, 0, 200, 2);
    omni_rollup_record(b, T0 + 60, 0, 200, 7);
    b->dropped = 4;

    omni_rollup_merge(a, b);
    CHECK_EQ_INT(a->used, 3);
    CHECK_EQ_INT(a->dropped, 7);
    e = find(a, T0, 0, 200);
    CHECK(e != NULL);
    CHECK_EQ_INT(e->count, 3);
    CHECK_EQ_INT(e->sum_us, 52);
    CHECK_EQ_INT(e->max_us, 40);
    CHECK_EQ_INT(hist_total(e), 3);
    CHECK_EQ_INT(e->hist[omni_hist_bucket(2)], 1);
    CHECK_EQ_INT(find(a, T0, 1, 201)->count, 1);
    CHECK_EQ_INT(find(a, T0 + 60, 0, 200)->sum_us, 7);
    /* the source is left alone */
    CHECK_EQ_INT(b->used, 2);
    CHECK_EQ_INT(find(b, T0, 0, 200)->count, 2);
    free(a);
    free(b);
}

static void test_merge_into_empty_table_copies(void)
{
    omni_rollup_table_t *a = table_new(), *b = table_new();
    int i;

    CHECK(a != NULL && b != NULL);
    for (i = 0; i < 50; i++)
        omni_rollup_record(b, T0 + 60 * (i % 5), i, 200, (uint64_t)i);
    omni_rollup_merge(a, b);
    CHECK_EQ_INT(a->used, 50);
    for (i = 0; i < 50; i++) {
        omni_rollup_entry_t *e = find(a, T0 + 60 * (i % 5), i, 200);

        CHECK(e != NULL);
        CHECK_EQ_INT(e->count, 1);
        CHECK_EQ_INT(e->sum_us, i);
    }
    free(a);
    free(b);
}

static void test_full_table_counts_dropped_instead_of_overwriting(void)
{
    omni_rollup_table_t *t = table_new();
    uint64_t h[OMNI_HIST_BUCKETS] = {0};
    int i, n = OMNI_ROLLUP_MAX + 20, stored = 0;

    CHECK(t != NULL);
    for (i = 0; i < n; i++)
        omni_rollup_record(t, T0, i, 200, (uint64_t)i);

    CHECK(t->dropped > 0);
    CHECK_EQ_INT(t->used + (int)t->dropped, n);
    CHECK(t->used >= OMNI_ROLLUP_MAX - 1);
    CHECK(t->used <= OMNI_ROLLUP_MAX);
    /* whatever was stored is intact and still its own key */
    for (i = 0; i < n; i++) {
        omni_rollup_entry_t *e = find(t, T0, i, 200);

        if (e == NULL)
            continue;
        stored++;
        CHECK_EQ_INT(e->count, 1);
        CHECK_EQ_INT(e->sum_us, i);
    }
    CHECK_EQ_INT(stored, t->used);
    CHECK_EQ_INT(count_used(t), t->used);

    /* known keys still count; new keys, by record or add, are dropped */
    omni_rollup_record(t, T0, 0, 200, 5);
    CHECK_EQ_INT(find(t, T0, 0, 200)->count, 2);
    CHECK_EQ_INT(t->used + (int)t->dropped, n);
    omni_rollup_record(t, T0 + 60, 0, 200, 5);
    CHECK_EQ_INT(t->used + (int)t->dropped, n + 1);
    CHECK(find(t, T0 + 60, 0, 200) == NULL);
    h[0] = 6;
    omni_rollup_add(t, T0, 0, 599, 6, 0, 0, h);
    CHECK_EQ_INT(t->used + (int)t->dropped, n + 7);
    CHECK_EQ_INT(count_used(t), t->used);
    free(t);
}

static void test_merge_into_full_table_counts_dropped(void)
{
    omni_rollup_table_t *a = table_new(), *b = table_new();
    int i, used;
    uint64_t dropped;

    CHECK(a != NULL && b != NULL);
    for (i = 0; i < OMNI_ROLLUP_MAX + 5; i++)
        omni_rollup_record(a, T0, i, 200, 1);
    used = a->used;
    dropped = a->dropped;
    omni_rollup_record(b, T0, 0, 200, 1);    /* a key a holds */
    omni_rollup_record(b, T0, 1000, 200, 1); /* one it cannot */
    omni_rollup_record(b, T0, 1000, 200, 1);
    omni_rollup_merge(a, b);
    CHECK_EQ_INT(a->used, used);
    CHECK_EQ_INT(a->dropped, dropped + 2);
    CHECK_EQ_INT(find(a, T0, 0, 200)->count, 2);
    free(a);
    free(b);
}

/* Runs omni_rollup_params and copies each array into out[i]. */
static int params(const omni_rollup_table_t *t, char out[7][4096])
{
    struct evbuffer *bufs[7];
    int i, rc;

    for (i = 0; i < 7; i++)
        bufs[i] = evbuffer_new();
    rc = omni_rollup_params(t, bufs);
    for (i = 0; i < 7; i++) {
        size_t n = evbuffer_get_length(bufs[i]);
        const char *s = (const char *)evbuffer_pullup(bufs[i], -1);

        /* the NUL is part of the buffer: the flush passes it as a string */
        if (n == 0 || n > 4096 || s[n - 1] != '\0' || strlen(s) != n - 1)
            rc = -2;
        else
            memcpy(out[i], s, n);
        evbuffer_free(bufs[i]);
    }
    return rc;
}

/* "\"{h0,...,h119}\"" for e, appended to out. */
static void hist_literal(const omni_rollup_entry_t *e, char *out, size_t size)
{
    size_t off = strlen(out);
    int b;

    off += (size_t)snprintf(out + off, size - off, "\"{");
    for (b = 0; b < OMNI_HIST_BUCKETS; b++)
        off += (size_t)snprintf(out + off, size - off, b ? ",%llu" : "%llu",
            (unsigned long long)e->hist[b]);
    snprintf(out + off, size - off, "}\"");
}

static int metrics_ready(void)
{
    static int done, rc;

    if (!done) {
        rc = omni_metrics_init(routes, 2);
        done = 1;
    }
    return rc;
}

static void test_params_of_empty_table_are_empty_arrays(void)
{
    omni_rollup_table_t *t = table_new();
    char out[7][4096];
    int i;

    CHECK(t != NULL);
    CHECK_EQ_INT(params(t, out), 0);
    for (i = 0; i < 7; i++)
        CHECK_STR_EQ(out[i], "{}");
    free(t);
}

static void test_params_render_one_entry(void)
{
    omni_rollup_table_t *t = table_new();
    char out[7][4096], want[4096];
    int i;

    CHECK(t != NULL);
    CHECK_EQ_INT(metrics_ready(), 0);
    CHECK_STR_EQ(omni_metrics_route_label(0), "GET /api/v1/health");
    omni_rollup_record(t, T0 + 7, 0, 200, 10);
    omni_rollup_record(t, T0 + 8, 0, 200, 1000);

    CHECK_EQ_INT(params(t, out), 0);
    CHECK_STR_EQ(out[0], "{1700000100}");
    CHECK_STR_EQ(out[1], "{\"GET /api/v1/health\"}");
    CHECK_STR_EQ(out[2], "{200}");
    CHECK_STR_EQ(out[3], "{2}");
    CHECK_STR_EQ(out[4], "{1010}");
    CHECK_STR_EQ(out[5], "{1000}");

    strcpy(want, "{\"{");
    for (i = 0; i < OMNI_HIST_BUCKETS; i++) {
        int n = (i == omni_hist_bucket(10)) + (i == omni_hist_bucket(1000));

        snprintf(want + strlen(want), sizeof(want) - strlen(want),
            i ? ",%d" : "%d", n);
    }
    strcat(want, "}\"}");
    CHECK_STR_EQ(out[6], want);
    CHECK(strstr(out[6], ",1,") != NULL);
    free(t);
}

static void test_params_render_two_entries_in_table_order(void)
{
    omni_rollup_table_t *t = table_new();
    omni_rollup_entry_t *first = NULL, *second = NULL;
    char out[7][4096], want[7][4096];
    const char *label[2];
    int i;

    CHECK(t != NULL);
    CHECK_EQ_INT(metrics_ready(), 0);
    CHECK_STR_EQ(omni_metrics_route_label(-1), "unmatched");
    CHECK_STR_EQ(omni_metrics_route_label(1), "PUT /api/v1/config/{key}");
    omni_rollup_record(t, T0, 1, 204, 3);
    omni_rollup_record(t, T0 + 61, -1, 404, 70);
    omni_rollup_record(t, T0 + 62, -1, 404, 30);

    /* entries come out in slot order, the same order in every array */
    for (i = 0; i < OMNI_ROLLUP_MAX; i++) {
        if (t->e[i].minute == 0)
            continue;
        if (first == NULL)
            first = &t->e[i];
        else
            second = &t->e[i];
    }
    CHECK(first != NULL && second != NULL);
    label[0] = first->route == 1 ? "PUT /api/v1/config/{key}" : "unmatched";
    label[1] = second->route == 1 ? "PUT /api/v1/config/{key}" : "unmatched";

    snprintf(want[0], sizeof(want[0]), "{%lld,%lld}", (long long)first->minute,
        (long long)second->minute);
    snprintf(want[1], sizeof(want[1]), "{\"%s\",\"%s\"}", label[0], label[1]);
    snprintf(
        want[2], sizeof(want[2]), "{%d,%d}", first->status, second->status);
    snprintf(want[3], sizeof(want[3]), "{%llu,%llu}",
        (unsigned long long)first->count, (unsigned long long)second->count);
    snprintf(want[4], sizeof(want[4]), "{%llu,%llu}",
        (unsigned long long)first->sum_us, (unsigned long long)second->sum_us);
    snprintf(want[5], sizeof(want[5]), "{%llu,%llu}",
        (unsigned long long)first->max_us, (unsigned long long)second->max_us);
    strcpy(want[6], "{");
    hist_literal(first, want[6], sizeof(want[6]));
    strcat(want[6], ",");
    hist_literal(second, want[6], sizeof(want[6]));
    strcat(want[6], "}");

    CHECK_EQ_INT(params(t, out), 0);
    for (i = 0; i < 7; i++)
        CHECK_STR_EQ(out[i], want[i]);

    /* and the values are the ones recorded, whichever order */
    CHECK(strcmp(out[0], "{1700000100,1700000160}") == 0
          || strcmp(out[0], "{1700000160,1700000100}") == 0);
    CHECK(
        strcmp(out[1], "{\"PUT /api/v1/config/{key}\",\"unmatched\"}") == 0
        || strcmp(out[1], "{\"unmatched\",\"PUT /api/v1/config/{key}\"}") == 0);
    CHECK(strcmp(out[2], "{204,404}") == 0 || strcmp(out[2], "{404,204}") == 0);
    CHECK(strcmp(out[3], "{1,2}") == 0 || strcmp(out[3], "{2,1}") == 0);
    CHECK(strcmp(out[4], "{3,100}") == 0 || strcmp(out[4], "{100,3}") == 0);
    CHECK(strcmp(out[5], "{3,70}") == 0 || strcmp(out[5], "{70,3}") == 0);
    free(t);
}

UNIT_MAIN(UNIT_TEST(test_record_lands_in_its_minute),
    UNIT_TEST(test_same_minute_shares_an_entry),
    UNIT_TEST(test_route_and_status_make_distinct_keys),
    UNIT_TEST(test_record_sums_maxes_and_buckets_latency),
    UNIT_TEST(test_huge_latency_goes_to_the_last_bucket),
    UNIT_TEST(test_add_accumulates_counts_and_keeps_the_max),
    UNIT_TEST(test_merge_adds_tables),
    UNIT_TEST(test_merge_into_empty_table_copies),
    UNIT_TEST(test_full_table_counts_dropped_instead_of_overwriting),
    UNIT_TEST(test_merge_into_full_table_counts_dropped),
    UNIT_TEST(test_params_of_empty_table_are_empty_arrays),
    UNIT_TEST(test_params_render_one_entry),
    UNIT_TEST(test_params_render_two_entries_in_table_order))
