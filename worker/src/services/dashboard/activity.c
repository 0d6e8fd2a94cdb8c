/* activity.c: the activity feed: appending events (omni_activity_record)
 * and GET /api/v1/dashboard/activity. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "io/clients.h"
#include "io/log.h"
#include "io/publish.h"
#include "http/api.h"
#include "services/dashboard/activity.h"
#include "services/dashboard/dashboard.h"


#define OMNI_ACTIVITY_TYPE_MAX 64
#define OMNI_ACTIVITY_SUMMARY_MAX 500

typedef struct {
    omni_activity_done_pt done;
    void *arg;
    char type[OMNI_ACTIVITY_TYPE_MAX + 1];
    char *event; /* "actor":..,"summary":..,"detail":.. for the channel */
} omni_activity_pending_t;

static int omni_activity_record_stmt, omni_activity_list_stmt;


int omni_activity_init(void)
{
    omni_activity_record_stmt = omni_db_statement("activity_record",
        "SELECT omni2_dashboard.record_activity($1, $2, $3, $4::jsonb)");

    /* never more than live_updates.max_stored_events, even while a prune
     * is racing an insert */
    omni_activity_list_stmt = omni_db_statement("activity_list",
        "SELECT a.id, " OMNI_SQL_TIMESTAMP(
            "a.created_at") ","
                            " a.type, a.actor, a.summary,"
                            " a.detail::text, k.n"
                            " FROM (SELECT least($1::int, coalesce((SELECT "
                            "(value->>"
                            "  'max_stored_events')::int FROM "
                            "omni2_dashboard.dashboard_config"
                            "  WHERE key = 'live_updates'), 1000)) AS n) AS k,"
                            " LATERAL (SELECT * FROM omni2_dashboard.activity"
                            "  WHERE $2::bigint IS NULL OR id < $2::bigint"
                            "  ORDER BY id DESC LIMIT k.n + 1) AS a"
                            " ORDER BY a.id DESC");

    return omni_activity_record_stmt < 0 || omni_activity_list_stmt < 0 ? -1
                                                                        : 0;
}


int omni_activity_type_valid(const char *type)
{
    size_t i, n = strlen(type);
    int start = 1;

    if (n == 0 || n > OMNI_ACTIVITY_TYPE_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        char c = type[i];

        if (c == '.' && !start) {
            start = 1;
            continue;
        }
        if (c >= 'a' && c <= 'z') {
            start = 0;
            continue;
        }
        if (!start && ((c >= '0' && c <= '9') || c == '_')) {
            continue;
        }
        return 0;
    }
    return !start;
}


/* The stored event, as the feed lists it, to the "activity" channel. */
static void omni_activity_publish(omni_activity_pending_t *p, const char *id)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        return;
    }
    evbuffer_add_printf(b, "{\"id\":%s,%s}", id, p->event);
    if (evbuffer_add(b, "", 1) == 0) {
        omni_publish("activity", p->type, (const char *)evbuffer_pullup(b, -1));
    }
    evbuffer_free(b);
}


/* The members after "id" of the event's channel message, malloc'd. */
static char *omni_activity_event(
    const char *actor, const char *summary, const char *detail_json)
{
    struct evbuffer *b = evbuffer_new();
    char *s = NULL;
    size_t n;

    if (b == NULL) {
        return NULL;
    }
    evbuffer_add(b, "\"actor\":", 8);
    if (actor) {
        omni_json_put_string(b, actor, strlen(actor));
    } else {
        evbuffer_add(b, "null", 4);
    }
    evbuffer_add(b, ",\"summary\":", 11);
    omni_json_put_string(b, summary, strlen(summary));
    evbuffer_add_printf(b, ",\"detail\":%s", detail_json ? detail_json : "{}");
    n = evbuffer_get_length(b);
    s = malloc(n + 1);
    if (s != NULL) {
        evbuffer_remove(b, s, n);
        s[n] = '\0';
    }
    evbuffer_free(b);
    return s;
}


