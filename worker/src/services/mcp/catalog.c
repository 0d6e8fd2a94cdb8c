/* catalog.c: a server's tools (GET .../tools, approve) and the probe that
 * checks it and reads its catalog again (POST .../health).
 *
 * The probe's states (one request, re-entered on each completion):
 *
 *   LOAD ──row──> PING ──answer──> LIST ──next page──> LIST ...
 *                   │                 └──last page──> STORE ──> ANSWER
 *                   └──failure──────────────────────────────────> ANSWER
 *
 * PING is ping (server/discover for a 2026-07-28 server); any JSON-RPC
 * answer means the server is up. Each outcome moves the breaker. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "io/log.h"
#include "io/publish.h"
#include "http/api.h"
#include "http/metrics.h"
#include "services/dashboard/dashboard.h"
#include "services/mcp/catalog.h"
#include "services/mcp/mcp_int.h"
#include "services/mcp/state.h"
#include "services/mcp/upstream.h"

#define OMNI_MCP_MAX_PAGES 100

enum {
    OMNI_PROBE_LOAD = 0,
    OMNI_PROBE_LOADED,
    OMNI_PROBE_PING,
    OMNI_PROBE_LIST,
    OMNI_PROBE_STORE,
    OMNI_PROBE_STORED,
    OMNI_PROBE_ANSWER
};

typedef struct {
    omni_mcp_upstream_t u;
    omni_mcp_rpc_t *rpc;
    omni_mcp_reply_t rep;
    int ok, pages;
    uint64_t ping_us;
    struct evbuffer *tools; /* "[t,t,..." so far */
    int ntools;
} omni_probe_t;

static void omni_probe_write(omni_req_t *r, omni_probe_t *p);

static int omni_cat_load_stmt, omni_cat_store_stmt, omni_cat_tools_stmt,
    omni_cat_approve_stmt;

#define OMNI_CAT_WHERE                                                         \
    " WHERE ($1::uuid IS NOT NULL AND s.id = $1::uuid OR $1 IS NULL AND"       \
    " s.name = $2)"


int omni_mcp_catalog_init(void)
{
    omni_cat_load_stmt = omni_db_statement("mcp_upstream_load",
        "SELECT " OMNI_MCP_UPSTREAM_COLUMNS " FROM omni2.mcp_servers AS s"
        " LEFT JOIN omni2.circuit_breakers AS b ON b.server_id = "
        "s.id" OMNI_CAT_WHERE);

    omni_cat_store_stmt = omni_db_statement("mcp_catalog_store",
        "SELECT tool, old_hash, new_hash, fields::text"
        " FROM omni2.mcp_catalog_store($1::uuid, $2::jsonb, $3)");

    omni_cat_tools_stmt = omni_db_statement("mcp_tools_list",
        "SELECT s.id, jsonb_build_object('name', t.name,"
        " 'description', t.definition->'description',"
        " 'input_schema', t.definition->'inputSchema',"
        " 'annotations', t.definition->'annotations',"
        " 'status', t.status, 'hash', t.hash,"
        " 'pending_hash', t.pending_hash)::text"
        " FROM omni2.mcp_servers AS s"
        " LEFT JOIN omni2.mcp_tools AS t ON t.server_id = s.id" OMNI_CAT_WHERE
        " ORDER BY t.name");

    omni_cat_approve_stmt = omni_db_statement("mcp_tool_approve",
        "WITH s AS (SELECT * FROM omni2.mcp_servers AS s" OMNI_CAT_WHERE "),"
        " t AS (UPDATE omni2.mcp_tools AS t SET definition = t.pending,"
        "  hash = t.pending_hash, pending = NULL, pending_hash = NULL,"
        "  status = 'active', updated_at = now() FROM s"
        "  WHERE t.server_id = s.id AND t.name = $3"
        "  AND t.status = 'quarantined' RETURNING t.*),"
        " a AS (INSERT INTO omni2.mcp_audit (server_id, server_name,"
        "  action, actor, detail) SELECT s.id, s.name, 'tool.approved', $4,"
        "  jsonb_build_object('tool', t.name, 'hash', t.hash) FROM s, t)"
        " SELECT s.id, s.name, (SELECT hash FROM t),"
        "  (SELECT status FROM omni2.mcp_tools AS x"
        "   WHERE x.server_id = s.id AND x.name = $3)"
        " FROM s");

    return omni_cat_load_stmt < 0 || omni_cat_store_stmt < 0
                   || omni_cat_tools_stmt < 0 || omni_cat_approve_stmt < 0
               ? -1
               : 0;
}


static void omni_probe_replied(void *arg, const omni_mcp_reply_t *rep)
{
    omni_req_t *r = arg;
    omni_probe_t *p = r->data;

    p->rpc = NULL;
    p->rep = *rep;
    omni_http_resume(r);
}


