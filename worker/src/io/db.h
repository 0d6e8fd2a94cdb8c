/* db.h: per-process pool of non-blocking libpq connections on the event loop.
 */
#ifndef OMNI_DB_H
#define OMNI_DB_H

#include <libpq-fe.h>

struct event_base;
typedef struct omni_db omni_db_t;

typedef enum {
    OMNI_DB_OK,          /* res is the statement's result */
    OMNI_DB_ERROR,       /* Postgres rejected the statement; res says why */
    OMNI_DB_UNAVAILABLE, /* no connection to Postgres, or it was lost */
    OMNI_DB_TIMEOUT,     /* not done within the query timeout */
    OMNI_DB_BUSY         /* the wait queue is full */
} omni_db_status_t;

#define OMNI_DB_MAX_PARAMS 16
#define OMNI_DB_MAX_STATEMENTS 128

/* Called exactly once per accepted query, never from inside
 * omni_db_query(). res is NULL unless status is OK or ERROR, and is freed
 * by the pool when the callback returns. */
typedef void (*omni_db_cb_pt)(
    void *arg, omni_db_status_t status, PGresult *res);

typedef struct {
    int size;  /* connections configured */
    int ready; /* idle + busy */
    int busy;
    int connecting; /* connecting or preparing statements */
    int queued;     /* queries waiting for a connection */
    int queue_max;
    unsigned long long queries, errors, timeouts, unavailable;
    unsigned long long pipelined; /* sent behind another in one batch */
} omni_db_stats_t;

/* Registers a statement every connection prepares once, after connecting.
 * Call before omni_db_create(). Returns its id, or -1 when the table is full
 * (a programming error: fatal at start-up). */
int omni_db_statement(const char *name, const char *sql);

/* The same, for a statement whose results come in binary format (bulk
 * reads: a bytea arrives as its bytes, a uuid as 16 bytes). */
int omni_db_statement_binary(const char *name, const char *sql);

/* The same, for a statement that finishes in well under a millisecond
 * (a point read or write by key): queries of such statements sent in one
 * loop pass share one pipeline on one connection, which saves the backend
 * wake-ups. Every other statement's query runs on a connection alone. */
int omni_db_statement_brief(const char *name, const char *sql);

/* Creates the pool and starts connecting in the background. conninfo is a
 * libpq URL or key=value string; every connection gets application_name and
 * a server-side statement_timeout equal to timeout_ms. NULL on malloc
 * failure only: an unreachable Postgres is not an error here. */
omni_db_t *omni_db_create(struct event_base *base, const char *conninfo,
    int size, int queue_max, int timeout_ms);

/* Runs statement `stmt` with text parameters (copied; NULL = SQL NULL).
 * Returns OMNI_DB_OK when the query was accepted (cb will be called), or
 * OMNI_DB_UNAVAILABLE / OMNI_DB_BUSY at once without calling cb: Postgres
 * is down, or too many queries already wait. */
omni_db_status_t omni_db_query(omni_db_t *db, int stmt, int nparams,
    const char *const *values, omni_db_cb_pt cb, void *arg);

/* 1 when queries are being served or a connection attempt is under way
 * after a success; 0 while Postgres is known to be unreachable, and for a
 * NULL pool (the process freed it: a callback fired by another client's
 * teardown must find it gone, not freed). omni_db_query() answers such a
 * pool as unavailable; omni_db_stats() gives zeros. */
int omni_db_available(omni_db_t *db);

void omni_db_stats(omni_db_t *db, omni_db_stats_t *st);

/* Closes every connection; queued and running queries get UNAVAILABLE. */
void omni_db_free(omni_db_t *db);

#endif
