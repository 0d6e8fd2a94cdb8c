/* dashboard_series.c: stats and chart points from summed request
 * histograms, and the query parameters that select them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "services/dashboard/dashboard.h"


int omni_hist_parse(const char *text, uint64_t *hist)
{
    const char *p = text;
    char *end;
    unsigned long long v;
    int b;

    if (*p++ != '{') {
        return -1;
    }
    for (b = 0; b < OMNI_HIST_BUCKETS; b++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }
        v = strtoull(p, &end, 10);
        hist[b] = v;
        p = end;
        if (*p++ != (b == OMNI_HIST_BUCKETS - 1 ? '}' : ',')) {
            return -1;
        }
    }
    return *p == '\0' ? 0 : -1;
}


double omni_hist_quantile(
    const uint64_t *hist, uint64_t max_us, unsigned permille)
{
    uint64_t n = 0, rank, seen = 0, lower;
    double v;
    int b;

    for (b = 0; b < OMNI_HIST_BUCKETS; b++) {
        n += hist[b];
    }
    if (n == 0 || permille == 0 || permille > 1000) {
        return -1;
    }
    rank = (uint64_t)(((unsigned __int128)n * permille + 999) / 1000);

    for (b = 0; b < OMNI_HIST_BUCKETS - 1; b++) {
        seen += hist[b];
        if (seen >= rank) {
            break;
        }
    }

    lower = omni_hist_lower(b);
    if (b < 4) {
        return (double)lower;
    }
    if (b == OMNI_HIST_BUCKETS - 1) {
        return (double)(max_us > lower ? max_us : lower);
    }
    v = ((double)lower + (double)omni_hist_upper(b)) / 2;
    /* the largest latency bounds every quantile, and is closer */
    if (max_us >= lower && v > (double)max_us) {
        v = (double)max_us;
    }
    return v;
}


int omni_stats_period(const char *v)
{
    if (strcmp(v, "today") == 0) {
        return 0;
    }
    if (strcmp(v, "24h") == 0) {
        return 86400;
    }
    if (strcmp(v, "7d") == 0) {
        return 7 * 86400;
    }
    return -1;
}


static const char *const omni_chart_names[] = {
    [OMNI_CHART_QUERIES] = "queries",
    [OMNI_CHART_COST] = "cost",
    [OMNI_CHART_RESPONSE_TIME] = "response_time",
    [OMNI_CHART_ERRORS] = "errors",
};


