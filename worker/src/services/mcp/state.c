/* state.c: every server's breaker as this process last loaded it.
 *
 * Each 250 ms the process reads omni:mcp:gen from Redis (one GET); when it
 * moved since the last load, or Redis cannot answer and a second passed,
 * it reloads all breakers in one query. Whoever changes a breaker or a
 * server writes Postgres first and then INCRs omni:mcp:gen, so every
 * process sees an opening within about 250 ms plus a query. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "io/clients.h"
#include "io/log.h"
#include "http/metrics.h"
#include "lib/breaker.h"
#include "services/mcp/state.h"
#include "services/mcp/upstream.h"

#define OMNI_STATE_GEN_KEY "omni:mcp:gen"

typedef struct {
    char id[37];
    char name[33];
    omni_breaker_state_t state;
    int64_t next_probe_ms;
} omni_state_server_t;

static struct {
    omni_state_server_t *servers;
    int n;
    struct event *timer;
    long long gen;     /* -1: never read */
    long long asked;   /* the gen the load in flight was asked at */
    long long copy;    /* the gen servers was loaded at; -1: unknown */
    int64_t loaded_ms; /* when the last load was asked */
    int busy;          /* a GET or a load is in flight */
} omni_state = {.gen = -1, .asked = -1, .copy = -1};

static int omni_state_stmt;


int omni_mcp_state_init(void)
{
    omni_state_stmt = omni_db_statement("mcp_state_load",
        "SELECT s.id, s.name, b.state,"
        " coalesce((extract(epoch FROM b.next_probe_at) * 1000)::bigint, 0)"
        " FROM omni2.mcp_servers AS s"
        " JOIN omni2.circuit_breakers AS b ON b.server_id = s.id");
    return omni_state_stmt < 0 ? -1 : 0;
}


static void omni_state_loaded(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_state_server_t *servers;
    int i, n;

    omni_state.busy = 0;
    if (st != OMNI_DB_OK) {
        omni_state.gen = -1; /* try again at the next tick */
        return;
    }
    n = PQntuples(res);
    servers = calloc((size_t)n + 1, sizeof(*servers));
    if (servers == NULL) {
        omni_state.gen = -1;
        return;
    }
    for (i = 0; i < n; i++) {
        snprintf(
            servers[i].id, sizeof(servers[i].id), "%s", PQgetvalue(res, i, 0));
        snprintf(servers[i].name, sizeof(servers[i].name), "%s",
            PQgetvalue(res, i, 1));
        omni_breaker_state_parse(PQgetvalue(res, i, 2), &servers[i].state);
        servers[i].next_probe_ms = atoll(PQgetvalue(res, i, 3));
    }
    free(omni_state.servers);
    omni_state.servers = servers;
    omni_state.n = n;
    omni_state.copy = omni_state.asked;
}


/* Background work yields to requests: it only runs on an idle
 * connection, never waiting in the queue a request may need. */
static int omni_mcp_pool_idle(void)
{
    omni_db_stats_t st;

    omni_db_stats(omni_clients.db, &st);
    return st.queued == 0 && st.ready - st.busy >= 1;
}


/* A load that cannot run now (no idle connection) is retried at the next
 * tick: gen is forgotten. */
static void omni_state_load(void)
{
    omni_state.asked = omni_state.gen;
    omni_state.loaded_ms = omni_mcp_now_ms();
    if (!omni_mcp_pool_idle()) {
        omni_state.gen = -1;
        return;
    }
    if (omni_db_query(
            omni_clients.db, omni_state_stmt, 0, NULL, omni_state_loaded, NULL)
        == OMNI_DB_OK) {
        omni_state.busy = 1;
    }
}


static void omni_state_gen_read(redisAsyncContext *ctx, void *reply, void *arg)
{
    redisReply *rep = reply;
    long long gen;

    omni_state.busy = 0;
    if (rep == NULL
        || (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_NIL)) {
        omni_state.gen = -1; /* a load now is of no known generation */
        if (omni_mcp_now_ms() - omni_state.loaded_ms >= 1000) {
            omni_state_load();
        }
        return;
    }
    gen = rep->type == REDIS_REPLY_NIL ? 0 : atoll(rep->str);
    if (gen != omni_state.gen) {
        omni_state.gen = gen;
        omni_state_load();
    }
}