static void omni_probe_saved(void *arg)
{
    omni_http_resume(arg);
}


/* The breaker is stored before the answer: whoever reads it next (any
 * process) sees what the probe found. */
static void omni_probe_answer(omni_req_t *r, omni_probe_t *p)
{
    r->state = OMNI_PROBE_ANSWER;
    omni_metrics_mcp_probe(p->ok);
    if (omni_mcp_breaker_outcome(&p->u, p->ok)
        && omni_mcp_breaker_save(&p->u, p->ok, omni_probe_saved, r) == 0) {
        return;
    }
    omni_probe_write(r, p);
}


static void omni_probe_write(omni_req_t *r, omni_probe_t *p)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add(b, "{\"server\":", 10);
    omni_json_put_string(b, p->u.name, strlen(p->u.name));
    evbuffer_add_printf(b,
        ",\"server_id\":\"%s\",\"ok\":%s,\"latency_ms\":%.3f,\"state\":\"%s\","
        "\"tools\":%d",
        p->u.id, p->ok ? "true" : "false", p->ping_us / 1000.0,
        omni_breaker_state_name(p->u.breaker.state), p->ntools);
    if (!p->ok && p->rep.failure != NULL) {
        evbuffer_add(b, ",\"message\":", 11);
        omni_json_put_string(b, p->rep.failure, strlen(p->rep.failure));
    }
    evbuffer_add(b, "}\n", 2);
    if (p->tools != NULL) {
        evbuffer_free(p->tools);
        p->tools = NULL;
    }
    omni_api_json(r, 200, b);
    evbuffer_free(b);
}


const char *omni_mcp_catalog_page(
    const omni_mcp_reply_t *rep, struct evbuffer *tools, int *ntools)
{
    const omni_json_t *list = omni_json_get(rep->result, "tools");
    const char *cursor;
    size_t i;

    for (i = 0;
         list != NULL && list->type == OMNI_JSON_ARRAY && i < list->u.arr.len;
         i++) {
        if (list->u.arr.items[i]->type != OMNI_JSON_OBJECT
            || omni_json_string(omni_json_get(list->u.arr.items[i], "name"))
                   == NULL) {
            continue;
        }
        evbuffer_add(tools, (*ntools)++ ? "," : "[", 1);
        omni_json_write(tools, list->u.arr.items[i]);
    }
    cursor = omni_json_string(omni_json_get(rep->result, "nextCursor"));
    return cursor != NULL && cursor[0] != '\0' ? cursor : NULL;
}


/* Adds the page's tools to p->tools; the next cursor, or NULL. */
static const char *omni_probe_page(omni_req_t *r, omni_probe_t *p)
{
    return omni_mcp_catalog_page(&p->rep, p->tools, &p->ntools);
}


int omni_mcp_catalog_store_stmt(void)
{
    return omni_cat_store_stmt;
}


static int omni_probe_list(omni_req_t *r, omni_probe_t *p, const char *cursor)
{
    struct evbuffer *b;
    const char *params = NULL;

    if (cursor != NULL) {
        b = evbuffer_new();
        evbuffer_add(b, "{\"cursor\":", 10);
        omni_json_put_string(b, cursor, strlen(cursor));
        evbuffer_add(b, "}", 1);
        params = omni_arena_strndup(&r->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        evbuffer_free(b);
    }
    p->rpc = omni_mcp_rpc(&p->u.target, "tools/list", NULL, params, 1,
        &r->arena, NULL, omni_probe_replied, r);
    return p->rpc ? 0 : -1;
}


int omni_mcp_catalog_quarantined(const omni_mcp_upstream_t *u, PGresult *res,
    void (*done)(void *arg), void *arg)
{
    char summary[200];
    struct evbuffer *b;
    int i;

    for (i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 0)) {
            continue; /* the row saying tools were added or removed */
        }
        b = evbuffer_new();
        evbuffer_add_printf(b, "{\"server_id\":\"%s\",\"server\":", u->id);
        omni_json_put_string(b, u->name, strlen(u->name));
        evbuffer_add(b, ",\"tool\":", 8);
        omni_json_put_string(
            b, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
        evbuffer_add_printf(b,
            ",\"old_hash\":\"%s\",\"new_hash\":\"%s\",\"fields\":\"%s\"}",
            PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
            PQgetvalue(res, i, 3));
        snprintf(summary, sizeof(summary),
            "MCP tool %.64s of %s changed: quarantined", PQgetvalue(res, i, 0),
            u->name);
        evbuffer_add(b, "", 1);
        omni_publish("mcp", "mcp.tool.quarantined",
            (const char *)evbuffer_pullup(b, -1));
        omni_activity_record("mcp.tool.quarantined", NULL, summary,
            (const char *)evbuffer_pullup(b, -1), NULL, NULL);
        evbuffer_free(b);
    }
    if (PQntuples(res) == 0) {
        return -1;
    }
    /* a quarantine, or tools added or removed: kept call rows are read
     * again and /mcp's streams say list_changed */
    if (done == NULL) {
        omni_mcp_state_bump();
        return -1;
    }
    return omni_mcp_state_bump_then(done, arg);
}


