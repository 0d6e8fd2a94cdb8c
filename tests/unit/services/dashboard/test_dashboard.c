/* test_dashboard.c: configuration rules, secret redaction, histogram
 * quantiles, stats/chart JSON and activity event types. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "services/dashboard/activity.h"
#include "services/dashboard/dashboard.h"
#include "unit.h"

static omni_arena_t arena;

static omni_json_t *parse(const char *text)
{
    char err[128];

    return omni_json_parse(&arena, text, strlen(text), NULL, err, sizeof(err));
}

/* omni_settings_check on text; the field it names, or "" when valid. */
static const char *check(const char *key, const char *text)
{
    static char field[128];
    char msg[256];
    omni_json_t *v = parse(text);

    if (v == NULL)
        return "(unparsable test input)";
    if (omni_settings_check(key, v, field, sizeof(field), msg, sizeof(msg))
        == 0)
        return "";
    /* the message names the field too */
    if (strstr(msg, field) != msg)
        return "(message does not start with the field)";
    return field;
}

/* SPEC section 6: the platform's shapes and defaults */
#define ALERTS_OK                                                              \
    "{\"cost_daily\": 100, \"error_rate\": 0.05, "                             \
    "\"response_time_p99\": 5000"
#define CHARTS_OK                                                              \
    "{\"cost_period\": \"today\", \"queries_hours\": 24, "                     \
    "\"response_time_hours\": 24"
#define DEV_OK                                                                 \
    "{\"websocket_debug\": true, \"quick_login\": false, "                     \
    "\"quick_login_email\": \"\", \"quick_login_password\": \"\""

static void test_contract_defaults_are_valid(void)
{
    CHECK_STR_EQ(check("alert_thresholds", ALERTS_OK "}"), "");
    CHECK_STR_EQ(check("chart_settings", CHARTS_OK "}"), "");
    CHECK_STR_EQ(check("dev_features", DEV_OK "}"), "");
    /* the platform's "dev features off" writes two members */
    CHECK_STR_EQ(check("dev_features",
                     "{\"websocket_debug\": false, \"quick_login\": false}"),
        "");
    CHECK_STR_EQ(check("dev_mode", "\"false\""), "");
    CHECK_STR_EQ(check("dev_mode", "\"true\""), "");
    CHECK_STR_EQ(check("live_updates", "{\"max_stored_events\": 1000}"), "");
    CHECK_STR_EQ(check("refresh_interval",
                     "{\"stats\": 5, \"charts\": 30, \"activity\": 5}"),
        "");
    omni_arena_free(&arena);
}

static void test_omni_additions_are_optional_and_checked(void)
{
    CHECK_STR_EQ(
        check("alert_thresholds", ALERTS_OK ", \"response_time_p95\": 1000, "
                                            "\"mcp_failure_count\": 3}"),
        "");
    CHECK_STR_EQ(
        check("alert_thresholds", ALERTS_OK ", \"response_time_p95\": 6000}"),
        "alert_thresholds.response_time_p95");
    CHECK_STR_EQ(check("alert_thresholds",
                     ALERTS_OK ", \"response_time_p95\": \"fast\"}"),
        "alert_thresholds.response_time_p95");
    CHECK_STR_EQ(
        check("alert_thresholds", ALERTS_OK ", \"mcp_failure_count\": 2.5}"),
        "alert_thresholds.mcp_failure_count");
    CHECK_STR_EQ(check("chart_settings",
                     CHARTS_OK ", \"bucket\": \"1h\", \"max_points\": 288}"),
        "");
    CHECK_STR_EQ(check("chart_settings", CHARTS_OK ", \"bucket\": \"10m\"}"),
        "chart_settings.bucket");
    CHECK_STR_EQ(
        check("live_updates", "{\"max_stored_events\": 10, \"enabled\": false, "
                              "\"channels\": [\"activity\"]}"),
        "");
    CHECK_STR_EQ(
        check("live_updates", "{\"max_stored_events\": 10, \"enabled\": 1}"),
        "live_updates.enabled");
    CHECK_STR_EQ(check("live_updates", "{\"max_stored_events\": 10, "
                                       "\"channels\": [\"a\", \"a\"]}"),
        "live_updates.channels");
    CHECK_STR_EQ(check("live_updates",
                     "{\"max_stored_events\": 10, \"channels\": [\"\"]}"),
        "live_updates.channels");
    omni_arena_free(&arena);
}

