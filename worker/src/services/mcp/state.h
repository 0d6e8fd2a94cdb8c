/* state.h: each process's copy of every server's breaker, so a call to a
 * server that is down is refused without a query. Changes are announced
 * by bumping a generation number in Redis, which each process polls. */
#ifndef OMNI_MCP_STATE_H
#define OMNI_MCP_STATE_H

#include <stdint.h>

int omni_mcp_state_init(void);
int omni_mcp_state_start(void);
void omni_mcp_state_stop(void);

/* A server's breaker or registration changed in Postgres: every process
 * reloads its copy within one poll (250 ms). */
void omni_mcp_state_bump(void);

/* The same, and done(arg) once Redis has counted it (or failed to): an
 * answer that waits for it is not read by a caller before every process
 * can see the change. 0 when done will be called; -1 when the INCR could
 * not be sent (done is not called: the caller goes on at once, and the
 * processes see the change by their own reload within a second). */
int omni_mcp_state_bump_then(void (*done)(void *arg), void *arg);

/* 1 when the server (by id, else by name) is known to be open and its
 * cool-down has not passed, so a call must fail fast; else 0. *id is set
 * to its id (or NULL). */
int omni_mcp_state_down(const char *ref, const char **id);

/* The omni:mcp:gen the copy was loaded at; -1 when unknown. */
long long omni_mcp_state_gen(void);

#endif