void omni_mcp_server_probe(omni_req_t *r)
{
    omni_probe_t *p = r->data;
    const char *values[3], *cursor;

    switch (r->state) {

    case OMNI_PROBE_LOAD:
        if (omni_req_identity(r)->rank < 3) {
            omni_respond_error(r, 403, "forbidden",
                "probing a server needs the developer or admin role");
            return;
        }
        p = omni_arena_alloc(&r->arena, sizeof(*p));
        if (p == NULL) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        memset(p, 0, sizeof(*p));
        r->data = p;
        omni_mcp_server_ref(r, values);
        r->state = OMNI_PROBE_LOADED;
        omni_api_query(r, omni_cat_load_stmt, 2, values);
        return;

    case OMNI_PROBE_LOADED: {
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 0) {
            omni_respond_error(r, 404, "not_found", "no MCP server \"%.64s\"",
                omni_req_param(r, 0));
            return;
        }
        if (omni_mcp_upstream_read(r, r->db_res, 0, &p->u) != 0) {
            return;
        }
        p->rpc = omni_mcp_rpc(&p->u.target,
            omni_mcp_client_generation(p->u.id) != NULL
                    && strcmp(omni_mcp_client_generation(p->u.id), "modern")
                           == 0
                ? "server/discover"
                : "ping",
            NULL, NULL, 1, &r->arena, NULL, omni_probe_replied, r);
        r->state = OMNI_PROBE_PING;
        if (p->rpc == NULL) {
            omni_respond_error(
                r, 502, "upstream_error", "cannot send to the server's URL");
        }
        return;
    }

    case OMNI_PROBE_PING:
        p->ping_us = p->rep.latency_us;
        p->ok = p->rep.failure == NULL;
        if (!p->ok) {
            omni_probe_answer(r, p);
            return;
        }
        p->tools = evbuffer_new();
        r->state = OMNI_PROBE_LIST;
        if (omni_probe_list(r, p, NULL) != 0) {
            omni_probe_answer(r, p);
        }
        return;

    case OMNI_PROBE_LIST:
        if (p->rep.failure != NULL || p->rep.result == NULL) {
            /* up, but its catalog could not be read: keep the old one */
            omni_log(OMNI_LOG_WARN, "cannot read an MCP server's tools",
                "\"server\":\"%s\"", p->u.id);
            omni_probe_answer(r, p);
            return;
        }
        cursor = omni_probe_page(r, p);
        if (cursor != NULL && ++p->pages < OMNI_MCP_MAX_PAGES) {
            if (omni_probe_list(r, p, cursor) != 0) {
                omni_probe_answer(r, p);
            }
            return;
        }
        if (p->ntools == 0) {
            evbuffer_add(p->tools, "[", 1);
        }
        evbuffer_add(p->tools, "]", 2);
        values[0] = p->u.id;
        values[1] = (const char *)evbuffer_pullup(p->tools, -1);
        values[2] = p->rep.protocol;
        r->state = OMNI_PROBE_STORE;
        if (omni_api_query(r, omni_cat_store_stmt, 3, values) != 0) {
            evbuffer_free(p->tools);
            p->tools = NULL;
        }
        return;

    case OMNI_PROBE_STORE:
        if (r->db_status != OMNI_DB_OK) {
            evbuffer_free(p->tools);
            p->tools = NULL;
            omni_api_db_failed(r);
            return;
        }
        /* a changed catalog is answered once every process can see it:
         * the caller's next call finds the tool as it is now */
        r->state = OMNI_PROBE_STORED;
        if (omni_mcp_catalog_quarantined(&p->u, r->db_res, omni_probe_saved, r)
            == 0) {
            return;
        }
        omni_probe_answer(r, p);
        return;

    case OMNI_PROBE_STORED:
        omni_probe_answer(r, p);
        return;

    default:
        omni_probe_write(r, p);
        return;
    }
}