static void omni_activity_stored(
    void *arg, omni_db_status_t status, PGresult *res)
{
    omni_activity_pending_t *p = arg;
    omni_activity_done_pt done = p->done;
    void *done_arg = p->arg;
    char buf[256];

    if (status == OMNI_DB_OK && p->event != NULL) {
        omni_activity_publish(p, PQgetvalue(res, 0, 0));
    }
    free(p->event);
    free(p);
    if (status != OMNI_DB_OK) {
        omni_log(OMNI_LOG_WARN, "activity event not stored", "\"error\":\"%s\"",
            status == OMNI_DB_ERROR
                ? omni_log_escape(buf, sizeof(buf), PQresultErrorMessage(res))
            : status == OMNI_DB_TIMEOUT ? "timeout"
                                        : "unavailable");
    }
    if (done) {
        done(done_arg, status == OMNI_DB_OK);
    }
}


int omni_activity_record(const char *type, const char *actor,
    const char *summary, const char *detail_json, omni_activity_done_pt done,
    void *arg)
{
    omni_activity_pending_t *p;
    const char *values[4] = {type, actor, summary, detail_json};
    size_t n = summary ? strlen(summary) : 0;

    if (type == NULL || !omni_activity_type_valid(type) || n == 0
        || n > OMNI_ACTIVITY_SUMMARY_MAX) {
        omni_log(
            OMNI_LOG_WARN, "activity event refused: bad type or summary", NULL);
        return -1;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return -1;
    }
    p->done = done;
    p->arg = arg;
    strcpy(p->type, type);
    p->event = omni_activity_event(actor, summary, detail_json);
    if (omni_db_query(omni_clients.db, omni_activity_record_stmt, 4, values,
            omni_activity_stored, p)
        != OMNI_DB_OK) {
        free(p);
        omni_log(OMNI_LOG_WARN, "activity event not stored",
            "\"error\":\"database unavailable or busy\"");
        return -1;
    }
    return 0;
}


/* ?cursor= is the id of the last item of the previous page. */
static int omni_activity_cursor(omni_req_t *r, const char **cursor)
{
    const char *v = omni_req_arg(r, "cursor");
    char *end;
    long long n;

    *cursor = v;
    if (v == NULL) {
        return 0;
    }
    n = strtoll(v, &end, 10);
    if (*v < '1' || *v > '9' || *end != '\0' || n <= 0) {
        omni_respond_error(r, 400, "invalid_parameter",
            "cursor must be the next_cursor of a previous "
            "page");
        return -1;
    }
    return 0;
}


void omni_dashboard_activity(omni_req_t *r)
{
    const char *values[2];
    char limit[16];
    int n, i, rows;
    PGresult *res = r->db_res;
    struct evbuffer *b;

    switch (r->state) {

    case 0:
        n = omni_api_limit(r);
        if (n < 0 || omni_activity_cursor(r, &values[1]) != 0) {
            return;
        }
        snprintf(limit, sizeof(limit), "%d", n);
        values[0] = limit;
        r->state = 1;
        omni_api_query(r, omni_activity_list_stmt, 2, values);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        rows = PQntuples(res);
        /* the page size after the bound; one row more means a next page */
        n = rows ? atoi(PQgetvalue(res, 0, 6)) : 0;
        b = evbuffer_new();
        evbuffer_add(b, "{\"items\":[", 10);
        for (i = 0; i < rows && i < n; i++) {
            evbuffer_add_printf(b, "%s{\"id\":%s,\"created_at\":", i ? "," : "",
                PQgetvalue(res, i, 0));
            omni_api_put_text(b, res, i, 1);
            evbuffer_add(b, ",\"type\":", 8);
            omni_api_put_text(b, res, i, 2);
            evbuffer_add(b, ",\"actor\":", 9);
            omni_api_put_text(b, res, i, 3);
            evbuffer_add(b, ",\"summary\":", 11);
            omni_api_put_text(b, res, i, 4);
            evbuffer_add(b, ",\"detail\":", 10);
            evbuffer_add(b, PQgetvalue(res, i, 5), PQgetlength(res, i, 5));
            evbuffer_add(b, "}", 1);
        }
        evbuffer_add(b, "],\"next_cursor\":", 16);
        if (rows > n) {
            evbuffer_add_printf(b, "\"%s\"", PQgetvalue(res, n - 1, 0));
        } else {
            evbuffer_add(b, "null", 4);
        }
        evbuffer_add(b, "}\n", 2);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}
