/* health.c: liveness, readiness (Postgres and Redis) and Prometheus metrics. */
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "io/clients.h"
#include "http/api.h"
#include "http/metrics.h"
#include "services/health/health.h"


#define OMNI_VERSION "0.1.0"
#define OMNI_HEALTH_REDIS_TIMEOUT_MS 250

static int omni_health_stmt;

typedef struct {
    int pg_up;
    int redis_up;
} omni_health_t;


static int omni_health_init(void)
{
    omni_health_stmt = omni_db_statement("health_ping", "SELECT 1");
    return omni_health_stmt < 0 ? -1 : 0;
}


/* This process's id, read once: getpid() is a system call a request on
 * the probe's hot path (about a microsecond on a virtual machine), and the
 * serving process never forks. */
static int omni_health_pid(void)
{
    static pid_t pid;

    if (pid == 0) {
        pid = getpid();
    }
    return (int)pid;
}


static void omni_health_respond(omni_req_t *r)
{
    omni_health_t *h = r->data;
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(b,
        "{\"status\":\"%s\",\"postgres\":\"%s\",\"redis\":\"%s\","
        "\"pid\":%d,\"version\":\"" OMNI_VERSION "\"}\n",
        !h->pg_up     ? "unavailable"
        : h->redis_up ? "ok"
                      : "degraded",
        h->pg_up ? "up" : "down", h->redis_up ? "up" : "down",
        omni_health_pid());
    /* without Postgres nothing useful can be served: not ready */
    omni_api_json(r, h->pg_up ? 200 : 503, b);
    evbuffer_free(b);
}


static void omni_health_pong(void *arg, int ok)
{
    omni_req_t *r = arg;
    omni_health_t *h = r->data;

    h->redis_up = ok;
    if (--r->pending == 0) {
        omni_health_respond(r);
    }
}


static void omni_health_pg_done(
    void *arg, omni_db_status_t status, PGresult *res)
{
    omni_req_t *r = arg;
    omni_health_t *h = r->data;

    h->pg_up = status == OMNI_DB_OK;
    if (--r->pending == 0) {
        omni_health_respond(r);
    }
}


static void omni_health(omni_req_t *r)
{
    omni_health_t *h;

    h = omni_arena_alloc(&r->arena, sizeof(omni_health_t));
    if (h == NULL) {
        omni_respond_error(r, 503, "overloaded", "out of memory");
        return;
    }
    memset(h, 0, sizeof(*h));
    r->data = h;

    /* one per probe, plus one held until both are started: a probe may
     * complete before this returns */
    r->pending = 3;

    if (omni_db_query(
            omni_clients.db, omni_health_stmt, 0, NULL, omni_health_pg_done, r)
        != OMNI_DB_OK) {
        r->pending--;
    }
    omni_redis_ping(
        omni_clients.redis, OMNI_HEALTH_REDIS_TIMEOUT_MS, omni_health_pong, r);

    if (--r->pending == 0) {
        omni_health_respond(r);
    }
}


static void omni_health_live(omni_req_t *r)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(
        b, "{\"status\":\"ok\",\"pid\":%d}\n", omni_health_pid());
    omni_api_json(r, 200, b);
    evbuffer_free(b);
}


static void omni_health_metrics(omni_req_t *r)
{
    struct evbuffer *b = evbuffer_new();

    omni_metrics_prometheus(b);
    omni_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", b);
    evbuffer_free(b);
}


/* open to anyone who reaches the worker: the gateway decides who may */
static const omni_route_t omni_health_routes[] = {
    {"GET", "/health", omni_health, 0},
    {"GET", "/health/live", omni_health_live, 0},
    {"GET", "/metrics", omni_health_metrics, 0},
};


const omni_service_t omni_health_service = {.name = "health",
    OMNI_SERVICE_ROUTES(omni_health_routes),
    .init = omni_health_init};
