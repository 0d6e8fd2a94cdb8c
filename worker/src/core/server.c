/* server.c: a worker process: one libevent loop serving HTTP, Postgres, Redis.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>

#include "io/clients.h"
#include "io/log.h"
#include "io/offload.h"
#include "http/conn.h"
#include "http/http.h"
#include "http/metrics.h"
#include "core/balance.h"
#include "core/server.h"
#include "core/services.h"


#define OMNI_DRAIN_QUIET_MS 200

static struct {
    omni_conn_listen_t listen;
    int listening;
    struct event sigterm;
    struct event deadline;
    struct event quiet;
    struct event gauges;
    struct event warmup;
    int warmup_ticks;
    int listen_fd;
    int ready_fd;
    int slot;
    int draining;
} omni_proc;


static void omni_server_publish(evutil_socket_t fd, short what, void *arg)
{
    omni_db_stats_t st;
    omni_redis_stats_t rs;

    omni_db_stats(omni_clients.db, &st);
    omni_redis_stats(omni_clients.redis, &rs);
    omni_metrics_gauges(&st, omni_http_inflight(), &rs);
}


static void omni_server_stop(void *arg)
{
    event_base_loopbreak(omni_clients.base);
}


static void omni_server_drained(void *arg);


/* Nothing in flight for a while: a connection accepted just before the
 * drain, or a request already on its way over a keepalive connection, has
 * had its chance to arrive. */
static void omni_server_quiet(evutil_socket_t fd, short what, void *arg)
{
    if (omni_http_inflight() > 0) {
        omni_http_drain(omni_server_drained, NULL);
        return;
    }
    omni_log(OMNI_LOG_INFO, "drained", NULL);
    omni_services_stop(omni_server_stop, NULL);
}


static void omni_server_drained(void *arg)
{
    struct timeval tv = {0, OMNI_DRAIN_QUIET_MS * 1000};

    evtimer_add(&omni_proc.quiet, &tv);
}


static void omni_server_deadline(evutil_socket_t fd, short what, void *arg)
{
    omni_log(OMNI_LOG_WARN, "drain deadline passed, exiting", "\"inflight\":%d",
        omni_http_inflight());
    event_base_loopbreak(omni_clients.base);
}


static void omni_server_sigterm(evutil_socket_t fd, short what, void *arg)
{
    int ms = omni_clients.cfg->drain_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (omni_proc.draining) {
        return;
    }
    omni_proc.draining = 1;
    omni_log(
        OMNI_LOG_INFO, "draining", "\"inflight\":%d", omni_http_inflight());

    /* stop accepting: the other processes take new connections */
    evtimer_del(&omni_proc.warmup);
    omni_balance_leave();
    if (omni_proc.listening) {
        omni_conn_unlisten();
        omni_proc.listening = 0;
    }

    evtimer_assign(
        &omni_proc.deadline, omni_clients.base, omni_server_deadline, NULL);
    evtimer_add(&omni_proc.deadline, &tv);
    evtimer_assign(
        &omni_proc.quiet, omni_clients.base, omni_server_quiet, NULL);
    omni_http_drain(omni_server_drained, NULL);
}


/* Each connection accepted, inside libevent's accept loop. */
static void omni_server_accepted(void *arg)
{
    omni_balance_accepted(omni_conn_listener());
}


#define OMNI_WARMUP_TICK_MS 5

/* Starts accepting once a Postgres connection can take the first request:
 * until then the previous generation (on reload) or the listen backlog
 * (at start-up) holds the connections, instead of this process queueing
 * them behind connection set-up. */
static void omni_server_warmup(evutil_socket_t fd, short what, void *arg)
{
    struct timeval tv = {0, OMNI_WARMUP_TICK_MS * 1000};
    omni_db_stats_t st;
    char one = 1;
    ssize_t n;

    omni_db_stats(omni_clients.db, &st);
    if (st.ready - st.busy <= 0 && !omni_proc.draining
        && ++omni_proc.warmup_ticks
               < OMNI_SERVER_WARMUP_MS / OMNI_WARMUP_TICK_MS) {
        evtimer_add(&omni_proc.warmup, &tv);
        return;
    }
    if (omni_proc.draining) {
        return;
    }

    omni_proc.listen.fd = omni_proc.listen_fd;
    omni_proc.listening =
        omni_conn_listen(omni_clients.base, &omni_proc.listen) == 0;
    if (!omni_proc.listening) {
        omni_log(OMNI_LOG_ERROR, "cannot accept on the listening socket", NULL);
        event_base_loopbreak(omni_clients.base);
        return;
    }
    omni_balance_attach(omni_proc.slot, omni_clients.base);
    if (omni_proc.ready_fd >= 0) {
        do {
            n = write(omni_proc.ready_fd, &one, 1);
        } while (n < 0 && errno == EINTR);
        close(omni_proc.ready_fd);
        omni_proc.ready_fd = -1;
    }
    omni_log(OMNI_LOG_INFO, "worker ready", "\"slot\":%d,\"postgres\":%s",
        omni_proc.slot, st.ready > 0 ? "true" : "false");
}


