/* registry.c: the MCP server registry, /api/v1/mcp/servers (admin writes,
 * every role reads). Header values are sealed before they reach Postgres
 * and never leave it in an answer or an event. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/rand.h>

#include "lib/encode.h"
#include "lib/uuid.h"
#include "io/clients.h"
#include "io/log.h"
#include "io/publish.h"
#include "http/api.h"
#include "services/dashboard/dashboard.h"
#include "services/mcp/mcp_int.h"
#include "services/mcp/registry.h"

const unsigned char *omni_mcp_secret_key;

static int omni_reg_list_stmt, omni_reg_get_stmt, omni_reg_create_stmt,
    omni_reg_update_stmt, omni_reg_delete_stmt;

#define OMNI_REG_WHERE_ID                                                      \
    " ($1::uuid IS NOT NULL AND s.id = $1::uuid OR $1 IS NULL AND s.name = "   \
    "$2)"


int omni_mcp_registry_init(void)
{
    omni_reg_list_stmt = omni_db_statement("mcp_servers_list",
        "SELECT omni2.mcp_server_json(s)::text, s.name"
        " FROM omni2.mcp_servers AS s"
        " WHERE $1::text IS NULL OR s.name > $1"
        " ORDER BY s.name LIMIT $2::int");

    omni_reg_get_stmt = omni_db_statement("mcp_server_get",
        "SELECT omni2.mcp_server_json(s)::text FROM omni2.mcp_servers AS s"
        " WHERE" OMNI_REG_WHERE_ID);

    omni_reg_create_stmt = omni_db_statement("mcp_server_create",
        "WITH s AS (INSERT INTO omni2.mcp_servers (id, name, url,"
        "  header_names, headers_enc, timeout_ms, enabled, roles, tool_roles,"
        "  health, created_by)"
        " VALUES ($1::uuid, $2, $3, coalesce($4::text[], '{}'), $5::bytea,"
        "  coalesce($6::int, 30000), coalesce($7::boolean, true),"
        "  coalesce($8::text[], '{}'), coalesce($9::jsonb, '{}'),"
        "  $10::jsonb, $11) RETURNING *),"
        " b AS (INSERT INTO omni2.circuit_breakers (server_id)"
        "  SELECT id FROM s),"
        " a AS (INSERT INTO omni2.mcp_audit (server_id, server_name, action,"
        "  actor, detail) SELECT s.id, s.name, 'created', $11,"
        "  jsonb_build_object('header_names', s.header_names) FROM s)"
        " SELECT omni2.mcp_server_json(s)::text, s.id, s.name FROM s");

    omni_reg_update_stmt = omni_db_statement("mcp_server_update",
        "WITH o AS (SELECT * FROM omni2.mcp_servers AS s "
        "WHERE" OMNI_REG_WHERE_ID "  FOR UPDATE),"
        " s AS (UPDATE omni2.mcp_servers AS m SET"
        "  name = coalesce($3, m.name), url = coalesce($4, m.url),"
        "  header_names = CASE WHEN $5::boolean"
        "   THEN coalesce($6::text[], '{}') ELSE m.header_names END,"
        "  headers_enc = CASE WHEN $5::boolean THEN $7::bytea"
        "   ELSE m.headers_enc END,"
        "  timeout_ms = coalesce($8::int, m.timeout_ms),"
        "  enabled = coalesce($9::boolean, m.enabled),"
        "  roles = coalesce($10::text[], m.roles),"
        "  tool_roles = coalesce($11::jsonb, m.tool_roles),"
        "  health = m.health || coalesce($12::jsonb, '{}'),"
        "  protocol = CASE WHEN $4 IS NULL OR $4 = m.url THEN m.protocol END,"
        "  updated_at = now()"
        "  FROM o WHERE m.id = o.id RETURNING m.*),"
        " a AS (INSERT INTO omni2.mcp_audit (server_id, server_name, action,"
        "  actor, detail) SELECT s.id, s.name, 'updated', $13,"
        "  jsonb_build_object('fields', $14::text[], 'old_name', o.name,"
        "  'header_names', s.header_names) FROM s, o)"
        " SELECT omni2.mcp_server_json(s)::text, s.id, s.name FROM s");

    omni_reg_delete_stmt = omni_db_statement("mcp_server_delete",
        "WITH s AS (DELETE FROM omni2.mcp_servers AS s WHERE" OMNI_REG_WHERE_ID
        "  RETURNING s.id, s.name),"
        " a AS (INSERT INTO omni2.mcp_audit (server_id, server_name, action,"
        "  actor) SELECT s.id, s.name, 'deleted', $3 FROM s)"
        " SELECT s.id, s.name FROM s");

    return omni_reg_list_stmt < 0 || omni_reg_get_stmt < 0
                   || omni_reg_create_stmt < 0 || omni_reg_update_stmt < 0
                   || omni_reg_delete_stmt < 0
               ? -1
               : 0;
}


/* The {id} parameter as the two values of OMNI_REG_WHERE_ID: a UUID, or
 * a name. */
