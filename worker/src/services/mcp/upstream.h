/* upstream.h: a registered server as the MCP service's handlers load it:
 * where to reach it, its sealed headers opened, its breaker. */
#ifndef OMNI_MCP_UPSTREAM_H
#define OMNI_MCP_UPSTREAM_H

#include <libpq-fe.h>

#include "lib/breaker.h"
#include "http/http.h"
#include "services/mcp/client.h"

/* SQL: the columns omni_mcp_upstream_read reads, from omni2.mcp_servers
 * AS s LEFT JOIN omni2.circuit_breakers AS b */
#define OMNI_MCP_UPSTREAM_COLUMNS                                              \
    "s.id, s.name, s.url, encode(s.headers_enc, 'hex'), s.timeout_ms,"         \
    " s.enabled, (s.health->>'failure_threshold')::int,"                       \
    " (s.health->>'cooldown_ms')::int, coalesce(b.state, 'closed'),"           \
    " coalesce(b.failures, 0),"                                                \
    " coalesce((extract(epoch FROM b.opened_at) * 1000)::bigint, 0),"          \
    " coalesce((extract(epoch FROM b.next_probe_at) * 1000)::bigint, 0)"
#define OMNI_MCP_UPSTREAM_NCOLS 12

typedef struct {
    char id[37];
    const char *name;
    omni_mcp_target_t target;
    int enabled;
    omni_breaker_conf_t conf;
    omni_breaker_t breaker;
    omni_breaker_t before; /* as loaded */
} omni_mcp_upstream_t;

int omni_mcp_upstream_init(void);

/* Reads row `row` of res (the columns above, from column 0) into u, in the
 * request's arena. 0, or -1 after answering 500 (headers that no longer
 * open: the key changed) or 502 (a header's secret cannot be read). */
int omni_mcp_upstream_read(
    omni_req_t *r, PGresult *res, int row, omni_mcp_upstream_t *u);

/* The same into any arena, answering nothing: 0, -1 (logged), or -2
 * when a header's secret reference cannot be read now (logged). */
int omni_mcp_upstream_parse(
    omni_arena_t *arena, PGresult *res, int row, omni_mcp_upstream_t *u);

/* Wall-clock milliseconds. */
int64_t omni_mcp_now_ms(void);

/* Applies an outcome to u->breaker. Returns 1 when its row must be
 * written (the state or the failure count changed). */
int omni_mcp_breaker_outcome(omni_mcp_upstream_t *u, int ok);

/* Stores an outcome (ok or a failure) in u's breaker row: the statement
 * applies the state machine to the row as it stands, so concurrent
 * outcomes from every process count. Whoever changed the state to open or
 * closed publishes mcp.server.down / mcp.server.up. done (may be NULL) is
 * called once the write is over (stored or not; never from inside this
 * call), u->breaker then holding the stored state; returns 0, or -1 when
 * the write could not be queued (done is not called). */
int omni_mcp_breaker_save(
    omni_mcp_upstream_t *u, int ok, void (*done)(void *arg), void *arg);

#endif
