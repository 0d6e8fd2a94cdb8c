/* dashboard_stats.c: GET /api/v1/dashboard/stats and /charts/{metric}, from
 * the request summaries, through dashboard_cache. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "io/clients.h"
#include "io/log.h"
#include "http/api.h"
#include "http/identity.h"
#include "services/dashboard/dashboard.h"


/* A cached answer is served while it is younger than refresh_interval's
 * stats (or charts) seconds and no rollup or configuration change has
 * bumped the cache generation. */
#define OMNI_CACHE_FRESH(t)                                                    \
    " " t "expires_at > now() AND " t "generation ="                           \
    " (SELECT generation FROM omni2_dashboard.cache_state)"

/* Period start: midnight UTC, or now - $1 seconds rounded down to the
 * 5-minute grid; full hours are read from the hourly rows, the rest of the
 * first hour from the 5-minute ones. */
static const char omni_stats_head[] =
    "WITH w AS ("
    " SELECT CASE WHEN $1::int = 0 THEN date_trunc('day', now(), 'UTC')"
    " ELSE to_timestamp(floor((extract(epoch FROM now()) - $1::int) / 300)"
    " * 300) END AS start"
    "), b AS ("
    " SELECT start, to_timestamp(ceil(extract(epoch FROM start) / 3600)"
    " * 3600) AS hour FROM w"
    "), s AS ("
    " SELECT s.* FROM omni_metrics.request_summary AS s, b"
    " WHERE s.width = 3600 AND s.start >= b.hour"
    " UNION ALL"
    " SELECT s.* FROM omni_metrics.request_summary AS s, b"
    " WHERE s.width = 300 AND s.start >= b.start AND s.start < b.hour"
    "), u AS ("
    " SELECT trim_scale(coalesce(sum(u.cost), 0)) AS cost,"
    " coalesce(sum(u.input_tokens + u.output_tokens), 0) AS tokens"
    " FROM omnichat.usage_rollup AS u, b WHERE u.user_id = $2::text"
    " AND ((u.width = 3600 AND u.start >= b.hour) OR (u.width = 300"
    " AND u.start >= b.start AND u.start < b.hour))"
    ")"
    " SELECT " OMNI_SQL_TIMESTAMP(
        "(SELECT start FROM b)") ","
                                 " " OMNI_SQL_TIMESTAMP(
                                     "now()") ","
                                              " coalesce(sum(s.count), 0), "
                                              "coalesce(sum(s.errors), 0),"
                                              " coalesce(sum(s.client_errors), "
                                              "0), coalesce(sum(s.sum_us), 0),"
                                              " coalesce(max(s.max_us), 0),"
                                              " CASE WHEN count(*) > 0 THEN "
                                              "(ARRAY[";

static const char omni_stats_tail[] =
    "])::text END,"
    " (SELECT generation FROM omni2_dashboard.cache_state),"
    " (SELECT count(*) FROM omni2.mcp_servers AS m"
    "  LEFT JOIN omni2.circuit_breakers AS c ON c.server_id = m.id"
    "  WHERE m.enabled AND c.state IS DISTINCT FROM 'open'),"
    " (SELECT count(*) FROM omni2.mcp_servers AS m"
    "  JOIN omni2.circuit_breakers AS c ON c.server_id = m.id"
    "  WHERE c.state = 'open'),"
    " (SELECT cost FROM u), (SELECT tokens FROM u)"
    " FROM s";

/* head + 120 "sum(s.hist[i])," + tail, built at start-up: summing each
 * element is 15 times faster than folding hist_add over the rows */
static char omni_stats_sql[sizeof(omni_stats_head) + sizeof(omni_stats_tail)
                           + OMNI_HIST_BUCKETS * 20];

static int omni_stats_lookup_stmt, omni_stats_stmt, omni_cache_store_stmt;
static int omni_chart_lookup_stmt, omni_chart_stmt, omni_cache_sweep_stmt;
static struct event *omni_cache_sweep_timer;

typedef struct {
    const char *name; /* stats: the period */
    int seconds;      /* stats: the period */
    int metric;       /* charts */
    int width;
    int hours;
    const char *key;     /* in dashboard_cache */
    const char *scope;   /* whose LLM usage: "" everyone's (admins), a
                            user id (theirs), NULL none */
    const char *refresh; /* its refresh_interval member */
    char *body;          /* the answer computed (arena) */
} omni_stats_req_t;


