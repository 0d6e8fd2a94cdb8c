/* health.c: each second every process asks Postgres for the servers whose
 * probe is due and takes their leases in the same statement: a lease
 * (omni2.mcp_probe_leases) is taken only when the last one expired, so one
 * process in the whole deployment probes a server per interval_ms. A
 * server whose breaker is open is due only once its cool-down passed: that
 * probe is the half-open trial. The probe is ping (server/discover for a
 * 2026-07-28 server); its outcome moves the breaker like a call's (which
 * announces mcp.server.down / up and bumps omni:mcp:gen). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "io/clients.h"
#include "io/log.h"
#include "http/metrics.h"
#include "services/mcp/catalog.h"
#include "services/mcp/health.h"
#include "services/mcp/upstream.h"

#define OMNI_HEALTH_MAX_PAGES 100

/* Probes in flight per process: every due server at once would be a burst
 * of hundreds of requests, many to one host, where the outbound client
 * refuses past 64 ("overloaded"), failing healthy servers' probes and
 * leaving no room for the calls. The due servers are leased this many at
 * a time, the longest waiting first, the next batch as soon as half of
 * the last is answered. */
#define OMNI_HEALTH_MAX_INFLIGHT 32

typedef struct {
    omni_arena_t arena;
    omni_mcp_upstream_t u;
    struct evbuffer *tools; /* "[t,t,..." so far */
    int ntools, pages;
} omni_health_probe_t;

static struct {
    struct event *timer, *soon;
    char holder[96];
    int busy;     /* the lease query is in flight */
    int inflight; /* probes not answered yet */
    int asked;    /* servers the last lease query could return */
    int more;     /* it returned that many: more may be due */
} omni_health;

static int omni_health_stmt, omni_health_forget_stmt;


int omni_mcp_health_init(void)
{
    omni_health_stmt = omni_db_statement("mcp_health_lease",
        "WITH due AS ("
        "  SELECT s.id, greatest(coalesce((s.health->>'interval_ms')::int,"
        "   10000), 1000) AS iv"
        "  FROM omni2.mcp_servers AS s"
        "  LEFT JOIN omni2.circuit_breakers AS b ON b.server_id = s.id"
        "  LEFT JOIN omni2.mcp_probe_leases AS f ON f.server_id = s.id"
        "  WHERE s.enabled AND (b.state IS DISTINCT FROM 'open'"
        "   OR b.next_probe_at IS NULL OR b.next_probe_at <= now())"
        "   AND (f.expires_at IS NULL OR f.expires_at <= now())"
        "  ORDER BY f.expires_at NULLS FIRST, s.id LIMIT $2::int),"
        " won AS ("
        "  INSERT INTO omni2.mcp_probe_leases AS l"
        "   (server_id, holder, expires_at)"
        "  SELECT due.id, $1, now() + due.iv * interval '1 millisecond'"
        "  FROM due"
        "  ON CONFLICT (server_id) DO UPDATE"
        "   SET holder = excluded.holder, expires_at = excluded.expires_at"
        "   WHERE l.expires_at <= now()"
        "  RETURNING l.server_id)"
        " SELECT " OMNI_MCP_UPSTREAM_COLUMNS " FROM omni2.mcp_servers AS s"
        " JOIN won ON won.server_id = s.id"
        " LEFT JOIN omni2.circuit_breakers AS b ON b.server_id = s.id");
    omni_health_forget_stmt = omni_db_statement("mcp_health_forget",
        "DELETE FROM omni2.mcp_probe_leases WHERE server_id = $1::uuid");
    return omni_health_stmt < 0 || omni_health_forget_stmt < 0 ? -1 : 0;
}


static void omni_health_forgotten(void *arg, omni_db_status_t st, PGresult *res)
{
}


void omni_mcp_health_soon(const char *id)
{
    const char *values[1] = {id};

    omni_db_query(omni_clients.db, omni_health_forget_stmt, 1, values,
        omni_health_forgotten, NULL);
}


/* The next lease, in ms rather than at the next second's tick: more
 * servers were due than the last batch took. */
static void omni_health_again(long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (omni_health.soon != NULL && !evtimer_pending(omni_health.soon, NULL)) {
        evtimer_add(omni_health.soon, &tv);
    }
}


static void omni_health_done(omni_health_probe_t *p)
{
    if (p->tools != NULL) {
        evbuffer_free(p->tools);
    }
    omni_arena_free(&p->arena);
    free(p);
    omni_health.inflight--;
    if (omni_health.more
        && omni_health.inflight <= OMNI_HEALTH_MAX_INFLIGHT / 2) {
        omni_health_again(0);
    }
}


static void omni_health_stored(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_health_probe_t *p = arg;

    if (st == OMNI_DB_OK) {
        (void)omni_mcp_catalog_quarantined(&p->u, res, NULL, NULL);
    } else {
        omni_log(OMNI_LOG_WARN, "cannot store an MCP server's tools",
            "\"server\":\"%s\"", p->u.id);
    }
    omni_health_done(p);
}


static void omni_health_listed(void *arg, const omni_mcp_reply_t *rep);