int omni_chart_metric(const char *name)
{
    int i;

    for (i = 0;
         i < (int)(sizeof(omni_chart_names) / sizeof(omni_chart_names[0]));
         i++) {
        if (strcmp(name, omni_chart_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}


const char *omni_chart_metric_name(omni_chart_metric_t metric)
{
    return omni_chart_names[metric];
}


int omni_chart_bucket(const char *v)
{
    if (v == NULL) {
        return -1;
    }
    if (strcmp(v, "5m") == 0) {
        return 300;
    }
    if (strcmp(v, "1h") == 0) {
        return 3600;
    }
    return -1;
}


const char *omni_chart_bucket_name(int width)
{
    return width == 3600 ? "1h" : "5m";
}


int omni_chart_hours(const char *v)
{
    char *end;
    long n;

    if (*v < '0' || *v > '9') {
        return -1;
    }
    n = strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > OMNI_CHART_MAX_HOURS) {
        return -1;
    }
    return (int)n;
}


/* The shortest of %.15g, %.16g, %.17g that reads back as the same double:
 * clients get the exact value without 17 digits of noise. */
static int omni_put_double(struct evbuffer *out, double d)
{
    char buf[32];
    int prec;

    for (prec = 15; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    return evbuffer_add_printf(out, "%.*g", prec, d) < 0 ? -1 : 0;
}


/* Microseconds as milliseconds (0.1 us resolution), or null when < 0. */
static int omni_put_ms(struct evbuffer *out, double us)
{
    if (us < 0) {
        return evbuffer_add(out, "null", 4);
    }
    return evbuffer_add_printf(out, "%.4f", us / 1000) < 0 ? -1 : 0;
}


/* "avg_ms":..,"p50_ms":..,"p95_ms":..,"p99_ms":.. */
static int omni_put_latency(struct evbuffer *out, const omni_dash_totals_t *t)
{
    static const unsigned q[] = {500, 950, 990};
    static const char *names[] = {"p50", "p95", "p99"};
    int i, rc;

    rc = evbuffer_add(out, "\"avg_ms\":", 9);
    rc |= omni_put_ms(out, t->count ? (double)t->sum_us / t->count : -1);
    for (i = 0; i < 3; i++) {
        rc |= evbuffer_add_printf(out, ",\"%s_ms\":", names[i]) < 0;
        rc |= omni_put_ms(out, t->count && t->has_hist ? omni_hist_quantile(
                                   t->hist, t->max_us, q[i])
                                                       : -1);
    }
    return rc ? -1 : 0;
}


/* A cost as Postgres printed the numeric sum: written as it is (exact),
 * when it is a plain decimal number; 0 when absent, null for anything else
 * (a NaN cost in the ledger). */
static int omni_put_cost(struct evbuffer *out, const char *cost)
{
    size_t i, digits = 0, dots = 0;

    if (cost == NULL || cost[0] == '\0') {
        return evbuffer_add(out, "0", 1);
    }
    for (i = cost[0] == '-'; cost[i] != '\0'; i++) {
        if (cost[i] >= '0' && cost[i] <= '9') {
            digits++;
        } else if (cost[i] == '.' && digits > 0 && dots++ == 0) {
            continue;
        } else {
            return evbuffer_add(out, "null", 4);
        }
    }
    if (digits == 0 || cost[i - 1] == '.') {
        return evbuffer_add(out, "null", 4);
    }
    return evbuffer_add(out, cost, i);
}


static int omni_put_error_rate(
    struct evbuffer *out, const omni_dash_totals_t *t)
{
    return omni_put_double(out, t->count ? (double)t->errors / t->count : 0);
}


int omni_stats_write(struct evbuffer *out, const char *period, const char *from,
    const char *to, const omni_dash_totals_t *t)
{
    int rc;

    rc =
        evbuffer_add_printf(out,
            "{\"period\":\"%s\",\"from\":\"%s\",\"to\":\"%s\","
            "\"requests\":%llu,\"errors\":%llu,\"client_errors\":%llu,"
            "\"error_rate\":",
            period, from, to, (unsigned long long)t->count,
            (unsigned long long)t->errors, (unsigned long long)t->client_errors)
        < 0;
    rc |= omni_put_error_rate(out, t);
    rc |= evbuffer_add(out, ",", 1);
    rc |= omni_put_latency(out, t);
    rc |= evbuffer_add(out, ",\"max_ms\":", 10);
    rc |= omni_put_ms(out, t->count ? (double)t->max_us : -1);
    rc |= evbuffer_add(out, ",\"cost\":", 8);
    rc |= omni_put_cost(out, t->cost);
    rc |= evbuffer_add_printf(out,
              ",\"tokens\":%lld,\"active_mcp_servers\":%lld,"
              "\"open_circuit_breakers\":%lld}",
              (long long)t->tokens, (long long)t->mcp_active,
              (long long)t->mcp_open)
          < 0;
    return rc ? -1 : 0;
}


int omni_chart_point_write(struct evbuffer *out, omni_chart_metric_t metric,
    const char *t, const omni_dash_totals_t *v)
{
    int rc;

    rc = evbuffer_add_printf(out, "{\"t\":\"%s\",", t) < 0;

    switch (metric) {

    case OMNI_CHART_QUERIES:
        rc |= evbuffer_add_printf(
                  out, "\"value\":%llu}", (unsigned long long)v->count)
              < 0;
        break;

    case OMNI_CHART_COST:
        rc |= evbuffer_add(out, "\"value\":", 8);
        rc |= omni_put_cost(out, v->cost);
        rc |=
            evbuffer_add_printf(out, ",\"tokens\":%lld}", (long long)v->tokens)
            < 0;
        break;

    case OMNI_CHART_RESPONSE_TIME:
        rc |= evbuffer_add_printf(
                  out, "\"requests\":%llu,", (unsigned long long)v->count)
              < 0;
        rc |= omni_put_latency(out, v);
        rc |= evbuffer_add(out, "}", 1);
        break;

    case OMNI_CHART_ERRORS:
        rc |= evbuffer_add_printf(out,
                  "\"value\":%llu,\"client_errors\":%llu,\"error_rate\":",
                  (unsigned long long)v->errors,
                  (unsigned long long)v->client_errors)
              < 0;
        rc |= omni_put_error_rate(out, v);
        rc |= evbuffer_add(out, "}", 1);
        break;
    }
    return rc ? -1 : 0;
}
