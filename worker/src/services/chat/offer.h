/* offer.h: the MCP tools a chat turn offers the model, kept per process
 * for each (role, tools filter) at the omni:mcp:gen generation they were
 * read at. Whoever changes what the list is made of (the catalog, a
 * server's roles, a breaker) writes Postgres and then bumps the
 * generation (services/mcp), so a list kept at the generation a turn
 * reads is the list Postgres would give. A list offered is only an offer:
 * each tool call is checked again when it is made. */
#ifndef OMNI_CHAT_OFFER_H
#define OMNI_CHAT_OFFER_H

#include <stddef.h>

/* omni:mcp:gen read for a turn, on the heap: its answer may come after
 * the turn ended. */
typedef struct omni_offer_gen_s omni_offer_gen_t;

/* Registers omnichat.turn_tools(role, filter)'s statement: 0 or -1. */
int omni_offer_init(void);

/* Its statement id, for a turn that queries the list itself. */
int omni_offer_stmt(void);

/* Sends GET omni:mcp:gen; ready(arg) runs with the answer (or a failure:
 * the value is then -1) unless omni_offer_gen_drop() came first. NULL
 * when Redis cannot take it (no generation: nothing kept is used). */
omni_offer_gen_t *omni_offer_gen_read(void (*ready)(void *arg), void *arg);

/* 1 once answered. */
int omni_offer_gen_done(const omni_offer_gen_t *g);

/* The generation read, or -1 (not answered, or failed). */
long long omni_offer_gen_value(const omni_offer_gen_t *g);

/* The turn is done with g: no callback; freed now or when answered. */
void omni_offer_gen_drop(omni_offer_gen_t *g);

/* The key of a role and a filter (the JSON array text of tool names, or
 * NULL for all), in out (size bytes): 0, or -1 when it does not fit (such
 * a turn neither uses nor keeps a list). */
int omni_offer_key(char *out, size_t size, const char *role, const char *only);

/* The list kept for key at gen (JSON array text), or NULL. */
const char *omni_offer_kept(const char *key, long long gen);

/* 1 when a list is kept for key, at whatever generation. */
int omni_offer_known(const char *key);

/* Keeps json (len bytes) as key's list at gen, which was read before the
 * query that made the list was sent. */
void omni_offer_keep(
    const char *key, long long gen, const char *json, size_t len);

/* Queries key's list in the background (sent now, after gen was read)
 * and keeps it at gen: for a key no turn could use yet. */
void omni_offer_fill(
    const char *key, long long gen, const char *role, const char *only);

#endif
