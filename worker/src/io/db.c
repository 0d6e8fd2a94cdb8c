/* db.c: non-blocking libpq connection pool driven by the process's event loop.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/db.h"
#include "io/log.h"


#define OMNI_DB_CONNECT_TIMEOUT_MS 3000
#define OMNI_DB_BACKOFF_MIN_MS 100
#define OMNI_DB_BACKOFF_MAX_MS 2000
/* queries of one loop pass sent together on one connection */
#define OMNI_DB_PIPELINE_MAX 16

typedef enum {
    OMNI_DB_CONN_DOWN, /* waiting for the reconnect timer */
    OMNI_DB_CONN_CONNECTING,
    OMNI_DB_CONN_PREPARING, /* preparing statement prep_idx */
    OMNI_DB_CONN_IDLE,
    OMNI_DB_CONN_BUSY
} omni_db_conn_state_t;

typedef struct omni_db_query omni_db_query_t;
typedef struct omni_db_conn omni_db_conn_t;

struct omni_db_query {
    omni_db_query_t *next; /* wait queue, then the connection's */
    omni_db_t *db;
    omni_db_conn_t *conn; /* set while running */
    int stmt;
    int nparams;
    const char *values[OMNI_DB_MAX_PARAMS];
    omni_db_cb_pt cb;
    void *arg;
    struct event timer; /* query timeout, queued or running */
    char buf[];         /* copies of the parameters */
};

struct omni_db_conn {
    omni_db_t *db;
    PGconn *pg;
    omni_db_conn_state_t state;
    int fd;
    short watching; /* EV_READ / EV_WRITE we wait for */
    int flushing;   /* PQflush() still has output */
    int prep_idx;
    int backoff_ms;
    omni_db_query_t *q, *q_tail; /* sent, in order; q's results come next */
    int syncs;                   /* pipeline syncs not yet read back */
    int cork;                    /* TCP: batches go out in one segment */
    PGresult *res;               /* first result of q */
    struct event io;
    struct event timer; /* reconnect backoff or connect timeout */
};

struct omni_db {
    struct event_base *base;
    char *conninfo;
    char options[64];
    int size;
    int queue_max;
    int timeout_ms;
    int connect_failed; /* last attempt failed, none up */
    int queued;
    omni_db_query_t *head, *tail;
    struct event send; /* sends the queue on the next turn */
    unsigned long long queries, errors, timeouts, unavailable, pipelined;
    omni_db_conn_t conns[];
};

static struct {
    const char *name;
    const char *sql;
    int binary; /* results in binary format */
    int brief;  /* may share a pipeline with other brief ones */
} omni_db_statements[OMNI_DB_MAX_STATEMENTS];
static int omni_db_nstatements;


static void omni_db_connect(omni_db_conn_t *c);
static void omni_db_conn_fail(omni_db_conn_t *c, const char *why);
static void omni_db_conn_io(evutil_socket_t fd, short what, void *arg);
static omni_db_status_t omni_db_result_status(PGresult *res);
static void omni_db_conn_timer(evutil_socket_t fd, short what, void *arg);
static void omni_db_query_timeout(evutil_socket_t fd, short what, void *arg);
static void omni_db_dispatch(omni_db_t *db);
static void omni_db_send_queued(evutil_socket_t fd, short what, void *arg);


int omni_db_statement(const char *name, const char *sql)
{
    if (omni_db_nstatements == OMNI_DB_MAX_STATEMENTS) {
        return -1;
    }
    omni_db_statements[omni_db_nstatements].name = name;
    omni_db_statements[omni_db_nstatements].sql = sql;
    omni_db_statements[omni_db_nstatements].binary = 0;
    omni_db_statements[omni_db_nstatements].brief = 0;
    return omni_db_nstatements++;
}


int omni_db_statement_brief(const char *name, const char *sql)
{
    int i = omni_db_statement(name, sql);

    if (i >= 0) {
        omni_db_statements[i].brief = 1;
    }
    return i;
}


int omni_db_statement_binary(const char *name, const char *sql)
{
    int i = omni_db_statement(name, sql);

    if (i >= 0) {
        omni_db_statements[i].binary = 1;
    }
    return i;
}


