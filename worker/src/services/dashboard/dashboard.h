/* dashboard.h: the dashboard service (its table, for core/services.c), its
 * handlers and their start-up, and its pure logic (settings rules, secret
 * redaction, histogram quantiles, stats and chart JSON), which does no
 * I/O. */
#ifndef OMNI_DASHBOARD_H
#define OMNI_DASHBOARD_H

#include <stddef.h>
#include <stdint.h>

#include "lib/arena.h"
#include "lib/hist.h"
#include "lib/json.h"
#include "http/service.h"
#include "services/dashboard/activity.h"

struct evbuffer;

extern const omni_service_t omni_dashboard_service;

/* SQL: a timestamptz column as RFC 3339 UTC text with microseconds. */
#define OMNI_SQL_TIMESTAMP(col)                                                \
    "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* What a secret's value is replaced with for readers who may not see it. */
#define OMNI_REDACTED "[redacted]"

/* Register the statements of the settings, stats/charts and activity
 * handlers (called by the service's init). 0, or -1 when the statement
 * table is full. */
int omni_settings_init(void);
int omni_dashboard_stats_init(void);
int omni_activity_init(void);

/* Worker processes: deletes the dashboard_cache rows that expired a minute
 * ago, a second after start and then every minute (start: 0, or -1 when
 * the timer cannot be armed). */
int omni_dashboard_cache_sweep_start(void);
void omni_dashboard_cache_sweep_stop(void);

/* handlers (the routes in dashboard.c) */
void omni_settings_list(omni_req_t *r);
void omni_settings_get(omni_req_t *r);
void omni_settings_put(omni_req_t *r);
void omni_preferences_get(omni_req_t *r);
void omni_preferences_put(omni_req_t *r);
void omni_dashboard_stats(omni_req_t *r);
void omni_dashboard_chart(omni_req_t *r);
void omni_dashboard_activity(omni_req_t *r);


/* --- settings rules (dashboard_rules.c) ---------------------------- */

/* Checks value for configuration key `key`. The seeded keys have the
 * platform's shapes (SPEC section 6; README): its members are required with
 * their types and ranges, Omni's additions are optional and checked when
 * present, other members are allowed, and the names Omni used before
 * migration 007 ("error_rate_percent", "seconds", ...) are refused;
 * dev_mode is the JSON string "true" or "false". Any other key takes any
 * JSON object. Every number must fit a double. Returns 0 when valid;
 * otherwise -1 with the dotted path of the offending field in field
 * ("alert_thresholds.error_rate", or the key itself when the whole value is
 * wrong) and a message naming it in msg; both always NUL-terminated. */
int omni_settings_check(const char *key, const omni_json_t *value, char *field,
    size_t fieldlen, char *msg, size_t msglen);

/* 1 when an object member or configuration key called name[0..len) holds a
 * secret: one of its words (split at '_', '-', '.', ' ' and lower-to-upper
 * case changes) is password, passwd, passphrase, pwd, secret, token,
 * apikey, credential or credentials, or two adjacent words are api key or
 * private key. "access_token" and "smtpPassword" are secrets, "max_tokens"
 * is not. Pure. */
int omni_secret_name(const char *name, size_t len);

/* Replaces, in place and at any depth, the value of every object member
 * whose name is a secret with the string OMNI_REDACTED. Returns how many
 * were replaced. The replacement node is shared and read-only. */
int omni_redact(omni_json_t *v);

/* Appends the JSON text[0..len) as a reader who may not see secrets gets
 * it: OMNI_REDACTED as a whole when key (may be NULL) is a secret or the
 * text does not parse, else with omni_redact() applied. Parses into
 * `arena`. 0, or -1 when out cannot grow. */
int omni_redact_write(struct evbuffer *out, const char *key, const char *text,
    size_t len, omni_arena_t *arena);


/* --- stats and charts (dashboard_series.c) ------------------------------ */

/* Requests over a span, from omni_metrics.request_summary, and LLM usage,
 * from omnichat.usage_rollup. */
typedef struct {
    uint64_t count;
    uint64_t errors;        /* status >= 500 */
    uint64_t client_errors; /* status 400..499 */
    uint64_t sum_us;
    uint64_t max_us;
    int has_hist; /* hist is filled in */
    uint64_t hist[OMNI_HIST_BUCKETS];
    int64_t mcp_active; /* stats: enabled MCP servers not open */
    int64_t mcp_open;   /* stats: MCP servers whose breaker is open */
    const char *cost;   /* LLM cost: Postgres numeric text; NULL = 0 */
    int64_t tokens;     /* LLM input + output tokens */
} omni_dash_totals_t;

/* Parses Postgres' text form of an array of OMNI_HIST_BUCKETS
 * non-negative integers ("{0,3,...}") into hist. 0, or -1 when malformed
 * (hist is then partly written). */
int omni_hist_parse(const char *text, uint64_t *hist);

/* Estimated nearest-rank quantile, in microseconds, of the latencies
 * counted in hist (n of them in all, the largest being max_us): the
 * midpoint of the bucket holding the ceil(permille * n / 1000)-th
 * smallest, exact for buckets 0-3, never above max_us (max_us for the open
 * last bucket). Within 12.5% of the true value in every bucket but the
 * last. permille is 1..1000. Returns -1 when hist is empty. Pure. */
double omni_hist_quantile(
    const uint64_t *hist, uint64_t max_us, unsigned permille);

/* ?period= of /api/v1/dashboard/stats: "today" -> 0 (since 00:00 UTC),
 * "24h" -> 86400, "7d" -> 604800; -1 for anything else. */
int omni_stats_period(const char *v);

typedef enum {
    OMNI_CHART_QUERIES,
    OMNI_CHART_COST,
    OMNI_CHART_RESPONSE_TIME,
    OMNI_CHART_ERRORS
} omni_chart_metric_t;

/* Chart name -> metric, or -1. */
int omni_chart_metric(const char *name);

/* ?bucket= -> its width in seconds ("5m" 300, "1h" 3600), or -1. */
int omni_chart_bucket(const char *v);

/* ?hours= -> 1..OMNI_CHART_MAX_HOURS, or -1 when not such an integer. */
#define OMNI_CHART_MAX_HOURS 168
int omni_chart_hours(const char *v);

/* Appends the body of GET /api/v1/dashboard/stats (see README) for totals
 * t over [from, to] (RFC 3339 text). 0, or -1 when out cannot grow. */
int omni_stats_write(struct evbuffer *out, const char *period, const char *from,
    const char *to, const omni_dash_totals_t *t);

/* Appends one chart point {"t":...,...} of `metric` for bucket start t.
 * response_time needs v->has_hist. 0, or -1 when out cannot grow. */
int omni_chart_point_write(struct evbuffer *out, omni_chart_metric_t metric,
    const char *t, const omni_dash_totals_t *v);

/* The names the API uses for a metric and a bucket width. */
const char *omni_chart_metric_name(omni_chart_metric_t metric);
const char *omni_chart_bucket_name(int width);

#endif