void omni_mcp_server_tools(omni_req_t *r)
{
    const char *values[2];
    struct evbuffer *b;
    int i, n;

    switch (r->state) {

    case 0:
        omni_mcp_server_ref(r, values);
        r->state = 1;
        omni_api_query(r, omni_cat_tools_stmt, 2, values);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        n = PQntuples(r->db_res);
        if (n == 0) {
            omni_respond_error(r, 404, "not_found", "no MCP server \"%.64s\"",
                omni_req_param(r, 0));
            return;
        }
        b = evbuffer_new();
        evbuffer_add(b, "{\"items\":[", 10);
        for (i = 0; i < n; i++) {
            if (PQgetisnull(r->db_res, i, 1)
                || strstr(PQgetvalue(r->db_res, i, 1), "\"name\": null")) {
                continue;
            }
            evbuffer_add_printf(
                b, "%s%s", i ? "," : "", PQgetvalue(r->db_res, i, 1));
        }
        evbuffer_add(b, "]}\n", 3);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}


void omni_mcp_tool_approve(omni_req_t *r)
{
    const char *values[4], *detail;
    struct evbuffer *b;
    char summary[200];

    switch (r->state) {

    case 0:
        if (omni_req_identity(r)->rank != OMNI_ROLE_ADMIN) {
            omni_respond_error(
                r, 403, "forbidden", "approving a tool needs the admin role");
            return;
        }
        omni_mcp_server_ref(r, values);
        values[2] = omni_req_param(r, 1);
        values[3] = omni_req_identity(r)->id;
        r->state = 1;
        omni_api_query(r, omni_cat_approve_stmt, 4, values);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 0) {
            omni_respond_error(r, 404, "not_found", "no MCP server \"%.64s\"",
                omni_req_param(r, 0));
            return;
        }
        if (PQgetisnull(r->db_res, 0, 3)) {
            omni_respond_error(r, 404, "not_found",
                "the server has no tool \"%.128s\"", omni_req_param(r, 1));
            return;
        }
        if (PQgetisnull(r->db_res, 0, 2)) {
            omni_respond_error(r, 409, "not_quarantined",
                "tool %.128s is not quarantined", omni_req_param(r, 1));
            return;
        }
        b = evbuffer_new();
        evbuffer_add_printf(b,
            "{\"server_id\":\"%s\",\"server\":", PQgetvalue(r->db_res, 0, 0));
        omni_json_put_string(b, PQgetvalue(r->db_res, 0, 1),
            (size_t)PQgetlength(r->db_res, 0, 1));
        evbuffer_add(b, ",\"tool\":", 8);
        omni_json_put_string(
            b, omni_req_param(r, 1), strlen(omni_req_param(r, 1)));
        evbuffer_add_printf(
            b, ",\"hash\":\"%s\"}", PQgetvalue(r->db_res, 0, 2));
        snprintf(summary, sizeof(summary), "MCP tool %.64s of %.32s approved",
            omni_req_param(r, 1), PQgetvalue(r->db_res, 0, 1));
        detail = omni_arena_strndup(&r->arena,
            (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
        if (detail != NULL) {
            omni_publish("mcp", "mcp.tool.approved", detail);
            omni_activity_record("mcp.tool.approved", omni_req_identity(r)->id,
                summary, detail, NULL, NULL);
        }
        evbuffer_free(b);
        /* answered once every process can see it: the admin's next call
         * finds the tool callable */
        r->data = (void *)detail;
        r->state = 2;
        if (omni_mcp_state_bump_then(omni_probe_saved, r) == 0) {
            return;
        }
        /* fall through */

    default:
        if (r->data == NULL) {
            omni_respond_error(r, 500, "internal", "out of memory");
            return;
        }
        omni_api_json_text(r, 200, r->data, strlen(r->data));
        return;
    }
}


static int omni_cat_breakers_stmt;


int omni_mcp_breakers_init(void)
{
    omni_cat_breakers_stmt = omni_db_statement("mcp_breakers_list",
        "SELECT jsonb_build_object('server_id', s.id, 'server', s.name,"
        " 'state', coalesce(b.state, 'closed'),"
        " 'failures', coalesce(b.failures, 0),"
        " 'opened_at', to_char(b.opened_at AT TIME ZONE 'UTC',"
        "  'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
        " 'next_probe_at', to_char(b.next_probe_at AT TIME ZONE 'UTC',"
        "  'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text, s.name"
        " FROM omni2.mcp_servers AS s"
        " LEFT JOIN omni2.circuit_breakers AS b ON b.server_id = s.id"
        " WHERE $1::text IS NULL OR s.name > $1"
        " ORDER BY s.name LIMIT $2::int");
    return omni_cat_breakers_stmt < 0 ? -1 : 0;
}


static void omni_cat_breaker_item(
    omni_req_t *r, struct evbuffer *b, PGresult *res, int row)
{
    evbuffer_add(b, PQgetvalue(res, row, 0), PQgetlength(res, row, 0));
}


void omni_mcp_breakers_list(omni_req_t *r)
{
    omni_api_page_t page = {
        omni_cat_breakers_stmt, 1, 0, NULL, omni_cat_breaker_item};

    omni_api_list_page(r, &page, 0, NULL);
}