omni_db_t *omni_db_create(struct event_base *base, const char *conninfo,
    int size, int queue_max, int timeout_ms)
{
    omni_db_t *db;
    int i;

    db = calloc(1, sizeof(omni_db_t) + size * sizeof(omni_db_conn_t));
    if (db == NULL) {
        return NULL;
    }

    db->conninfo = strdup(conninfo);
    if (db->conninfo == NULL) {
        free(db);
        return NULL;
    }

    db->base = base;
    db->size = size;
    db->queue_max = queue_max;
    db->timeout_ms = timeout_ms;
    /* the server abandons what we have stopped waiting for */
    snprintf(db->options, sizeof(db->options), "-c statement_timeout=%d",
        timeout_ms);
    evtimer_assign(&db->send, base, omni_db_send_queued, db);

    for (i = 0; i < size; i++) {
        omni_db_conn_t *c = &db->conns[i];

        c->db = db;
        c->fd = -1;
        evtimer_assign(&c->timer, base, omni_db_conn_timer, c);
        omni_db_connect(c);
    }

    return db;
}


static void omni_db_notice(void *arg, const char *message)
{
    char buf[512];

    omni_log(OMNI_LOG_WARN, "postgres notice", "\"detail\":\"%s\"",
        omni_log_escape(buf, sizeof(buf), message));
}


static void omni_db_watch(omni_db_conn_t *c, short what)
{
    int fd = PQsocket(c->pg);

    /* while connecting, libpq closes a host's socket and opens the next
     * one's (a multi-host URL, target_session_attrs), often under the same
     * number: epoll dropped the closed one, so register the new one */
    if (fd == c->fd && what == c->watching
        && c->state != OMNI_DB_CONN_CONNECTING) {
        return;
    }
    if (c->watching) {
        event_del(&c->io);
    }
    c->fd = fd;
    c->watching = what;
    event_assign(
        &c->io, c->db->base, fd, what | EV_PERSIST, omni_db_conn_io, c);
    event_add(&c->io, NULL);
}


static void omni_db_unwatch(omni_db_conn_t *c)
{
    if (c->watching) {
        event_del(&c->io);
        c->watching = 0;
    }
    c->fd = -1;
}


static void omni_db_timer_ms(struct event *ev, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    evtimer_add(ev, &tv);
}


static void omni_db_connect(omni_db_conn_t *c)
{
    const char *keys[] = {"dbname", "application_name", "options", NULL};
    const char *vals[] = {c->db->conninfo, "omni-worker", c->db->options, NULL};

    c->pg = PQconnectStartParams(keys, vals, 1);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD
        || PQsocket(c->pg) < 0 || PQsetnonblocking(c->pg, 1) != 0) {
        omni_db_conn_fail(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }

    PQsetNoticeProcessor(c->pg, omni_db_notice, NULL);
    c->state = OMNI_DB_CONN_CONNECTING;
    omni_db_timer_ms(&c->timer, OMNI_DB_CONNECT_TIMEOUT_MS);
    /* PQconnectPoll wants to be called once the socket is writable */
    omni_db_watch(c, EV_WRITE);
}


static void omni_db_finish_query(
    omni_db_query_t *q, omni_db_status_t status, PGresult *res)
{
    omni_db_t *db = q->db;

    evtimer_del(&q->timer);
    switch (status) {
    case OMNI_DB_ERROR:
        db->errors++;
        break;
    case OMNI_DB_TIMEOUT:
        db->timeouts++;
        break;
    case OMNI_DB_UNAVAILABLE:
        db->unavailable++;
        break;
    default:
        break;
    }
    q->cb(q->arg, status, res);
    free(q);
}


/* Fails every waiting query once no connection can take it. */
static void omni_db_drain_queue(omni_db_t *db)
{
    omni_db_query_t *q;

    if (omni_db_available(db)) {
        return;
    }
    while ((q = db->head) != NULL) {
        db->head = q->next;
        db->queued--;
        omni_db_finish_query(q, OMNI_DB_UNAVAILABLE, NULL);
    }
    db->tail = NULL;
}