static void test_bad_contract_members_name_their_field(void)
{
    CHECK_STR_EQ(
        check("alert_thresholds", "{\"cost_daily\": 100, \"error_rate\": 5, "
                                  "\"response_time_p99\": 5000}"),
        "alert_thresholds.error_rate");
    CHECK_STR_EQ(
        check("alert_thresholds", "{\"cost_daily\": -1, \"error_rate\": 0.05, "
                                  "\"response_time_p99\": 5000}"),
        "alert_thresholds.cost_daily");
    CHECK_STR_EQ(check("alert_thresholds",
                     "{\"cost_daily\": 100, \"error_rate\": 0.05}"),
        "alert_thresholds.response_time_p99");
    CHECK_STR_EQ(check("alert_thresholds", "[1, 2]"), "alert_thresholds");
    CHECK_STR_EQ(check("chart_settings",
                     "{\"cost_period\": \"month\", \"queries_hours\": 24, "
                     "\"response_time_hours\": 24}"),
        "chart_settings.cost_period");
    CHECK_STR_EQ(check("chart_settings",
                     "{\"cost_period\": \"today\", \"queries_hours\": 169, "
                     "\"response_time_hours\": 24}"),
        "chart_settings.queries_hours");
    CHECK_STR_EQ(check("chart_settings",
                     "{\"cost_period\": \"today\", \"queries_hours\": 24, "
                     "\"response_time_hours\": \"24\"}"),
        "chart_settings.response_time_hours");
    CHECK_STR_EQ(check("dev_features",
                     "{\"websocket_debug\": \"yes\", \"quick_login\": false, "
                     "\"quick_login_email\": \"\", "
                     "\"quick_login_password\": \"\"}"),
        "dev_features.websocket_debug");
    CHECK_STR_EQ(check("dev_features",
                     "{\"websocket_debug\": true, \"quick_login\": true, "
                     "\"quick_login_email\": \"a@b\"}"),
        "dev_features.quick_login_password");
    CHECK_STR_EQ(check("dev_features",
                     "{\"websocket_debug\": true, \"quick_login\": true, "
                     "\"quick_login_email\": 5, "
                     "\"quick_login_password\": \"\"}"),
        "dev_features.quick_login_email");
    CHECK_STR_EQ(check("dev_mode", "true"), "dev_mode");
    CHECK_STR_EQ(check("dev_mode", "\"yes\""), "dev_mode");
    CHECK_STR_EQ(check("dev_mode", "{\"enabled\": true}"), "dev_mode");
    CHECK_STR_EQ(check("live_updates", "{\"max_stored_events\": 0}"),
        "live_updates.max_stored_events");
    CHECK_STR_EQ(check("live_updates", "{\"enabled\": true}"),
        "live_updates.max_stored_events");
    CHECK_STR_EQ(check("refresh_interval",
                     "{\"stats\": 0, \"charts\": 30, \"activity\": 5}"),
        "refresh_interval.stats");
    CHECK_STR_EQ(check("refresh_interval",
                     "{\"stats\": 5, \"charts\": 3601, \"activity\": 5}"),
        "refresh_interval.charts");
    CHECK_STR_EQ(check("refresh_interval", "{\"stats\": 5, \"charts\": 30}"),
        "refresh_interval.activity");
    omni_arena_free(&arena);
}

