/* perf.c: the batched mcp_performance.tool_calls records of this
 * process's tool calls, whoever makes them (call.c, tool.c). */
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/json.h"
#include "io/clients.h"
#include "io/log.h"
#include "http/metrics.h"
#include "services/mcp/perf.h"
#include "services/mcp/upstream.h"

#define OMNI_PERF_MAX_ROWS 2000

static int omni_perf_stmt;

static struct {
    struct evbuffer *rows;
    int nrows, flushing;
    struct event *timer;
    unsigned long long dropped;
} omni_perf;


int omni_mcp_perf_init(void)
{
    omni_perf_stmt = omni_db_statement("mcp_perf_insert",
        "INSERT INTO mcp_performance.tool_calls (at, server_id, tool, user_id,"
        " latency_us, outcome, bytes_in, bytes_out)"
        " SELECT to_timestamp(x.at / 1000.0), x.server_id, x.tool, x.user_id,"
        "  x.latency_us, x.outcome, x.bytes_in, x.bytes_out"
        " FROM jsonb_to_recordset($1::jsonb) AS x(at bigint, server_id uuid,"
        "  tool text, user_id text, latency_us bigint, outcome text,"
        "  bytes_in bigint, bytes_out bigint)");
    return omni_perf_stmt < 0 ? -1 : 0;
}


static void omni_perf_flushed(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_perf.flushing = 0;
    if (st != OMNI_DB_OK) {
        omni_log(OMNI_LOG_WARN, "cannot store MCP call records",
            "\"status\":%d", (int)st);
    }
}


static void omni_perf_flush(evutil_socket_t fd, short what, void *arg)
{
    struct evbuffer *b;
    const char *values[1];

    if (omni_perf.nrows == 0 || omni_perf.flushing) {
        return;
    }
    b = omni_perf.rows;
    evbuffer_add(b, "]", 2);
    values[0] = (const char *)evbuffer_pullup(b, -1);
    if (omni_db_query(
            omni_clients.db, omni_perf_stmt, 1, values, omni_perf_flushed, NULL)
        == OMNI_DB_OK) {
        omni_perf.flushing = 1;
    } else {
        omni_log(OMNI_LOG_WARN, "MCP call records lost: Postgres unavailable",
            "\"rows\":%d", omni_perf.nrows);
    }
    evbuffer_drain(b, evbuffer_get_length(b));
    omni_perf.nrows = 0;
}


int omni_mcp_perf_start(void)
{
    struct timeval tv = {1, 0};

    omni_perf.rows = evbuffer_new();
    omni_perf.timer =
        event_new(omni_clients.base, -1, EV_PERSIST, omni_perf_flush, NULL);
    if (omni_perf.rows == NULL || omni_perf.timer == NULL) {
        return -1;
    }
    event_add(omni_perf.timer, &tv);
    return 0;
}


void omni_mcp_perf_stop(void)
{
    if (omni_perf.timer != NULL) {
        omni_perf_flush(-1, 0, NULL);
        event_free(omni_perf.timer);
        omni_perf.timer = NULL;
    }
}


void omni_mcp_perf_add(const char *server_id, const char *tool,
    const char *user, int64_t start_ms, const char *outcome, uint64_t bytes_in,
    uint64_t bytes_out)
{
    static const char *const names[] = {"ok", "tool_error", "rpc_error",
        "upstream_error", "timeout", "unavailable"};
    struct evbuffer *b = omni_perf.rows;
    int64_t now = omni_mcp_now_ms();
    uint64_t us;
    int k;

    if (start_ms == 0) { /* refused before it was sent */
        start_ms = now;
    }
    us = (uint64_t)(now - start_ms) * 1000;

    for (k = 0; k < OMNI_METRICS_MCP_OUTCOMES; k++) {
        if (strcmp(outcome, names[k]) == 0) {
            omni_metrics_mcp_call((omni_metrics_mcp_outcome_t)k, us);
        }
    }

    if (b == NULL) {
        return;
    }
    if (omni_perf.nrows >= OMNI_PERF_MAX_ROWS) {
        omni_perf.dropped++;
        return;
    }
    evbuffer_add(b, omni_perf.nrows++ ? "," : "[", 1);
    evbuffer_add_printf(b,
        "{\"at\":%lld,\"server_id\":\"%s\",\"tool\":", (long long)start_ms,
        server_id);
    omni_json_put_string(b, tool, strlen(tool));
    evbuffer_add(b, ",\"user_id\":", 11);
    if (user != NULL) {
        omni_json_put_string(b, user, strlen(user));
    } else {
        evbuffer_add(b, "null", 4);
    }
    evbuffer_add_printf(b,
        ",\"latency_us\":%llu,\"outcome\":\"%s\",\"bytes_in\":%llu,"
        "\"bytes_out\":%llu}",
        (unsigned long long)us, outcome, (unsigned long long)bytes_in,
        (unsigned long long)bytes_out);
    if (omni_perf.nrows >= 100) {
        omni_perf_flush(-1, 0, NULL);
    }
}