static void omni_db_conn_fail(omni_db_conn_t *c, const char *why)
{
    char buf[512];
    omni_db_query_t *q = c->q;
    int was_ready =
        c->state == OMNI_DB_CONN_IDLE || c->state == OMNI_DB_CONN_BUSY;

    omni_log(OMNI_LOG_WARN, "postgres connection lost",
        "\"state\":%d,\"error\":\"%s\"", (int)c->state,
        omni_log_escape(buf, sizeof(buf), why));

    omni_db_unwatch(c);
    evtimer_del(&c->timer);
    if (c->res) {
        PQclear(c->res);
        c->res = NULL;
    }
    if (c->pg) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->q = c->q_tail = NULL;
    c->syncs = 0;
    c->flushing = 0;
    c->state = OMNI_DB_CONN_DOWN;

    if (was_ready) {
        /* a working connection broke: try again at once */
        c->backoff_ms = 0;
    } else {
        c->db->connect_failed = 1;
        c->backoff_ms =
            c->backoff_ms ? c->backoff_ms * 2 : OMNI_DB_BACKOFF_MIN_MS;
        if (c->backoff_ms > OMNI_DB_BACKOFF_MAX_MS) {
            c->backoff_ms = OMNI_DB_BACKOFF_MAX_MS;
        }
    }

    /* jitter of up to a quarter spreads the processes' reconnects */
    omni_db_timer_ms(&c->timer,
        c->backoff_ms + (c->backoff_ms ? rand() % (c->backoff_ms / 4 + 1) : 0));

    while (q != NULL) {
        omni_db_query_t *next = q->next;

        q->conn = NULL;
        omni_db_finish_query(q, OMNI_DB_UNAVAILABLE, NULL);
        q = next;
    }
    omni_db_drain_queue(c->db);
}


static void omni_db_conn_timer(evutil_socket_t fd, short what, void *arg)
{
    omni_db_conn_t *c = arg;

    if (c->state == OMNI_DB_CONN_DOWN) {
        omni_db_connect(c);
    } else {
        omni_db_conn_fail(c, "connect timeout");
    }
}


static int omni_db_send_prepare(omni_db_conn_t *c)
{
    int i = c->prep_idx;

    if (!PQsendPrepare(c->pg, omni_db_statements[i].name,
            omni_db_statements[i].sql, 0, NULL)) {
        return -1;
    }
    c->flushing = 1;
    return 0;
}


static void omni_db_conn_ready(omni_db_conn_t *c)
{
    if (!PQenterPipelineMode(c->pg)) {
        omni_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    evtimer_del(&c->timer);
    c->state = OMNI_DB_CONN_IDLE;
    c->cork = 1;
    c->backoff_ms = 0;
    c->db->connect_failed = 0;
    omni_db_watch(c, EV_READ);
    omni_db_dispatch(c->db);
}


static void omni_db_start_preparing(omni_db_conn_t *c)
{
    c->state = OMNI_DB_CONN_PREPARING;
    c->prep_idx = 0;

    if (omni_db_nstatements == 0) {
        omni_db_conn_ready(c);
        return;
    }
    if (omni_db_send_prepare(c) != 0) {
        omni_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    omni_db_watch(c, EV_READ | EV_WRITE);
}


/* Reads what arrived; returns 1 when the current command's results are all
 * in (c->res holds the first), 0 when more is to come, -1 on a dead link. */
static int omni_db_read_results(omni_db_conn_t *c)
{
    PGresult *res;

    if (!PQconsumeInput(c->pg)) {
        return -1;
    }
    while (!PQisBusy(c->pg)) {
        res = PQgetResult(c->pg);
        if (res == NULL) {
            return 1;
        }
        if (c->res == NULL) {
            c->res = res;
        } else {
            PQclear(res);
        }
    }
    return PQstatus(c->pg) == CONNECTION_BAD ? -1 : 0;
}


/* What a finished statement means for the caller: Postgres cancelling it
 * for statement_timeout is our timeout, a server going away is an outage,
 * anything else it rejected is an error. */
static omni_db_status_t omni_db_result_status(PGresult *res)
{
    const char *state;

    switch (res ? PQresultStatus(res) : PGRES_FATAL_ERROR) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
        return OMNI_DB_OK;
    default:
        break;
    }

    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state == NULL) {
        return OMNI_DB_ERROR;
    }
    if (strcmp(state, "57014") == 0) {
        return OMNI_DB_TIMEOUT;
    }
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0) {
        return OMNI_DB_UNAVAILABLE;
    }
    return OMNI_DB_ERROR;
}