static void test_names_used_before_007_are_refused(void)
{
    /* the old seeds, and old names next to the new ones */
    CHECK_STR_EQ(check("alert_thresholds",
                     "{\"error_rate_percent\": 5, \"p95_ms\": 1000, "
                     "\"p99_ms\": 3000, \"mcp_failure_count\": 3}"),
        "alert_thresholds.error_rate_percent");
    CHECK_STR_EQ(check("alert_thresholds", ALERTS_OK ", \"p95_ms\": 1000}"),
        "alert_thresholds.p95_ms");
    CHECK_STR_EQ(check("alert_thresholds", ALERTS_OK ", \"p99_ms\": 1000}"),
        "alert_thresholds.p99_ms");
    CHECK_STR_EQ(
        check("chart_settings", "{\"default_hours\": 24, \"bucket\": \"5m\", "
                                "\"max_points\": 288}"),
        "chart_settings.default_hours");
    CHECK_STR_EQ(check("refresh_interval", "{\"seconds\": 30}"),
        "refresh_interval.seconds");
    /* members Omni invented but did not rename are extras */
    CHECK_STR_EQ(check("dev_features", DEV_OK ", \"show_debug_panel\": true, "
                                              "\"mock_data\": false}"),
        "");
    omni_arena_free(&arena);
}

static void test_a_renamed_member_is_named_with_its_replacement(void)
{
    char field[128], msg[256];

    CHECK_EQ_INT(
        omni_settings_check("refresh_interval", parse("{\"seconds\": 30}"),
            field, sizeof(field), msg, sizeof(msg)),
        -1);
    CHECK_STR_EQ(msg, "refresh_interval.seconds: no longer read: use stats, "
                      "charts and activity");
    omni_arena_free(&arena);
}

static void test_charts_must_fit_max_points(void)
{
    /* 48 hours of 5-minute buckets is 576 points */
    CHECK_STR_EQ(check("chart_settings",
                     "{\"cost_period\": \"today\", \"queries_hours\": 48, "
                     "\"response_time_hours\": 24, \"bucket\": \"5m\"}"),
        "chart_settings.queries_hours");
    CHECK_STR_EQ(check("chart_settings",
                     "{\"cost_period\": \"today\", \"queries_hours\": 24, "
                     "\"response_time_hours\": 48, \"bucket\": \"5m\"}"),
        "chart_settings.response_time_hours");
    CHECK_STR_EQ(check("chart_settings",
                     "{\"cost_period\": \"7d\", \"queries_hours\": 24, "
                     "\"response_time_hours\": 24, \"bucket\": \"5m\"}"),
        "chart_settings.cost_period");
    /* without a bucket the chart picks 1h when 5m would not fit */
    CHECK_STR_EQ(check("chart_settings",
                     "{\"cost_period\": \"7d\", \"queries_hours\": 168, "
                     "\"response_time_hours\": 48}"),
        "");
    CHECK_STR_EQ(check("chart_settings",
                     "{\"cost_period\": \"today\", \"queries_hours\": 168, "
                     "\"response_time_hours\": 24, \"max_points\": 100}"),
        "chart_settings.queries_hours");
    omni_arena_free(&arena);
}

static void test_known_keys_keep_members_they_do_not_name(void)
{
    CHECK_STR_EQ(check("refresh_interval",
                     "{\"stats\": 5, \"charts\": 30, \"activity\": 5, "
                     "\"ui_hint\": \"x\"}"),
        "");
    CHECK_STR_EQ(check("dev_features", DEV_OK ", \"x\": [1, \"y\"]}"), "");
    omni_arena_free(&arena);
}

static void test_other_keys_take_any_object(void)
{
    CHECK_STR_EQ(
        check("my_setting", "{\"a\": [1, {\"b\": null}], \"c\": \"x\"}"), "");
    CHECK_STR_EQ(check("my_setting", "\"text\""), "my_setting");
    omni_arena_free(&arena);
}

static void test_numbers_beyond_a_double_are_refused_with_their_path(void)
{
    CHECK_STR_EQ(check("my_setting", "{\"a\": {\"b\": [1, 1e999]}}"),
        "my_setting.a.b[1]");
    CHECK_STR_EQ(
        check("live_updates", "{\"max_stored_events\": 5, \"x\": -1e400}"),
        "live_updates.x");
    omni_arena_free(&arena);
}