int omni_dashboard_stats_init(void)
{
    char *p = omni_stats_sql;
    int b;

    p += sprintf(p, "%s", omni_stats_head);
    for (b = 1; b <= OMNI_HIST_BUCKETS; b++) {
        p += sprintf(p, "%ssum(s.hist[%d])", b > 1 ? "," : "", b);
    }
    sprintf(p, "%s", omni_stats_tail);

    omni_stats_lookup_stmt = omni_db_statement("dashboard_cache_get",
        "SELECT value::text FROM omni2_dashboard.dashboard_cache"
        " WHERE key = $1 AND" OMNI_CACHE_FRESH(""));

    omni_stats_stmt = omni_db_statement("dashboard_stats", omni_stats_sql);

    /* an expired answer is never served, but the rows of a user who
     * stopped looking would stay for good (a set per user and scope) */
    omni_cache_sweep_stmt = omni_db_statement("dashboard_cache_sweep",
        "DELETE FROM omni2_dashboard.dashboard_cache"
        " WHERE expires_at < now() - interval '1 minute'");

    /* kept as long as the dashboard waits between polls ($4: "stats" or
     * "charts"); an answer of an older generation never replaces a newer
     * one */
    omni_cache_store_stmt = omni_db_statement("dashboard_cache_put",
        "INSERT INTO omni2_dashboard.dashboard_cache AS c"
        " (key, value, expires_at, generation)"
        " SELECT $1, $2::jsonb, now() + make_interval(secs => coalesce(("
        "  SELECT (value->>$4::text)::int"
        "  FROM omni2_dashboard.dashboard_config"
        "  WHERE key = 'refresh_interval'),"
        "  CASE $4::text WHEN 'stats' THEN 5 ELSE 30 END)), $3::bigint"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
        " expires_at = excluded.expires_at, generation = excluded.generation"
        " WHERE c.generation <= excluded.generation");

    /* defaults from chart_settings: hours per chart (cost: cost_period,
     * "today" being the hours since 00:00 UTC), the bucket, else 5m when
     * that fits max_points and 1h when not; the key names the resolved
     * chart */
    omni_chart_lookup_stmt = omni_db_statement("dashboard_chart_get",
        "WITH c AS ("
        " SELECT (SELECT value FROM omni2_dashboard.dashboard_config"
        "  WHERE key = 'chart_settings') AS v"
        "), s AS ("
        " SELECT coalesce($2::int, CASE $1::text"
        "  WHEN 'cost' THEN CASE v->>'cost_period' WHEN '24h' THEN 24"
        "   WHEN '7d' THEN 168"
        "   ELSE greatest(ceil(extract(epoch FROM now()"
        "    - date_trunc('day', now(), 'UTC')) / 3600)::int, 1) END"
        "  WHEN 'response_time' THEN (v->>'response_time_hours')::int"
        "  ELSE (v->>'queries_hours')::int END, 24) AS hours,"
        " coalesce((v->>'max_points')::int, 288) AS max_points,"
        " v->>'bucket' AS bucket"
        " FROM c"
        "), b AS ("
        " SELECT hours, coalesce($3::text, bucket,"
        "  CASE WHEN hours * 12 <= max_points THEN '5m' ELSE '1h' END)"
        " AS bucket, max_points FROM s"
        "), k AS ("
        " SELECT *, 'chart:' || $1::text || ':' || hours || ':' || bucket"
        " || $4::text AS key FROM b"
        ")"
        " SELECT k.hours, k.bucket, k.max_points, k.key, d.value::text"
        " FROM k LEFT JOIN omni2_dashboard.dashboard_cache AS d"
        " ON d.key = k.key AND" OMNI_CACHE_FRESH("d."));

    /* $1 bucket width (s), $2 points, $3 with histograms, $4 whose LLM
     * usage ('' everyone's, NULL none) */
    omni_chart_stmt = omni_db_statement("dashboard_chart",
        "WITH g AS ("
        " SELECT last - make_interval(secs => $1::int * ($2::int - 1))"
        " AS first, last"
        " FROM (SELECT to_timestamp(floor(extract(epoch FROM now())"
        "  / $1::int) * $1::int) AS last) AS n"
        ")"
        " SELECT " OMNI_SQL_TIMESTAMP(
            "t") ","
                 " coalesce(s.count, 0), coalesce(s.errors, 0),"
                 " coalesce(s.client_errors, 0), coalesce(s.sum_us, 0),"
                 " coalesce(s.max_us, 0), CASE WHEN $3::boolean THEN "
                 "s.hist::text END,"
                 " (SELECT generation FROM omni2_dashboard.cache_state),"
                 " " OMNI_SQL_TIMESTAMP(
                     "now()") ","
                              " trim_scale(coalesce(u.cost, 0)),"
                              " coalesce(u.input_tokens + u.output_tokens, 0)"
                              " FROM g, generate_series(g.first, g.last,"
                              "  make_interval(secs => $1::int)) AS t"
                              " LEFT JOIN (SELECT s.* FROM "
                              "omni_metrics.request_summary"
                              "  AS s, g WHERE s.width = $1::int"
                              "  AND s.start BETWEEN g.first AND g.last)"
                              "  AS s ON s.start = t"
                              " LEFT JOIN (SELECT u.* FROM "
                              "omnichat.usage_rollup AS u, g"
                              "  WHERE u.width = $1::int AND u.user_id = "
                              "$4::text"
                              "  AND u.start BETWEEN g.first AND g.last)"
                              "  AS u ON u.start = t"
                              " ORDER BY t");

    return omni_stats_lookup_stmt < 0 || omni_stats_stmt < 0
                   || omni_cache_store_stmt < 0 || omni_chart_lookup_stmt < 0
                   || omni_chart_stmt < 0 || omni_cache_sweep_stmt < 0
               ? -1
               : 0;
}