/* A ready connection runs in pipeline mode: each query is followed by a
 * sync, so a failing one aborts nothing else; its results are read back
 * in order as the query's results, a NULL, then the sync's. */
static void omni_db_read_pipeline(omni_db_conn_t *c)
{
    omni_db_query_t *q;
    PGresult *res;

    if (!PQconsumeInput(c->pg)) {
        omni_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    while ((c->q != NULL || c->syncs > 0) && !PQisBusy(c->pg)) {
        res = PQgetResult(c->pg);
        if (res != NULL && PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            c->syncs--;
            continue;
        }
        if (res != NULL) {
            if (c->res == NULL) {
                c->res = res;
            } else {
                PQclear(res);
            }
            continue;
        }
        if (c->q == NULL || c->res == NULL) {
            break; /* nothing of a query is in yet */
        }

        q = c->q;
        c->q = q->next;
        if (c->q == NULL) {
            c->q_tail = NULL;
            c->state = OMNI_DB_CONN_IDLE;
        }
        q->next = NULL;
        q->conn = NULL;
        res = c->res;
        c->res = NULL;
        omni_db_finish_query(q, omni_db_result_status(res), res);
        PQclear(res);
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        omni_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    omni_db_dispatch(c->db);
}


static void omni_db_conn_io(evutil_socket_t fd, short what, void *arg)
{
    omni_db_conn_t *c = arg;
    PGresult *res;
    int rc;

    switch (c->state) {

    case OMNI_DB_CONN_CONNECTING:
        switch (PQconnectPoll(c->pg)) {
        case PGRES_POLLING_READING:
            omni_db_watch(c, EV_READ);
            return;
        case PGRES_POLLING_WRITING:
            omni_db_watch(c, EV_WRITE);
            return;
        case PGRES_POLLING_OK:
            omni_db_start_preparing(c);
            return;
        default:
            omni_db_conn_fail(c, PQerrorMessage(c->pg));
            return;
        }

    case OMNI_DB_CONN_DOWN:
        return;

    default:
        break;
    }

    if (c->flushing) {
        rc = PQflush(c->pg);
        if (rc < 0) {
            omni_db_conn_fail(c, PQerrorMessage(c->pg));
            return;
        }
        c->flushing = rc;
        omni_db_watch(c, rc ? EV_READ | EV_WRITE : EV_READ);
    }

    if (!(what & EV_READ)) {
        return;
    }
    if (c->state != OMNI_DB_CONN_PREPARING) {
        omni_db_read_pipeline(c);
        return;
    }

    rc = omni_db_read_results(c);
    if (rc < 0) {
        omni_db_conn_fail(c, PQerrorMessage(c->pg));
        return;
    }
    if (rc == 0) {
        return;
    }

    res = c->res;
    c->res = NULL;

    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        char msg[512];

        snprintf(msg, sizeof(msg), "prepare %s: %s",
            omni_db_statements[c->prep_idx].name,
            res ? PQresultErrorMessage(res) : "no result");
        PQclear(res);
        /* a broken statement is a bug or a missing migration: never
         * serve from this connection, and say why */
        omni_db_conn_fail(c, msg);
        return;
    }
    PQclear(res);
    if (++c->prep_idx == omni_db_nstatements) {
        omni_db_conn_ready(c);
    } else if (omni_db_send_prepare(c) != 0) {
        omni_db_conn_fail(c, PQerrorMessage(c->pg));
    } else {
        omni_db_watch(c, EV_READ | EV_WRITE);
    }
}


static void omni_db_cork(omni_db_conn_t *c, int on)
{
    if (c->cork
        && setsockopt(PQsocket(c->pg), IPPROTO_TCP, TCP_CORK, &on, sizeof(on))
               != 0) {
        c->cork = 0; /* a unix socket */
    }
}


/* Sends the queue's head queries on c in one pipeline: libpq flushes at
 * each sync, and the cork makes those writes one segment, so the backend
 * wakes once for the batch instead of one backend per query. Only brief
 * statements share a batch: one backend runs a batch's queries one after
 * another, so any other query goes alone, and neither waits behind nor
 * holds up the others (nor fails with them when it times out). */
static int omni_db_send_batch(omni_db_conn_t *c)
{
    omni_db_t *db = c->db;
    omni_db_query_t *q;
    int brief = omni_db_statements[db->head->stmt].brief;
    int n, rc,
        corked = brief && db->head->next != NULL
                 && omni_db_statements[db->head->next->stmt].brief;

    if (corked) {
        omni_db_cork(c, 1);
    }
    for (n = 0; n < OMNI_DB_PIPELINE_MAX && db->head != NULL; n++) {
        if (n > 0 && !(brief && omni_db_statements[db->head->stmt].brief)) {
            break;
        }
        q = db->head;
        db->head = q->next;
        if (db->head == NULL) {
            db->tail = NULL;
        }
        db->queued--;

        /* on the connection first: if sending fails, it fails with it */
        q->next = NULL;
        q->conn = c;
        if (c->q_tail != NULL) {
            c->q_tail->next = q;
        } else {
            c->q = q;
        }
        c->q_tail = q;
        c->state = OMNI_DB_CONN_BUSY;

        if (!PQsendQueryPrepared(c->pg, omni_db_statements[q->stmt].name,
                q->nparams, q->values, NULL, NULL,
                omni_db_statements[q->stmt].binary)
            || !PQpipelineSync(c->pg)) {
            return -1;
        }
        c->syncs++;
        db->queries++;
        db->pipelined += n > 0;
    }
    if (corked) {
        omni_db_cork(c, 0);
    }

    rc = PQflush(c->pg);
    if (rc < 0) {
        return -1;
    }
    c->flushing = rc;
    omni_db_watch(c, rc ? EV_READ | EV_WRITE : EV_READ);
    return 0;
}


/* Sends queued queries on the loop's next turn, after the socket writes
 * that turn brings. Sending a query wakes its backend, and when Postgres
 * shares our core the backend preempts this thread at once and runs the
 * whole query (a millisecond and more) while responses the loop has ready
 * wait for their write. A zero timer does it: libevent activates expired
 * timers after the I/O events of the same epoll_wait, so the writes (and
 * reads) that come back with it run first, and the send is never delayed
 * by more than one turn however busy the loop is. */
static void omni_db_dispatch(omni_db_t *db)
{
    static const struct timeval now = {0, 0};

    if (db->head && !evtimer_pending(&db->send, NULL)) {
        evtimer_add(&db->send, &now);
    }
}


static void omni_db_send_queued(evutil_socket_t fd, short what, void *arg)
{
    omni_db_t *db = arg;
    int i;

    for (i = 0; i < db->size && db->head; i++) {
        omni_db_conn_t *c = &db->conns[i];

        if (c->state == OMNI_DB_CONN_IDLE && omni_db_send_batch(c) != 0) {
            omni_db_conn_fail(c, PQerrorMessage(c->pg));
        }
    }
}


int omni_db_available(omni_db_t *db)
{
    int i, connecting = 0;

    if (db == NULL) {
        return 0;
    }
    for (i = 0; i < db->size; i++) {
        switch (db->conns[i].state) {
        case OMNI_DB_CONN_IDLE:
        case OMNI_DB_CONN_BUSY:
            return 1;
        case OMNI_DB_CONN_CONNECTING:
        case OMNI_DB_CONN_PREPARING:
            connecting = 1;
            break;
        default:
            break;
        }
    }
    return connecting && !db->connect_failed;
}


omni_db_status_t omni_db_query(omni_db_t *db, int stmt, int nparams,
    const char *const *values, omni_db_cb_pt cb, void *arg)
{
    omni_db_query_t *q;
    size_t need = 0, len;
    char *p;
    int i;

    if (!omni_db_available(db)) {
        if (db != NULL) {
            db->unavailable++;
        }
        return OMNI_DB_UNAVAILABLE;
    }
    if (db->queued >= db->queue_max) {
        return OMNI_DB_BUSY;
    }

    for (i = 0; i < nparams; i++) {
        need += values[i] ? strlen(values[i]) + 1 : 0;
    }
    q = malloc(sizeof(omni_db_query_t) + need);
    if (q == NULL) {
        return OMNI_DB_BUSY;
    }

    q->next = NULL;
    q->db = db;
    q->conn = NULL;
    q->stmt = stmt;
    q->nparams = nparams;
    q->cb = cb;
    q->arg = arg;
    p = q->buf;
    for (i = 0; i < nparams; i++) {
        if (values[i] == NULL) {
            q->values[i] = NULL;
            continue;
        }
        len = strlen(values[i]) + 1;
        memcpy(p, values[i], len);
        q->values[i] = p;
        p += len;
    }

    evtimer_assign(&q->timer, db->base, omni_db_query_timeout, q);
    omni_db_timer_ms(&q->timer, db->timeout_ms);

    if (db->tail) {
        db->tail->next = q;
    } else {
        db->head = q;
    }
    db->tail = q;
    db->queued++;

    omni_db_dispatch(db);
    return OMNI_DB_OK;
}


static void omni_db_query_timeout(evutil_socket_t fd, short what, void *arg)
{
    omni_db_query_t *q = arg, **pp, *prev;
    omni_db_t *db = q->db;
    omni_db_conn_t *c = q->conn;

    if (c != NULL) {
        /* the connection is stuck mid-query: drop it (the server's
         * statement_timeout ends the query) and reconnect at once; the
         * queries sent with it wait behind it, out of time alike */
        omni_db_query_t *sent = c->q, *next;

        c->q = c->q_tail = NULL;
        for (; sent != NULL; sent = next) {
            next = sent->next;
            sent->conn = NULL;
            omni_db_finish_query(sent, OMNI_DB_TIMEOUT, NULL);
        }
        omni_db_conn_fail(c, "query timeout");
        return;
    }

    prev = NULL;
    for (pp = &db->head; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            if (db->tail == q) {
                db->tail = prev;
            }
            db->queued--;
            break;
        }
    }
    omni_db_finish_query(q, OMNI_DB_TIMEOUT, NULL);
}