static void test_secret_names(void)
{
    static const char *yes[] = {"password", "db_password", "smtpPassword",
        "PASSWORD", "client_secret", "access_token", "api_key", "apiKey",
        "APIKEY", "x-api-key", "private_key", "privateKey", "credentials",
        "pwd", "Token"};
    static const char *no[] = {"max_tokens", "tokens", "keyboard", "key",
        "passport", "secretary", "host", "api", "bucket", ""};
    size_t i;

    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!omni_secret_name(yes[i], strlen(yes[i])))
            fprintf(stderr, "    not a secret: %s\n", yes[i]);
        CHECK(omni_secret_name(yes[i], strlen(yes[i])));
    }
    for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (omni_secret_name(no[i], strlen(no[i])))
            fprintf(stderr, "    a secret: %s\n", no[i]);
        CHECK(!omni_secret_name(no[i], strlen(no[i])));
    }
}

static const char *redacted(const char *key, const char *text)
{
    static char out[512];
    struct evbuffer *b = evbuffer_new();
    size_t n;

    omni_redact_write(b, key, text, strlen(text), &arena);
    n = evbuffer_copyout(b, out, sizeof(out) - 1);
    out[n] = '\0';
    evbuffer_free(b);
    return out;
}

static void test_redaction_hides_secret_members_at_any_depth(void)
{
    omni_json_t *v = parse("{\"host\": \"mail\", \"password\": \"hunter2\", "
                           "\"servers\": [{\"token\": {\"a\": 1}}], "
                           "\"max_tokens\": 5}");

    CHECK(v != NULL);
    CHECK_EQ_INT(omni_redact(v), 2);
    CHECK_STR_EQ(redacted(NULL, "{\"host\":\"mail\",\"password\":\"hunter2\","
                                "\"servers\":[{\"token\":{\"a\":1}}],"
                                "\"max_tokens\":5}"),
        "{\"host\":\"mail\",\"password\":\"[redacted]\","
        "\"servers\":[{\"token\":\"[redacted]\"}],\"max_tokens\":5}");
    omni_arena_free(&arena);
}

static void test_redaction_hides_a_secret_key_or_unparsable_text_whole(void)
{
    CHECK_STR_EQ(
        redacted("smtp_password", "{\"value\": \"x\"}"), "\"[redacted]\"");
    CHECK_STR_EQ(redacted("smtp", "{\"value\": "), "\"[redacted]\"");
    CHECK_STR_EQ(redacted("smtp", "{\"value\": \"x\"}"), "{\"value\":\"x\"}");
    omni_arena_free(&arena);
}

static void test_hist_parse(void)
{
    uint64_t h[OMNI_HIST_BUCKETS];
    char text[1024], *p = text;
    int b;

    p += sprintf(p, "{");
    for (b = 0; b < OMNI_HIST_BUCKETS; b++)
        p += sprintf(p, "%s%d", b ? "," : "", b * 1000);
    strcpy(p, "}");
    CHECK_EQ_INT(omni_hist_parse(text, h), 0);
    CHECK_EQ_INT(h[0], 0);
    CHECK_EQ_INT(h[119], 119000);

    strcpy(p, ",1}");
    CHECK_EQ_INT(omni_hist_parse(text, h), -1);
    strcpy(p, "} ");
    CHECK_EQ_INT(omni_hist_parse(text, h), -1);
    CHECK_EQ_INT(omni_hist_parse("{1,2,3}", h), -1);
    CHECK_EQ_INT(omni_hist_parse("{-1}", h), -1);
    CHECK_EQ_INT(omni_hist_parse("", h), -1);
}

static void test_quantile_of_nothing_is_minus_one(void)
{
    uint64_t h[OMNI_HIST_BUCKETS] = {0};

    CHECK(omni_hist_quantile(h, 0, 500) < 0);
}

