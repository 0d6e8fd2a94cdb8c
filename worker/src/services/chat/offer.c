/* offer.c: the tools a chat turn offers, kept per process (see offer.h).
 *
 * A turn reads omni:mcp:gen beside its plan. When a list of its (role,
 * filter) is kept, the plan is asked without one and the kept list is used
 * if the generation has not moved; if it has, the turn queries the list
 * (after the read) and keeps it. A turn of a key with nothing kept gets
 * the list in its plan, but that list is not kept: the plan may have been
 * read before a change whose bump the parallel GET already saw. Such a
 * turn fills the key in the background instead, with a query sent after
 * its generation was read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "io/clients.h"
#include "io/db.h"
#include "io/redis.h"
#include "services/chat/offer.h"

#define OMNI_OFFER_LISTS 32 /* (role, filter) keys kept; the oldest goes */

struct omni_offer_gen_s {
    void (*ready)(void *arg);
    void *arg;
    int done;
    int dropped;
    long long gen;
};

typedef struct {
    char *key;
    char *json;
    long long gen;
    uint64_t used; /* the tick it was last used or kept at */
} omni_offer_list_t;

static omni_offer_list_t omni_offer_lists[OMNI_OFFER_LISTS];
static uint64_t omni_offer_tick;
static int omni_offer_tools_stmt = -1;


int omni_offer_init(void)
{
    omni_offer_tools_stmt = omni_db_statement(
        "chat_turn_tools", "SELECT omnichat.turn_tools($1, $2::jsonb)");
    return omni_offer_tools_stmt < 0 ? -1 : 0;
}


int omni_offer_stmt(void)
{
    return omni_offer_tools_stmt;
}


static void omni_offer_gen_answer(
    redisAsyncContext *ctx, void *reply, void *arg)
{
    omni_offer_gen_t *g = arg;
    redisReply *rep = reply;

    (void)ctx;
    g->done = 1;
    g->gen = -1;
    if (rep != NULL && rep->type == REDIS_REPLY_NIL) {
        g->gen = 0;
    } else if (rep != NULL && rep->type == REDIS_REPLY_STRING) {
        g->gen = atoll(rep->str);
    }
    if (g->dropped) {
        free(g);
        return;
    }
    g->ready(g->arg);
}


omni_offer_gen_t *omni_offer_gen_read(void (*ready)(void *arg), void *arg)
{
    omni_offer_gen_t *g;

    if (omni_clients.redis == NULL) {
        return NULL;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    g->ready = ready;
    g->arg = arg;
    g->gen = -1;
    if (omni_redis_command(
            omni_clients.redis, omni_offer_gen_answer, g, "GET omni:mcp:gen")
        != 0) {
        free(g);
        return NULL;
    }
    return g;
}


int omni_offer_gen_done(const omni_offer_gen_t *g)
{
    return g != NULL && g->done;
}


long long omni_offer_gen_value(const omni_offer_gen_t *g)
{
    return g != NULL && g->done ? g->gen : -1;
}


void omni_offer_gen_drop(omni_offer_gen_t *g)
{
    if (g == NULL) {
        return;
    }
    if (g->done) {
        free(g);
    } else {
        g->dropped = 1;
    }
}


int omni_offer_key(char *out, size_t size, const char *role, const char *only)
{
    int n = snprintf(
        out, size, "%s\x1f%s", role, only != NULL ? only : "\x1f(all)");

    return n < 0 || (size_t)n >= size ? -1 : 0;
}


static omni_offer_list_t *omni_offer_find(const char *key)
{
    int i;

    for (i = 0; i < OMNI_OFFER_LISTS; i++) {
        if (omni_offer_lists[i].key != NULL
            && strcmp(omni_offer_lists[i].key, key) == 0) {
            return &omni_offer_lists[i];
        }
    }
    return NULL;
}


const char *omni_offer_kept(const char *key, long long gen)
{
    omni_offer_list_t *l = omni_offer_find(key);

    if (l == NULL || gen < 0 || l->gen != gen) {
        return NULL;
    }
    l->used = ++omni_offer_tick;
    return l->json;
}


int omni_offer_known(const char *key)
{
    return omni_offer_find(key) != NULL;
}


void omni_offer_keep(
    const char *key, long long gen, const char *json, size_t len)
{
    omni_offer_list_t *l = omni_offer_find(key);
    char *copy;
    int i;

    if (gen < 0) {
        return;
    }
    if (l == NULL) {
        l = &omni_offer_lists[0];
        for (i = 1; i < OMNI_OFFER_LISTS; i++) {
            if (omni_offer_lists[i].used < l->used) {
                l = &omni_offer_lists[i];
            }
        }
        free(l->key);
        free(l->json);
        l->json = NULL;
        l->key = strdup(key);
        if (l->key == NULL) {
            return;
        }
    }
    copy = malloc(len + 1);
    if (copy == NULL) {
        return;
    }
    memcpy(copy, json, len);
    copy[len] = '\0';
    free(l->json);
    l->json = copy;
    l->gen = gen;
    l->used = ++omni_offer_tick;
}


typedef struct {
    long long gen;
    char key[];
} omni_offer_filling_t;

static void omni_offer_filled(void *arg, omni_db_status_t st, PGresult *res)
{
    omni_offer_filling_t *f = arg;

    if (st == OMNI_DB_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        omni_offer_keep(f->key, f->gen, PQgetvalue(res, 0, 0),
            (size_t)PQgetlength(res, 0, 0));
    }
    free(f);
}


void omni_offer_fill(
    const char *key, long long gen, const char *role, const char *only)
{
    omni_offer_filling_t *f;
    const char *values[2];
    size_t n = strlen(key) + 1;

    if (gen < 0 || (f = malloc(sizeof(*f) + n)) == NULL) {
        return;
    }
    f->gen = gen;
    memcpy(f->key, key, n);
    values[0] = role;
    values[1] = only;
    if (omni_db_query(omni_clients.db, omni_offer_tools_stmt, 2, values,
            omni_offer_filled, f)
        != OMNI_DB_OK) {
        free(f);
    }
}