void omni_db_stats(omni_db_t *db, omni_db_stats_t *st)
{
    int i;

    memset(st, 0, sizeof(*st));
    if (db == NULL) {
        return;
    }
    st->size = db->size;
    st->queued = db->queued;
    st->queue_max = db->queue_max;
    st->queries = db->queries;
    st->errors = db->errors;
    st->timeouts = db->timeouts;
    st->unavailable = db->unavailable;
    st->pipelined = db->pipelined;

    for (i = 0; i < db->size; i++) {
        switch (db->conns[i].state) {
        case OMNI_DB_CONN_BUSY:
            st->busy++;
            /* fall through */
        case OMNI_DB_CONN_IDLE:
            st->ready++;
            break;
        case OMNI_DB_CONN_CONNECTING:
        case OMNI_DB_CONN_PREPARING:
            st->connecting++;
            break;
        default:
            break;
        }
    }
}


void omni_db_free(omni_db_t *db)
{
    omni_db_query_t *q;
    int i;

    for (i = 0; i < db->size; i++) {
        omni_db_conn_t *c = &db->conns[i];

        omni_db_unwatch(c);
        evtimer_del(&c->timer);
        if (c->res) {
            PQclear(c->res);
        }
        if (c->pg) {
            PQfinish(c->pg);
        }
        while ((q = c->q) != NULL) {
            c->q = q->next;
            omni_db_finish_query(q, OMNI_DB_UNAVAILABLE, NULL);
        }
    }
    while ((q = db->head) != NULL) {
        db->head = q->next;
        omni_db_finish_query(q, OMNI_DB_UNAVAILABLE, NULL);
    }
    event_del(&db->send);
    free(db->conninfo);
    free(db);
}