void omni_mcp_server_ref(omni_req_t *r, const char **values)
{
    const char *p = omni_req_param(r, 0);

    values[0] = omni_uuid_valid(p) ? p : NULL;
    values[1] = p;
}


static int omni_reg_admin(omni_req_t *r)
{
    if (omni_req_identity(r)->rank == OMNI_ROLE_ADMIN) {
        return 1;
    }
    omni_respond_error(
        r, 403, "forbidden", "changing MCP servers needs the admin role");
    return 0;
}


/* 400/422 {"error":...,"message":...,"field":...} */
static void omni_reg_invalid(
    omni_req_t *r, int status, const char *field, const char *msg)
{
    struct evbuffer *b = evbuffer_new();
    const char *code = status == 422   ? "invalid_value"
                       : status == 503 ? "overloaded"
                                       : "invalid_field";

    if (b == NULL) {
        omni_respond_error(r, status, code, "%s", msg);
        return;
    }
    evbuffer_add_printf(b, "{\"error\":\"%s\",\"message\":", code);
    omni_json_put_string(b, msg, strlen(msg));
    evbuffer_add(b, ",\"field\":", 9);
    omni_json_put_string(b, field, strlen(field));
    evbuffer_add(b, "}\n", 2);
    omni_api_json(r, status, b);
    evbuffer_free(b);
}


/* a secret_file reference needs the directory it names a file in */
static int omni_reg_secrets_dir(
    const omni_mcp_server_in_t *in, int *status, char field[64], char msg[256])
{
    if (in->secret_files && omni_clients.cfg->mcp_secrets_dir == NULL) {
        *status = 422;
        snprintf(field, 64, "headers");
        snprintf(msg, 256,
            "headers: a secret_file needs the worker's OMNI_MCP_SECRETS_DIR, "
            "which is not set");
        return -1;
    }
    return 0;
}


static void omni_reg_new_id(char out[37])
{
    unsigned char u[16];
    char hex[33];

    if (RAND_bytes(u, sizeof(u)) != 1) {
        out[0] = '\0';
        return;
    }
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    omni_hex_encode(u, sizeof(u), hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
        hex + 16, hex + 20);
}


/* The headers object sealed under the key, bound to the server id, as a
 * bytea literal ("\x...") in the arena; *out NULL when there are none.
 * 0, or -1 after answering. */
static int omni_reg_seal(omni_req_t *r, const omni_mcp_server_in_t *in,
    const char *id, const char **out)
{
    struct evbuffer *b;
    unsigned char *sealed;
    char *text;
    size_t len;
    int rc = -1;

    *out = NULL;
    if (in->headers == NULL) {
        return 0;
    }
    if (omni_mcp_secret_key == NULL) {
        omni_respond_error(r, 503, "not_configured",
            "headers: cannot be stored: the worker has no "
            "OMNI_MCP_SECRET_KEY_FILE");
        return -1;
    }
    b = evbuffer_new();
    if (b == NULL || omni_json_write(b, in->headers) != 0) {
        goto failed;
    }
    len = evbuffer_get_length(b);
    sealed = omni_arena_alloc(&r->arena, len + OMNI_SEAL_OVERHEAD);
    text = omni_arena_alloc(&r->arena, 2 * (len + OMNI_SEAL_OVERHEAD) + 3);
    if (sealed == NULL || text == NULL
        || omni_seal(omni_mcp_secret_key, id, strlen(id),
               evbuffer_pullup(b, -1), len, sealed)
               != 0) {
        goto failed;
    }
    text[0] = '\\';
    text[1] = 'x';
    omni_hex_encode(sealed, len + OMNI_SEAL_OVERHEAD, text + 2);
    *out = text;
    rc = 0;

failed:
    if (b != NULL) {
        evbuffer_free(b);
    }
    if (rc != 0) {
        omni_respond_error(r, 503, "overloaded", "cannot seal the headers");
    }
    return rc;
}