int omni_server_run(
    const omni_config_t *cfg, int listen_fd, int slot, int ready_fd)
{
    const omni_route_t *routes;
    struct event_config *evcfg;
    char err[256];
    struct timeval tv;
    int rc = 1, nroutes;

    /* the master decides when we stop; die with it if it is killed */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    srand((unsigned)getpid());
    omni_clients.cfg = cfg;
    omni_metrics_attach(slot);

    /* the clients turn a socket's interest on and off within one loop
     * pass (Postgres's write interest around a send): the changelist sends
     * epoll only the net change at the end of each pass (no fd here is
     * dup()ed, the flag's one hazard) */
    evcfg = event_config_new();
    if (evcfg != NULL) {
        event_config_set_flag(evcfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        omni_clients.base = event_base_new_with_config(evcfg);
        event_config_free(evcfg);
    }
    if (omni_clients.base == NULL) {
        omni_log(OMNI_LOG_ERROR, "cannot create event loop", NULL);
        return 1;
    }

    omni_clients.db = omni_db_create(omni_clients.base, cfg->database_url,
        cfg->pg_pool_size, cfg->pg_queue_max, cfg->pg_query_timeout_ms);
    omni_clients.redis = omni_redis_create(omni_clients.base, cfg->redis_addr,
        cfg->redis_password, cfg->redis_timeout_ms, cfg->redis_pending_max, err,
        sizeof(err));
    if (omni_clients.redis == NULL) {
        omni_log(OMNI_LOG_ERROR, "bad Redis setting", "\"error\":\"%s\"", err);
        return OMNI_EXIT_CONFIG;
    }
    if (omni_clients.db == NULL) {
        omni_log(OMNI_LOG_ERROR, "out of memory at start-up", NULL);
        goto failed;
    }

    routes = omni_services_routes(&nroutes);
    if (omni_http_attach(routes, nroutes, cfg) != 0) {
        omni_log(OMNI_LOG_ERROR, "cannot digest OMNI_GATEWAY_SECRET", NULL);
        goto failed;
    }
    omni_proc.listen.idle.tv_sec = cfg->http_timeout_ms / 1000;
    omni_proc.listen.idle.tv_usec = (cfg->http_timeout_ms % 1000) * 1000;
    omni_proc.listen.max_body = (size_t)cfg->max_body_bytes;
    omni_proc.listen.check_peer = omni_config_listen_unix(cfg->listen);
    omni_http_on_accept(omni_server_accepted, NULL);

    if (omni_offload_start(
            omni_clients.base, cfg->auth_threads, cfg->auth_queue_max)
        != 0) {
        omni_log(OMNI_LOG_ERROR, "cannot start the auth threads", NULL);
        goto failed;
    }
    if (omni_services_start() != 0) {
        goto failed;
    }

    evsignal_assign(&omni_proc.sigterm, omni_clients.base, SIGTERM,
        omni_server_sigterm, NULL);
    evsignal_add(&omni_proc.sigterm, NULL);

    tv.tv_sec = 1;
    tv.tv_usec = 0;
    event_assign(&omni_proc.gauges, omni_clients.base, -1, EV_PERSIST,
        omni_server_publish, NULL);
    event_add(&omni_proc.gauges, &tv);

    omni_proc.listen_fd = listen_fd;
    omni_proc.ready_fd = ready_fd;
    evtimer_assign(
        &omni_proc.warmup, omni_clients.base, omni_server_warmup, NULL);
    omni_proc.slot = slot;
    omni_server_warmup(-1, 0, NULL);

    event_base_dispatch(omni_clients.base);
    rc = 0;

failed:

    omni_offload_stop();

    /* Postgres first: its callbacks still answer on the connections. Each
     * client is forgotten as it is freed: freeing Redis calls its pending
     * callbacks, and one that turns to Postgres (the MCP state reload)
     * must find no pool rather than a freed one. */
    if (omni_clients.db) {
        omni_db_free(omni_clients.db);
        omni_clients.db = NULL;
    }
    if (omni_clients.redis) {
        omni_redis_free(omni_clients.redis);
        omni_clients.redis = NULL;
    }
    omni_conn_unlisten();
    omni_conn_close_all();
    event_base_free(omni_clients.base);
    omni_log(OMNI_LOG_INFO, "worker exit", "\"code\":%d", rc);
    return rc;
}