/* 0 when the page was asked for */
static int omni_health_list(omni_health_probe_t *p, const char *cursor)
{
    struct evbuffer *b;
    const char *params = NULL;

    if (cursor != NULL) {
        b = evbuffer_new();
        if (b == NULL) {
            return -1;
        }
        evbuffer_add(b, "{\"cursor\":", 10);
        omni_json_put_string(b, cursor, strlen(cursor));
        evbuffer_add(b, "}", 1);
        params = omni_arena_strndup(&p->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        evbuffer_free(b);
    }
    return omni_mcp_rpc(&p->u.target, "tools/list", NULL, params, 1, &p->arena,
               NULL, omni_health_listed,
               p) != NULL
               ? 0
               : -1;
}


/* Up: the catalog is read again, every page, and stored (a changed tool
 * is quarantined); a page that cannot be read keeps the old catalog. */
static void omni_health_listed(void *arg, const omni_mcp_reply_t *rep)
{
    omni_health_probe_t *p = arg;
    const char *cursor, *values[3];

    if (rep->failure != NULL || rep->result == NULL) {
        omni_log(OMNI_LOG_WARN, "cannot read an MCP server's tools",
            "\"server\":\"%s\"", p->u.id);
        omni_health_done(p);
        return;
    }
    cursor = omni_mcp_catalog_page(rep, p->tools, &p->ntools);
    if (cursor != NULL && ++p->pages < OMNI_HEALTH_MAX_PAGES) {
        if (omni_health_list(p, cursor) != 0) {
            omni_health_done(p);
        }
        return;
    }
    if (p->ntools == 0) {
        evbuffer_add(p->tools, "[", 1);
    }
    evbuffer_add(p->tools, "]", 2);
    values[0] = p->u.id;
    values[1] = (const char *)evbuffer_pullup(p->tools, -1);
    values[2] = rep->protocol;
    if (omni_db_query(omni_clients.db, omni_mcp_catalog_store_stmt(), 3, values,
            omni_health_stored, p)
        != OMNI_DB_OK) {
        omni_health_done(p);
    }
}


static void omni_health_replied(void *arg, const omni_mcp_reply_t *rep)
{
    omni_health_probe_t *p = arg;
    int ok = rep->failure == NULL;

    omni_metrics_mcp_probe(ok);
    if (!ok) {
        omni_log(OMNI_LOG_WARN, "MCP server probe failed", "\"server\":\"%s\"",
            p->u.id);
    }
    if (omni_mcp_breaker_outcome(&p->u, ok)) {
        omni_mcp_breaker_save(&p->u, ok, NULL, NULL);
    }
    p->tools = ok ? evbuffer_new() : NULL;
    if (p->tools == NULL || omni_health_list(p, NULL) != 0) {
        omni_health_done(p);
    }
}


static void omni_health_probe(PGresult *res, int row)
{
    omni_health_probe_t *p;
    const char *gen, *method;

    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return;
    }
    omni_arena_init(&p->arena, 4096);
    omni_health.inflight++;
    if (omni_mcp_upstream_parse(&p->arena, res, row, &p->u) != 0) {
        omni_health_done(p);
        return;
    }
    omni_breaker_allow(&p->u.breaker, omni_mcp_now_ms(), NULL);
    gen = omni_mcp_client_generation(p->u.id);
    method =
        gen != NULL && strcmp(gen, "modern") == 0 ? "server/discover" : "ping";
    if (omni_mcp_rpc(&p->u.target, method, NULL, NULL, 1, &p->arena, NULL,
            omni_health_replied, p)
        == NULL) {
        omni_health_done(p);
    }
}


static void omni_health_leased(void *arg, omni_db_status_t st, PGresult *res)
{
    int i;

    omni_health.busy = 0;
    if (st != OMNI_DB_OK) {
        return;
    }
    omni_health.more = PQntuples(res) >= omni_health.asked;
    for (i = 0; i < PQntuples(res); i++) {
        omni_health_probe(res, i);
    }
}


/* Background work yields to requests: it only runs on an idle
 * connection, never waiting in the queue a request may need. */
static int omni_mcp_pool_idle(void)
{
    omni_db_stats_t st;

    omni_db_stats(omni_clients.db, &st);
    return st.queued == 0 && st.ready - st.busy >= 1;
}


static void omni_health_tick(evutil_socket_t fd, short what, void *arg)
{
    const char *values[2];
    char limit[16];

    /* a stalled server holds one probe for its timeout_ms, not the
     * others: new leases are taken for the probes that are free */
    if (omni_health.busy || omni_health.inflight >= OMNI_HEALTH_MAX_INFLIGHT) {
        return;
    }
    if (!omni_mcp_pool_idle()) {
        if (omni_health.more) {
            omni_health_again(20);
        }
        return;
    }
    omni_health.asked = OMNI_HEALTH_MAX_INFLIGHT - omni_health.inflight;
    snprintf(limit, sizeof(limit), "%d", omni_health.asked);
    values[0] = omni_health.holder;
    values[1] = limit;
    if (omni_db_query(omni_clients.db, omni_health_stmt, 2, values,
            omni_health_leased, NULL)
        == OMNI_DB_OK) {
        omni_health.busy = 1;
    }
}


int omni_mcp_health_start(void)
{
    struct timeval tv = {1, 0};
    char host[64];

    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "?");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(omni_health.holder, sizeof(omni_health.holder), "%s:%ld", host,
        (long)getpid());
    omni_health.timer =
        event_new(omni_clients.base, -1, EV_PERSIST, omni_health_tick, NULL);
    omni_health.soon = evtimer_new(omni_clients.base, omni_health_tick, NULL);
    if (omni_health.timer == NULL || omni_health.soon == NULL) {
        return -1;
    }
    event_add(omni_health.timer, &tv);
    return 0;
}


void omni_mcp_health_stop(void)
{
    if (omni_health.timer != NULL) {
        event_free(omni_health.timer);
        omni_health.timer = NULL;
    }
    if (omni_health.soon != NULL) {
        event_free(omni_health.soon);
        omni_health.soon = NULL;
    }
}