static int omni_reg_conflict(omni_req_t *r)
{
    const char *state;

    if (r->db_status != OMNI_DB_ERROR || r->db_res == NULL) {
        return 0;
    }
    state = PQresultErrorField(r->db_res, PG_DIAG_SQLSTATE);
    if (state == NULL || strcmp(state, "23505") != 0) {
        return 0;
    }
    omni_respond_error(
        r, 409, "conflict", "name: another MCP server has this name");
    return 1;
}


/* Queues the feed event of a change: the server's id, name, origin and
 * header names, never a header value nor the URL's query. 0 when queued:
 * the handler is called again when it is stored. */
static void omni_reg_recorded(void *arg, int ok)
{
    omni_http_resume(arg);
}


static int omni_reg_record(omni_req_t *r, const char *type, const char *id,
    const char *name, const char *verb)
{
    struct evbuffer *b = evbuffer_new();
    char summary[128];
    int rc = -1;

    if (b == NULL) {
        return -1;
    }
    evbuffer_add_printf(
        b, "{\"server_id\":\"%s\",\"server\":\"%s\"}", id, name);
    evbuffer_add(b, "", 1);
    omni_publish("mcp", type, (const char *)evbuffer_pullup(b, -1));
    snprintf(summary, sizeof(summary), "MCP server %s %s", name, verb);
    rc = omni_activity_record(type, omni_req_identity(r)->id, summary,
        (const char *)evbuffer_pullup(b, -1), omni_reg_recorded, r);
    evbuffer_free(b);
    return rc;
}


/* Answers 200/201 with the row's JSON kept in r->data. */
static void omni_reg_answer(omni_req_t *r, int status)
{
    struct evbuffer *b = evbuffer_new();

    evbuffer_add_printf(b, "%s\n", (const char *)r->data);
    omni_api_json(r, status, b);
    evbuffer_free(b);
}


static void omni_reg_item(
    omni_req_t *r, struct evbuffer *b, PGresult *res, int row)
{
    evbuffer_add(b, PQgetvalue(res, row, 0), PQgetlength(res, row, 0));
}


void omni_mcp_servers_list(omni_req_t *r)
{
    omni_api_page_t page = {omni_reg_list_stmt, 1, 0, NULL, omni_reg_item};

    omni_api_list_page(r, &page, 0, NULL);
}


void omni_mcp_server_get(omni_req_t *r)
{
    const char *values[2];
    struct evbuffer *b;

    switch (r->state) {

    case 0:
        omni_mcp_server_ref(r, values);
        r->state = 1;
        omni_api_query(r, omni_reg_get_stmt, 2, values);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 0) {
            omni_respond_error(r, 404, "not_found", "no MCP server \"%.64s\"",
                omni_req_param(r, 0));
            return;
        }
        b = evbuffer_new();
        evbuffer_add(
            b, PQgetvalue(r->db_res, 0, 0), PQgetlength(r->db_res, 0, 0));
        evbuffer_add(b, "\n", 1);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}


/* After a create or update: keeps the answer, learns the server's tools
 * in the background, queues the feed event. */
static void omni_reg_done(omni_req_t *r, const char *type, const char *verb)
{
    const char *id = PQgetvalue(r->db_res, 0, 1);
    const char *name = PQgetvalue(r->db_res, 0, 2);

    r->data = omni_arena_strndup(&r->arena, PQgetvalue(r->db_res, 0, 0),
        (size_t)PQgetlength(r->db_res, 0, 0));
    omni_mcp_changed(id);
    r->state = 2;
    if (r->data != NULL && omni_reg_record(r, type, id, name, verb) == 0) {
        return;
    }
    omni_reg_answer(r, strcmp(verb, "registered") == 0 ? 201 : 200);
}