static void omni_cache_swept(void *arg, omni_db_status_t st, PGresult *res)
{
}


static void omni_cache_sweep(evutil_socket_t fd, short what, void *arg)
{
    /* every process sweeps: an empty DELETE through the expires_at index
     * costs less than electing one */
    struct timeval every = {60, 0};

    omni_db_query(omni_clients.db, omni_cache_sweep_stmt, 0, NULL,
        omni_cache_swept, NULL);
    evtimer_add(omni_cache_sweep_timer, &every);
}


int omni_dashboard_cache_sweep_start(void)
{
    struct timeval soon = {1, 0};

    omni_cache_sweep_timer =
        evtimer_new(omni_clients.base, omni_cache_sweep, NULL);
    return omni_cache_sweep_timer == NULL
                   || evtimer_add(omni_cache_sweep_timer, &soon) != 0
               ? -1
               : 0;
}


void omni_dashboard_cache_sweep_stop(void)
{
    if (omni_cache_sweep_timer != NULL) {
        event_free(omni_cache_sweep_timer);
        omni_cache_sweep_timer = NULL;
    }
}


/* Sends the answer computed for this request (s->body). */
static void omni_stats_send(omni_req_t *r)
{
    omni_stats_req_t *s = r->data;
    struct evbuffer *b = evbuffer_new();

    evbuffer_add(b, s->body, strlen(s->body));
    evbuffer_add(b, "\n", 1);
    omni_respond_header(r, "X-Omni-Cache", "miss");
    omni_api_json(r, 200, b);
    evbuffer_free(b);
}


static void omni_cache_stored(void *arg, omni_db_status_t status, PGresult *res)
{
    char buf[256];

    if (status == OMNI_DB_ERROR) {
        omni_log(OMNI_LOG_WARN, "dashboard cache not stored",
            "\"error\":\"%s\"",
            omni_log_escape(buf, sizeof(buf), PQresultErrorMessage(res)));
    }
    omni_stats_send(arg);
}


/* Keeps the answer computed now for the next readers, then sends it: the
 * client's next read finds it. When it cannot be stored it is sent all
 * the same (the next read computes again). */
static void omni_stats_answer(
    omni_req_t *r, struct evbuffer *b, const char *generation)
{
    omni_stats_req_t *s = r->data;
    const char *values[4];
    size_t len = evbuffer_get_length(b);

    s->body = omni_arena_alloc(&r->arena, len + 1);
    if (s->body == NULL) {
        evbuffer_free(b);
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }
    evbuffer_copyout(b, s->body, len);
    s->body[len] = '\0';
    evbuffer_free(b);

    values[0] = s->key;
    values[1] = s->body;
    values[2] = generation;
    values[3] = s->refresh;
    if (omni_db_query(omni_clients.db, omni_cache_store_stmt, 4, values,
            omni_cache_stored, r)
        != OMNI_DB_OK) {
        omni_stats_send(r);
    }
}


static void omni_stats_cached(omni_req_t *r, PGresult *res, int col)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add(b, PQgetvalue(res, 0, col), PQgetlength(res, 0, col));
    evbuffer_add(b, "\n", 1);
    omni_respond_header(r, "X-Omni-Cache", "hit");
    omni_api_json(r, 200, b);
    evbuffer_free(b);
}


/* count, errors, client_errors, sum_us, max_us, hist text from column col
 * on; -1 when the histogram is malformed. */