static void test_small_latencies_are_exact(void)
{
    uint64_t h[OMNI_HIST_BUCKETS] = {0};

    h[2] = 1;
    h[3] = 1;
    CHECK(omni_hist_quantile(h, 3, 500) == 2);
    CHECK(omni_hist_quantile(h, 3, 1000) == 3);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

/* Random latencies, log-uniform from 1 us to 100 s: every estimate is
 * within 12.5% of the exact nearest-rank quantile. */
static void test_quantiles_are_within_an_eighth_of_the_exact_ones(void)
{
    static const unsigned q[] = {10, 500, 900, 950, 990, 999, 1000};
    uint64_t h[OMNI_HIST_BUCKETS], v[997], max;
    uint64_t seed = 88172645463325252ull;
    int trial, i, n;
    size_t k;

    for (trial = 0; trial < 200; trial++) {
        memset(h, 0, sizeof(h));
        n = 1 + trial * 5 % 997;
        max = 0;
        for (i = 0; i < n; i++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v[i] = (uint64_t)exp((double)(seed % 1000000) / 1000000 * 18.4);
            h[omni_hist_bucket(v[i])]++;
            max = v[i] > max ? v[i] : max;
        }
        qsort(v, (size_t)n, sizeof(v[0]), cmp_u64);
        for (k = 0; k < sizeof(q) / sizeof(q[0]); k++) {
            uint64_t rank = ((uint64_t)n * q[k] + 999) / 1000;
            double exact = (double)v[rank - 1];
            double est = omni_hist_quantile(h, max, q[k]);

            if (fabs(est - exact) > 0.125 * exact)
                fprintf(stderr, "    n %d q %u exact %.0f estimate %.1f\n", n,
                    q[k], exact, est);
            CHECK(fabs(est - exact) <= 0.125 * exact);
        }
    }
}

static void test_quantile_never_exceeds_the_largest_latency(void)
{
    uint64_t h[OMNI_HIST_BUCKETS] = {0};
    int b = omni_hist_bucket(900);

    /* 900 us is near the bottom of its bucket [896, 1024) */
    h[b] = 10;
    CHECK(omni_hist_quantile(h, 900, 990) == 900);
    CHECK(omni_hist_quantile(h, 100000, 990)
          == (omni_hist_lower(b) + omni_hist_upper(b)) / 2.0);
}

static void test_last_bucket_reports_the_largest_latency(void)
{
    uint64_t h[OMNI_HIST_BUCKETS] = {0};

    h[OMNI_HIST_BUCKETS - 1] = 1;
    CHECK(omni_hist_quantile(h, 4000000000ull, 500) == 4000000000.0);
}

static const omni_json_t *rendered(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *text = omni_arena_alloc(&arena, n);
    char err[128];

    evbuffer_copyout(b, text, n);
    evbuffer_drain(b, n);
    return omni_json_parse(&arena, text, n, NULL, err, sizeof(err));
}

static void test_stats_json(void)
{
    struct evbuffer *b = evbuffer_new();
    omni_dash_totals_t t = {0};
    const omni_json_t *v;
    double d;
    int64_t i;

    t.count = 3;
    t.errors = 1;
    t.client_errors = 1;
    t.sum_us = 3000;
    t.max_us = 1500;
    t.has_hist = 1;
    t.hist[omni_hist_bucket(500)] = 1;
    t.hist[omni_hist_bucket(1000)] = 1;
    t.hist[omni_hist_bucket(1500)] = 1;
    omni_stats_write(
        b, "24h", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", &t);
    v = rendered(b);
    CHECK(v != NULL);
    CHECK_STR_EQ(omni_json_string(omni_json_get(v, "period")), "24h");
    CHECK(omni_json_int(omni_json_get(v, "requests"), &i) && i == 3);
    CHECK(omni_json_int(omni_json_get(v, "errors"), &i) && i == 1);
    CHECK(omni_json_int(omni_json_get(v, "client_errors"), &i) && i == 1);
    CHECK(omni_json_double(omni_json_get(v, "error_rate"), &d) && d == 1.0 / 3);
    CHECK(omni_json_double(omni_json_get(v, "avg_ms"), &d) && d == 1.0);
    CHECK(omni_json_double(omni_json_get(v, "max_ms"), &d) && d == 1.5);
    CHECK(omni_json_double(omni_json_get(v, "p50_ms"), &d)
          && fabs(d - 1.0) <= 0.125);
    CHECK(omni_json_double(omni_json_get(v, "p99_ms"), &d)
          && fabs(d - 1.5) <= 0.125 * 1.5);
    CHECK(omni_json_int(omni_json_get(v, "cost"), &i) && i == 0);
    CHECK(omni_json_int(omni_json_get(v, "tokens"), &i) && i == 0);
    CHECK(omni_json_int(omni_json_get(v, "active_mcp_servers"), &i) && i == 0);
    CHECK(
        omni_json_int(omni_json_get(v, "open_circuit_breakers"), &i) && i == 0);

    t.cost = "12.5";
    t.tokens = 4000000000LL;
    omni_stats_write(b, "7d", "a", "b", &t);
    v = rendered(b);
    CHECK(omni_json_double(omni_json_get(v, "cost"), &d) && d == 12.5);
    CHECK(omni_json_int(omni_json_get(v, "tokens"), &i) && i == 4000000000LL);

    memset(&t, 0, sizeof(t));
    omni_stats_write(b, "today", "a", "b", &t);
    v = rendered(b);
    CHECK(v != NULL);
    CHECK(omni_json_get(v, "p50_ms")->type == OMNI_JSON_NULL);
    CHECK(omni_json_get(v, "avg_ms")->type == OMNI_JSON_NULL);
    CHECK(omni_json_double(omni_json_get(v, "error_rate"), &d) && d == 0);
    evbuffer_free(b);
    omni_arena_free(&arena);
}

static void test_error_rate_is_written_exactly_and_short(void)
{
    struct evbuffer *b = evbuffer_new();
    omni_dash_totals_t t = {0};
    char text[64];
    size_t n;

    t.count = 10;
    t.errors = 1;
    omni_chart_point_write(b, OMNI_CHART_ERRORS, "T", &t);
    n = evbuffer_copyout(b, text, sizeof(text) - 1);
    text[n] = '\0';
    CHECK_STR_EQ(text, "{\"t\":\"T\",\"value\":1,\"client_errors\":0,"
                       "\"error_rate\":0.1}");
    evbuffer_free(b);
}

static void test_chart_points(void)
{
    struct evbuffer *b = evbuffer_new();
    omni_dash_totals_t t = {0};
    const omni_json_t *v;
    char text[128];
    size_t n;
    int64_t i;

    t.count = 7;
    omni_chart_point_write(b, OMNI_CHART_QUERIES, "T", &t);
    v = rendered(b);
    CHECK(omni_json_int(omni_json_get(v, "value"), &i) && i == 7);
    omni_chart_point_write(b, OMNI_CHART_COST, "T", &t);
    v = rendered(b);
    CHECK(omni_json_int(omni_json_get(v, "value"), &i) && i == 0);
    CHECK(omni_json_int(omni_json_get(v, "tokens"), &i) && i == 0);
    t.cost = "0.000396";
    t.tokens = 90;
    omni_chart_point_write(b, OMNI_CHART_COST, "T", &t);
    n = evbuffer_copyout(b, text, sizeof(text) - 1);
    text[n] = '\0';
    evbuffer_drain(b, n);
    CHECK_STR_EQ(text, "{\"t\":\"T\",\"value\":0.000396,\"tokens\":90}");
    /* a NaN in the ledger is no JSON number */
    t.cost = "NaN";
    omni_chart_point_write(b, OMNI_CHART_COST, "T", &t);
    v = rendered(b);
    CHECK(v != NULL && omni_json_get(v, "value")->type == OMNI_JSON_NULL);
    t.cost = NULL;
    t.has_hist = 1;
    t.hist[omni_hist_bucket(2000)] = 7;
    t.max_us = 2000;
    t.sum_us = 14000;
    omni_chart_point_write(b, OMNI_CHART_RESPONSE_TIME, "T", &t);
    v = rendered(b);
    CHECK(v != NULL);
    CHECK(omni_json_int(omni_json_get(v, "requests"), &i) && i == 7);
    CHECK(omni_json_get(v, "p95_ms")->type == OMNI_JSON_NUMBER);
    CHECK_STR_EQ(omni_json_string(omni_json_get(v, "t")), "T");
    evbuffer_free(b);
    omni_arena_free(&arena);
}

static void test_query_parameters(void)
{
    CHECK_EQ_INT(omni_stats_period("today"), 0);
    CHECK_EQ_INT(omni_stats_period("24h"), 86400);
    CHECK_EQ_INT(omni_stats_period("7d"), 604800);
    CHECK_EQ_INT(omni_stats_period("1d"), -1);
    CHECK_EQ_INT(omni_stats_period(""), -1);
    CHECK_EQ_INT(omni_chart_metric("response_time"), OMNI_CHART_RESPONSE_TIME);
    CHECK_EQ_INT(omni_chart_metric("latency"), -1);
    CHECK_EQ_INT(omni_chart_bucket("5m"), 300);
    CHECK_EQ_INT(omni_chart_bucket("1h"), 3600);
    CHECK_EQ_INT(omni_chart_bucket("1d"), -1);
    CHECK_EQ_INT(omni_chart_hours("1"), 1);
    CHECK_EQ_INT(omni_chart_hours("168"), 168);
    CHECK_EQ_INT(omni_chart_hours("169"), -1);
    CHECK_EQ_INT(omni_chart_hours("0"), -1);
    CHECK_EQ_INT(omni_chart_hours("+5"), -1);
    CHECK_EQ_INT(omni_chart_hours(" 5"), -1);
    CHECK_EQ_INT(omni_chart_hours("5x"), -1);
    CHECK_EQ_INT(omni_chart_hours(""), -1);
}

static void test_activity_types(void)
{
    CHECK(omni_activity_type_valid("config.updated"));
    CHECK(omni_activity_type_valid("mcp.server_2.down"));
    CHECK(omni_activity_type_valid("x"));
    CHECK(!omni_activity_type_valid(""));
    CHECK(!omni_activity_type_valid("Config.updated"));
    CHECK(!omni_activity_type_valid(".a"));
    CHECK(!omni_activity_type_valid("a."));
    CHECK(!omni_activity_type_valid("a..b"));
    CHECK(!omni_activity_type_valid("a.1b"));
    CHECK(!omni_activity_type_valid("a b"));
    CHECK(omni_activity_type_valid(
        "a234567890123456789012345678901234567890123456789012345678901234"));
    CHECK(!omni_activity_type_valid(
        "a2345678901234567890123456789012345678901234567890123456789012345"));
}

static void test_activity_record_refuses_bad_events_without_a_pool(void)
{
    /* refused before Postgres is asked: no pool exists here */
    CHECK_EQ_INT(omni_activity_record("Bad", NULL, "s", NULL, NULL, NULL), -1);
    CHECK_EQ_INT(omni_activity_record("ok", NULL, "", NULL, NULL, NULL), -1);
    CHECK_EQ_INT(omni_activity_record("ok", NULL, NULL, NULL, NULL, NULL), -1);
}

UNIT_MAIN(UNIT_TEST(test_contract_defaults_are_valid),
    UNIT_TEST(test_omni_additions_are_optional_and_checked),
    UNIT_TEST(test_bad_contract_members_name_their_field),
    UNIT_TEST(test_names_used_before_007_are_refused),
    UNIT_TEST(test_a_renamed_member_is_named_with_its_replacement),
    UNIT_TEST(test_charts_must_fit_max_points),
    UNIT_TEST(test_known_keys_keep_members_they_do_not_name),
    UNIT_TEST(test_other_keys_take_any_object),
    UNIT_TEST(test_numbers_beyond_a_double_are_refused_with_their_path),
    UNIT_TEST(test_secret_names),
    UNIT_TEST(test_redaction_hides_secret_members_at_any_depth),
    UNIT_TEST(test_redaction_hides_a_secret_key_or_unparsable_text_whole),
    UNIT_TEST(test_hist_parse),
    UNIT_TEST(test_quantile_of_nothing_is_minus_one),
    UNIT_TEST(test_small_latencies_are_exact),
    UNIT_TEST(test_quantiles_are_within_an_eighth_of_the_exact_ones),
    UNIT_TEST(test_quantile_never_exceeds_the_largest_latency),
    UNIT_TEST(test_last_bucket_reports_the_largest_latency),
    UNIT_TEST(test_stats_json),
    UNIT_TEST(test_error_rate_is_written_exactly_and_short),
    UNIT_TEST(test_chart_points), UNIT_TEST(test_query_parameters),
    UNIT_TEST(test_activity_types),
    UNIT_TEST(test_activity_record_refuses_bad_events_without_a_pool))