static void omni_state_tick(evutil_socket_t fd, short what, void *arg)
{
    if (omni_state.busy) {
        return;
    }
    if (omni_clients.redis != NULL
        && omni_redis_command(omni_clients.redis, omni_state_gen_read, NULL,
               "GET " OMNI_STATE_GEN_KEY)
               == 0) {
        omni_state.busy = 1;
        return;
    }
    omni_state.gen = -1;
    if (omni_mcp_now_ms() - omni_state.loaded_ms >= 1000) {
        omni_state_load();
    }
}


/* omni_worker_mcp_breaker_state per server, from this process's copy */
static int omni_state_metrics(struct evbuffer *out)
{
    int i, rc;

    rc = evbuffer_add_printf(out,
             "# HELP omni_worker_mcp_breaker_state Each MCP server's circuit "
             "breaker: 0 closed, 1 open, 2 half-open (at most 250 ms old).\n"
             "# TYPE omni_worker_mcp_breaker_state gauge\n")
         < 0;
    for (i = 0; i < omni_state.n; i++) {
        rc |= evbuffer_add_printf(out,
                  "omni_worker_mcp_breaker_state{server=\"%s\","
                  "server_id=\"%s\"} %d\n",
                  omni_state.servers[i].name, omni_state.servers[i].id,
                  (int)omni_state.servers[i].state)
              < 0;
    }
    return rc ? -1 : 0;
}


int omni_mcp_state_start(void)
{
    struct timeval tv = {0, 250 * 1000};

    omni_state.timer =
        event_new(omni_clients.base, -1, EV_PERSIST, omni_state_tick, NULL);
    if (omni_state.timer == NULL) {
        return -1;
    }
    event_add(omni_state.timer, &tv);
    omni_metrics_extra(omni_state_metrics);
    omni_state_load();
    return 0;
}


void omni_mcp_state_stop(void)
{
    if (omni_state.timer != NULL) {
        event_free(omni_state.timer);
        omni_state.timer = NULL;
    }
    free(omni_state.servers);
    omni_state.servers = NULL;
    omni_state.n = 0;
}


typedef struct {
    void (*done)(void *arg);
    void *arg;
} omni_state_bump_t;


static void omni_state_bumped(redisAsyncContext *ctx, void *reply, void *arg)
{
    omni_state_bump_t *b = arg;

    if (reply == NULL) {
        omni_log(OMNI_LOG_WARN,
            "cannot announce an MCP change on Redis: processes see it within "
            "a second",
            NULL);
    }
    if (b != NULL) {
        b->done(b->arg);
        free(b);
    }
}


int omni_mcp_state_bump_then(void (*done)(void *arg), void *arg)
{
    omni_state_bump_t *b = NULL;

    if (done != NULL && (b = malloc(sizeof(*b))) == NULL) {
        (void)omni_mcp_state_bump_then(NULL, NULL);
        return -1;
    }
    if (b != NULL) {
        b->done = done;
        b->arg = arg;
    }
    if (omni_clients.redis == NULL
        || omni_redis_command(omni_clients.redis, omni_state_bumped, b,
               "INCR " OMNI_STATE_GEN_KEY)
               != 0) {
        omni_log(OMNI_LOG_WARN,
            "cannot announce an MCP change on Redis: processes see it within "
            "a second",
            NULL);
        free(b);
        return -1;
    }
    return 0;
}


void omni_mcp_state_bump(void)
{
    (void)omni_mcp_state_bump_then(NULL, NULL);
}


long long omni_mcp_state_gen(void)
{
    return omni_state.copy;
}


int omni_mcp_state_down(const char *ref, const char **id)
{
    int i;

    *id = NULL;
    for (i = 0; i < omni_state.n; i++) {
        if (strcmp(omni_state.servers[i].id, ref) == 0
            || strcmp(omni_state.servers[i].name, ref) == 0) {
            *id = omni_state.servers[i].id;
            return omni_state.servers[i].state == OMNI_BREAKER_OPEN
                   && omni_mcp_now_ms() < omni_state.servers[i].next_probe_ms;
        }
    }
    return 0;
}