static int omni_stats_totals(
    PGresult *res, int row, int col, omni_dash_totals_t *t)
{
    t->count = strtoull(PQgetvalue(res, row, col), NULL, 10);
    t->errors = strtoull(PQgetvalue(res, row, col + 1), NULL, 10);
    t->client_errors = strtoull(PQgetvalue(res, row, col + 2), NULL, 10);
    t->sum_us = strtoull(PQgetvalue(res, row, col + 3), NULL, 10);
    t->max_us = strtoull(PQgetvalue(res, row, col + 4), NULL, 10);
    t->has_hist = !PQgetisnull(res, row, col + 5);
    return t->has_hist ? omni_hist_parse(PQgetvalue(res, row, col + 5), t->hist)
                       : 0;
}


/* a + b + c in the request's arena, or NULL */
static char *omni_stats_concat(
    omni_req_t *r, const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *p = omni_arena_alloc(&r->arena, la + lb + lc + 1);

    if (p != NULL) {
        memcpy(p, a, la);
        memcpy(p + la, b, lb);
        memcpy(p + la + lb, c, lc + 1);
    }
    return p;
}


/* Whose LLM usage the caller sees (SPEC 6, as GET /api/v1/llm/usage): an
 * admin everyone's, anyone else their own. Sets s->scope and returns the
 * suffix of the cache key naming it ("" for everyone's), or NULL when out
 * of memory. */
static const char *omni_stats_scope(omni_req_t *r, omni_stats_req_t *s)
{
    const omni_identity_t *id = omni_req_identity(r);
    const char *suffix;

    if (id->rank == OMNI_ROLE_ADMIN) {
        s->scope = "";
        return "";
    }
    if (id->id == NULL || id->id[0] == '\0') {
        s->scope = NULL;
        return ":none";
    }
    s->scope = id->id;
    suffix = omni_stats_concat(r, ":user:", id->id, "");
    if (suffix == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
    }
    return suffix;
}


static omni_stats_req_t *omni_stats_req(omni_req_t *r)
{
    omni_stats_req_t *s = omni_arena_alloc(&r->arena, sizeof(*s));

    if (s == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return NULL;
    }
    memset(s, 0, sizeof(*s));
    r->data = s;
    return s;
}


void omni_dashboard_stats(omni_req_t *r)
{
    omni_stats_req_t *s = r->data;
    omni_dash_totals_t t;
    struct evbuffer *b;
    const char *period, *suffix, *values[2];
    char secs[16];
    int n;

    switch (r->state) {

    case 0:
        period = omni_req_arg(r, "period");
        period = period ? period : "24h";
        n = omni_stats_period(period);
        if (n < 0) {
            omni_respond_error(
                r, 400, "invalid_parameter", "period must be today, 24h or 7d");
            return;
        }
        s = omni_stats_req(r);
        if (s == NULL) {
            return;
        }
        s->name = n == 0 ? "today" : n == 86400 ? "24h" : "7d";
        s->seconds = n;
        suffix = omni_stats_scope(r, s);
        if (suffix == NULL) {
            return;
        }
        s->key = omni_stats_concat(r, "stats:", s->name, suffix);
        if (s->key == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        s->refresh = "stats";
        r->state = 1;
        omni_api_query(r, omni_stats_lookup_stmt, 1, &s->key);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 1) {
            omni_stats_cached(r, r->db_res, 0);
            return;
        }
        snprintf(secs, sizeof(secs), "%d", s->seconds);
        values[0] = secs;
        values[1] = s->scope;
        r->state = 2;
        omni_api_query(r, omni_stats_stmt, 2, values);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (omni_stats_totals(r->db_res, 0, 2, &t) != 0) {
            omni_respond_error(r, 500, "internal_error",
                "internal error (request id %s)", r->request_id);
            return;
        }
        t.mcp_active = strtoll(PQgetvalue(r->db_res, 0, 9), NULL, 10);
        t.mcp_open = strtoll(PQgetvalue(r->db_res, 0, 10), NULL, 10);
        t.cost = PQgetvalue(r->db_res, 0, 11);
        t.tokens = strtoll(PQgetvalue(r->db_res, 0, 12), NULL, 10);
        b = evbuffer_new();
        omni_stats_write(b, s->name, PQgetvalue(r->db_res, 0, 0),
            PQgetvalue(r->db_res, 0, 1), &t);
        omni_stats_answer(r, b, PQgetvalue(r->db_res, 0, 8));
        return;
    }
}