void omni_mcp_server_create(omni_req_t *r)
{
    omni_mcp_server_in_t in;
    const char *values[11];
    char id[37], field[64], msg[256];
    int status;

    switch (r->state) {

    case 0:
        if (!omni_reg_admin(r)) {
            return;
        }
        if (omni_mcp_server_check(r->json, 0, &r->arena, &in, &status, field,
                sizeof(field), msg, sizeof(msg))
                != 0
            || omni_reg_secrets_dir(&in, &status, field, msg) != 0) {
            omni_reg_invalid(r, status, field, msg);
            return;
        }
        omni_reg_new_id(id);
        values[0] = id;
        values[1] = in.name;
        values[2] = in.url;
        values[3] = in.header_names;
        if (id[0] == '\0' || omni_reg_seal(r, &in, id, &values[4]) != 0) {
            if (id[0] == '\0') {
                omni_respond_error(r, 503, "overloaded", "no random numbers");
            }
            return;
        }
        values[5] = in.timeout_ms;
        values[6] = in.enabled;
        values[7] = in.roles;
        values[8] = in.tool_roles;
        values[9] = in.health;
        values[10] = omni_req_identity(r)->id;
        r->state = 1;
        omni_api_query(r, omni_reg_create_stmt, 11, values);
        return;

    case 1:
        if (omni_reg_conflict(r)) {
            return;
        }
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        omni_reg_done(r, "mcp.server.created", "registered");
        return;

    default:
        omni_reg_answer(r, 201);
        return;
    }
}


void omni_mcp_server_update(omni_req_t *r)
{
    omni_mcp_server_in_t in;
    const char *values[14], *p;
    char field[64], msg[256];
    int status;

    switch (r->state) {

    case 0:
        if (!omni_reg_admin(r)) {
            return;
        }
        if (omni_mcp_server_check(r->json, 1, &r->arena, &in, &status, field,
                sizeof(field), msg, sizeof(msg))
                != 0
            || omni_reg_secrets_dir(&in, &status, field, msg) != 0) {
            omni_reg_invalid(r, status, field, msg);
            return;
        }
        p = omni_req_param(r, 0);
        /* the seal is bound to the id: a name must be looked up first */
        if (in.headers != NULL && !omni_uuid_valid(p)) {
            omni_respond_error(r, 422, "invalid_value",
                "headers: change them through the server's id, not its name");
            return;
        }
        omni_mcp_server_ref(r, values);
        values[2] = in.name;
        values[3] = in.url;
        values[4] = in.has_headers ? "true" : "false";
        values[5] = in.header_names;
        if (omni_reg_seal(r, &in, p, &values[6]) != 0) {
            return;
        }
        values[7] = in.timeout_ms;
        values[8] = in.enabled;
        values[9] = in.roles;
        values[10] = in.tool_roles;
        values[11] = in.health;
        values[12] = omni_req_identity(r)->id;
        values[13] = in.fields;
        r->state = 1;
        omni_api_query(r, omni_reg_update_stmt, 14, values);
        return;

    case 1:
        if (omni_reg_conflict(r)) {
            return;
        }
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 0) {
            omni_respond_error(r, 404, "not_found", "no MCP server \"%.64s\"",
                omni_req_param(r, 0));
            return;
        }
        omni_reg_done(r, "mcp.server.updated", "changed");
        return;

    default:
        omni_reg_answer(r, 200);
        return;
    }
}


void omni_mcp_server_delete(omni_req_t *r)
{
    const char *values[3];

    switch (r->state) {

    case 0:
        if (!omni_reg_admin(r)) {
            return;
        }
        omni_mcp_server_ref(r, values);
        values[2] = omni_req_identity(r)->id;
        r->state = 1;
        omni_api_query(r, omni_reg_delete_stmt, 3, values);
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
        omni_mcp_changed(PQgetvalue(r->db_res, 0, 0));
        r->state = 2;
        if (omni_reg_record(r, "mcp.server.deleted",
                PQgetvalue(r->db_res, 0, 0), PQgetvalue(r->db_res, 0, 1),
                "removed")
            == 0) {
            return;
        }
        omni_respond(r, 204, "application/json", NULL);
        return;

    default:
        omni_respond(r, 204, "application/json", NULL);
        return;
    }
}