static void omni_chart_render(omni_req_t *r, PGresult *res)
{
    omni_stats_req_t *s = r->data;
    omni_dash_totals_t t;
    struct evbuffer *b;
    int i, rows = PQntuples(res);

    b = evbuffer_new();
    evbuffer_add_printf(b,
        "{\"metric\":\"%s\",\"hours\":%d,\"bucket\":\"%s\","
        "\"from\":\"%s\",\"to\":\"%s\",\"points\":[",
        omni_chart_metric_name(s->metric), s->hours,
        omni_chart_bucket_name(s->width), PQgetvalue(res, 0, 0),
        PQgetvalue(res, 0, 8));
    for (i = 0; i < rows; i++) {
        if (omni_stats_totals(res, i, 1, &t) != 0) {
            evbuffer_free(b);
            omni_respond_error(r, 500, "internal_error",
                "internal error (request id %s)", r->request_id);
            return;
        }
        t.cost = PQgetvalue(res, i, 9);
        t.tokens = strtoll(PQgetvalue(res, i, 10), NULL, 10);
        if (i) {
            evbuffer_add(b, ",", 1);
        }
        omni_chart_point_write(b, s->metric, PQgetvalue(res, i, 0), &t);
    }
    evbuffer_add(b, "]}", 2);
    omni_stats_answer(r, b, PQgetvalue(res, 0, 7));
}


void omni_dashboard_chart(omni_req_t *r)
{
    omni_stats_req_t *s = r->data;
    const char *values[4], *hours, *bucket;
    char width[16], points[16];
    int max_points;

    switch (r->state) {

    case 0:
        s = omni_stats_req(r);
        if (s == NULL) {
            return;
        }
        s->refresh = "charts";
        s->metric = omni_chart_metric(omni_req_param(r, 0));
        if (s->metric < 0) {
            omni_respond_error(r, 404, "not_found",
                "no chart \"%.64s\"; charts: queries, cost, "
                "response_time, errors",
                omni_req_param(r, 0));
            return;
        }
        hours = omni_req_arg(r, "hours");
        if (hours && omni_chart_hours(hours) < 0) {
            omni_respond_error(r, 400, "invalid_parameter",
                "hours must be an integer from 1 to %d", OMNI_CHART_MAX_HOURS);
            return;
        }
        bucket = omni_req_arg(r, "bucket");
        if (bucket && omni_chart_bucket(bucket) < 0) {
            omni_respond_error(
                r, 400, "invalid_parameter", "bucket must be 5m or 1h");
            return;
        }
        /* only the cost chart shows LLM usage, and so depends on who
         * asks */
        values[3] = "";
        if (s->metric == OMNI_CHART_COST) {
            values[3] = omni_stats_scope(r, s);
            if (values[3] == NULL) {
                return;
            }
        }
        values[0] = omni_req_param(r, 0);
        values[1] = hours;
        values[2] = bucket;
        r->state = 1;
        omni_api_query(r, omni_chart_lookup_stmt, 4, values);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        s->hours = atoi(PQgetvalue(r->db_res, 0, 0));
        s->width = omni_chart_bucket(PQgetvalue(r->db_res, 0, 1));
        max_points = atoi(PQgetvalue(r->db_res, 0, 2));
        if (s->width < 0 || s->hours < 1 || s->hours > OMNI_CHART_MAX_HOURS) {
            omni_log(OMNI_LOG_ERROR, "chart_settings holds a bad default",
                "\"request_id\":\"%s\"", r->request_id);
            omni_respond_error(r, 500, "internal_error",
                "internal error (request id %s)", r->request_id);
            return;
        }
        if (s->hours * 3600 / s->width > max_points) {
            omni_respond_error(r, 400, "invalid_parameter",
                "hours: %d hours of %s buckets make %d points,"
                " more than chart_settings.max_points (%d)",
                s->hours, omni_chart_bucket_name(s->width),
                s->hours * 3600 / s->width, max_points);
            return;
        }
        if (!PQgetisnull(r->db_res, 0, 4)) {
            omni_stats_cached(r, r->db_res, 4);
            return;
        }
        s->key = omni_arena_strndup(&r->arena, PQgetvalue(r->db_res, 0, 3),
            (size_t)PQgetlength(r->db_res, 0, 3));
        if (s->key == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        snprintf(width, sizeof(width), "%d", s->width);
        snprintf(points, sizeof(points), "%d", s->hours * 3600 / s->width);
        values[0] = width;
        values[1] = points;
        values[2] = s->metric == OMNI_CHART_RESPONSE_TIME ? "t" : "f";
        values[3] = s->metric == OMNI_CHART_COST ? s->scope : NULL;
        r->state = 2;
        omni_api_query(r, omni_chart_stmt, 4, values);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        omni_chart_render(r, r->db_res);
        return;
    }
}
