/* apikeys.c: API keys (create, list, delete) and their Redis mirror, which
 * the gateway resolves X-API-Key against: omni:apikey:<sha256 hex>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <hiredis/hiredis.h>

#include "lib/encode.h"
#include "lib/uuid.h"
#include "io/clients.h"
#include "io/log.h"
#include "services/auth/auth.h"
#include "services/auth/auth_input.h"


#define OMNI_APIKEY_PREFIX "omk_"
#define OMNI_APIKEY_LEN (4 + OMNI_B64URL_LEN(32))
#define OMNI_APIKEY_SHOWN 12     /* characters kept as the prefix */
#define OMNI_APIKEY_SYNC_MS 2000 /* how often the marker is checked */
#define OMNI_APIKEY_SYNC_PAGE 500
#define OMNI_APIKEY_SYNC_LOCK_MS 30000

#define OMNI_APIKEY_COLUMNS                                                    \
    "k.id, k.name, k.prefix, k.role,"                                          \
    " to_char(k.created_at AT TIME ZONE 'UTC',"                                \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"                                   \
    " to_char(k.expires_at AT TIME ZONE 'UTC',"                                \
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

static int omni_apikey_create_stmt, omni_apikey_list_stmt,
    omni_apikey_delete_stmt, omni_apikey_undo_stmt, omni_apikey_page_stmt,
    omni_apikey_dead_stmt, omni_revoked_page_stmt, omni_apikey_recheck_stmt;


int omni_apikeys_init(void)
{
    /* The creator's role and active flag are read here, under a share
     * lock (a concurrent role change or deactivation commits before this,
     * and is seen, or after, and lowers or revokes the new key), never
     * taken from the token: the key may not rank above the lower of the
     * creator's current role and the role of the token or key presented
     * ($7), which is also its default. No row: no such user; k.id NULL:
     * refused, the last columns say why. */
    omni_apikey_create_stmt = omni_db_statement("apikey_create",
        "WITH u AS (SELECT u.id, u.role, u.is_active,"
        " coalesce(u.username, u.email) AS name,"
        " CASE WHEN auth_service.role_rank($7) < auth_service.role_rank(u.role)"
        " THEN $7 ELSE u.role END AS cap"
        " FROM auth_service.users u WHERE u.id = $1::uuid FOR SHARE),"
        " k AS (INSERT INTO auth_service.api_keys"
        " (user_id, name, prefix, key_hash, role, expires_at)"
        " SELECT u.id, $2, $3, $4, coalesce($5, u.cap),"
        " to_timestamp($6::bigint) FROM u WHERE u.is_active"
        " AND auth_service.role_rank(coalesce($5, u.cap))"
        " <= auth_service.role_rank(u.cap)"
        " RETURNING *)"
        " SELECT " OMNI_APIKEY_COLUMNS ", u.name, u.is_active, u.role"
        " FROM u LEFT JOIN k ON true");

    omni_apikey_list_stmt = omni_db_statement("apikey_list",
        "SELECT " OMNI_APIKEY_COLUMNS " FROM auth_service.api_keys k"
        " WHERE k.user_id = $1::uuid AND k.revoked_at IS NULL"
        " AND ($2::uuid IS NULL OR (k.created_at, k.id) <"
        " (SELECT c.created_at, c.id FROM auth_service.api_keys c"
        " WHERE c.id = $2::uuid AND c.user_id = $1::uuid))"
        " ORDER BY k.created_at DESC, k.id DESC LIMIT $3::int");

    /* a key deleted before is 404 again, but its mirror entry is deleted
     * once more: that repairs a delete whose Redis step failed */
    omni_apikey_delete_stmt = omni_db_statement("apikey_delete",
        "UPDATE auth_service.api_keys"
        " SET revoked_at = coalesce(revoked_at, now())"
        " WHERE id = $1::uuid AND user_id = $2::uuid"
        " RETURNING key_hash, revoked_at = now()");

    omni_apikey_undo_stmt = omni_db_statement(
        "apikey_undo", "DELETE FROM auth_service.api_keys WHERE id = $1::uuid");

    /* whether the new key is still live with the role just mirrored */
    omni_apikey_recheck_stmt = omni_db_statement("apikey_recheck",
        "SELECT k.role = $2 AND k.revoked_at IS NULL AND u.is_active"
        " FROM auth_service.api_keys k"
        " JOIN auth_service.users u ON u.id = k.user_id"
        " WHERE k.id = $1::uuid");

    omni_apikey_page_stmt = omni_db_statement("apikey_sync_page",
        "SELECT k.key_hash, k.id, k.user_id, coalesce(u.username, u.email),"
        " k.role, coalesce(extract(epoch FROM k.expires_at)::bigint, 0)"
        " FROM auth_service.api_keys k"
        " JOIN auth_service.users u ON u.id = k.user_id"
        " WHERE k.revoked_at IS NULL AND u.is_active"
        " AND (k.expires_at IS NULL OR k.expires_at > now())"
        " AND k.key_hash > $1 ORDER BY k.key_hash LIMIT $2::int");

    omni_apikey_dead_stmt = omni_db_statement("apikey_sync_dead",
        "SELECT h FROM unnest($1::text[]) AS h WHERE NOT EXISTS"
        " (SELECT 1 FROM auth_service.api_keys k"
        " JOIN auth_service.users u ON u.id = k.user_id"
        " WHERE k.key_hash = h AND k.revoked_at IS NULL AND u.is_active"
        " AND (k.expires_at IS NULL OR k.expires_at > now()))");

    /* rows a little past their exp too: the TTL written adds the
     * gateways' leeway (omni_auth_revoke_ttl skips what is over) */
    omni_revoked_page_stmt = omni_db_statement("revoked_sync_page",
        "SELECT r.jti, extract(epoch FROM r.expires_at)::bigint"
        " FROM auth_service.revoked_tokens r"
        " WHERE r.expires_at > now() - interval '1 hour' AND r.jti > $1"
        " ORDER BY r.jti LIMIT $2::int");

    return omni_apikey_create_stmt < 0 || omni_apikey_list_stmt < 0
                   || omni_apikey_delete_stmt < 0 || omni_apikey_undo_stmt < 0
                   || omni_apikey_page_stmt < 0 || omni_apikey_dead_stmt < 0
                   || omni_revoked_page_stmt < 0 || omni_apikey_recheck_stmt < 0
               ? -1
               : 0;
}


/* Adds the mirror entry of one key: HSET + EXPIREAT when it expires. */
static void omni_apikey_mirror(omni_api_redis_t *b, const char *hash,
    const char *id, const char *user_id, const char *username, const char *role,
    const char *expires_at)
{
    char key[96];
    const char *hset[] = {"HSET", key, "key_id", id, "user_id", user_id,
        "username", username, "role", role, "expires_at", expires_at};
    const char *expire[] = {"EXPIREAT", key, expires_at};

    snprintf(key, sizeof(key), "omni:apikey:%s", hash);
    omni_api_redis_cmd(b, 12, hset);
    if (strcmp(expires_at, "0") != 0) {
        omni_api_redis_cmd(b, 3, expire);
    }
}


typedef struct {
    char id[40];
    char key[OMNI_APIKEY_LEN + 1];
    char hash[65];
    char role[16]; /* as mirrored */
    char *answer;  /* the 201 body, once the row exists */
} omni_apikey_ctx_t;


static void omni_apikey_json(struct evbuffer *b, PGresult *res, int row)
{
    static const char *names[] = {
        "id", "name", "prefix", "role", "created_at", "expires_at"};
    int i;

    for (i = 0; i < 6; i++) {
        evbuffer_add_printf(b, "%s\"%s\":", i ? "," : "", names[i]);
        omni_api_put_text(b, res, row, i);
    }
}


/* POST /api/v1/api-keys {name, role?, expires_at?}: 0 checks the input ->
 * 1 inserted (checked against the creator's current role) -> 2 mirrored ->
 * 4 rechecked -> 201. Redis failed: 3 taken back -> 503. The key died or
 * was lowered meanwhile: 5 unpublished -> 6 taken back -> 409. */
void omni_apikeys_create(omni_req_t *r)
{
    omni_apikey_ctx_t *c = r->data;
    const char *user = omni_req_identity(r)->user_id, *name, *role, *exp;
    const omni_identity_t *caller = omni_req_identity(r);
    const char *values[7];
    char expires[24], key[96];
    int64_t t;
    omni_api_redis_t *b;
    struct evbuffer *out;
    PGresult *res;

    switch (r->state) {

    case 0:
        if (user == NULL) {
            omni_respond_error(
                r, 403, "forbidden", "API keys belong to registered users");
            return;
        }
        if (omni_api_field_string(r, "name", 1, &name) != 0
            || omni_api_field_string(r, "role", 0, &role) != 0
            || omni_api_field_string(r, "expires_at", 0, &exp) != 0) {
            return;
        }
        if (*name == '\0' || omni_auth_chars(name) > 100) {
            omni_respond_error(
                r, 422, "invalid_value", "name: expected 1 to 100 characters");
            return;
        }
        if (role && omni_role_rank(role) == 0) {
            omni_respond_error(r, 422, "invalid_value",
                "role: expected "
                "admin, developer, user or viewer");
            return;
        }
        /* the presented token or key's role bounds the key first; the
         * creator's current role is checked in SQL */
        if (caller->rank == 0
            || omni_role_rank(role ? role : caller->role) > caller->rank) {
            omni_respond_error(r, 403, "insufficient_role",
                "role: a key cannot have more rights than "
                "its creator");
            return;
        }
        t = 0;
        if (exp) {
            if (omni_auth_rfc3339(exp, &t) != 0) {
                omni_respond_error(r, 422, "invalid_value",
                    "expires_at: "
                    "expected an RFC 3339 date-time such as "
                    "2030-01-01T00:00:00Z");
                return;
            }
            if (t <= (int64_t)time(NULL)) {
                omni_respond_error(r, 422, "invalid_value",
                    "expires_at: must be in the future");
                return;
            }
        }

        c = omni_arena_alloc(&r->arena, sizeof(*c));
        if (c == NULL
            || omni_random_token(OMNI_APIKEY_PREFIX, 32, c->key, sizeof(c->key))
                   != 0
            || omni_sha256_hex(c->key, strlen(c->key), c->hash) != 0) {
            omni_respond_error(r, 503, "overloaded", "out of memory");
            return;
        }
        r->data = c;
        snprintf(expires, sizeof(expires), "%lld", (long long)t);
        values[0] = user;
        values[1] = name;
        values[2] = omni_arena_strndup(&r->arena, c->key, OMNI_APIKEY_SHOWN);
        values[3] = c->hash;
        values[4] = role;
        values[5] = t ? expires : NULL;
        values[6] = caller->role;
        r->state = 1;
        omni_api_query(r, omni_apikey_create_stmt, 7, values);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        res = r->db_res;
        if (PQntuples(res) == 0) {
            omni_respond_error(
                r, 403, "forbidden", "API keys belong to registered users");
            return;
        }
        if (PQgetisnull(res, 0, 0)) {
            if (PQgetvalue(res, 0, 7)[0] != 't') {
                omni_respond_error(r, 403, "forbidden",
                    "this account is "
                    "deactivated");
            } else {
                omni_respond_error(r, 403, "insufficient_role",
                    "role: a key cannot have more rights "
                    "than its creator's current role (%s)",
                    PQgetvalue(res, 0, 8));
            }
            return;
        }
        /* the answer needs the row after Redis: keep it in the arena */
        out = evbuffer_new();
        evbuffer_add(out, "{", 1);
        omni_apikey_json(out, res, 0);
        evbuffer_add_printf(out, ",\"key\":\"%s\"}\n", c->key);
        snprintf(c->id, sizeof(c->id), "%s", PQgetvalue(res, 0, 0));

        b = omni_api_redis_begin(r);
        if (b == NULL) {
            evbuffer_free(out);
            return;
        }
        t = PQgetisnull(res, 0, 5) ? 0 : 1;
        snprintf(expires, sizeof(expires), "%s", "0");
        if (t) {
            omni_api_field_string(r, "expires_at", 0, &exp);
            omni_auth_rfc3339(exp, &t);
            snprintf(expires, sizeof(expires), "%lld", (long long)t);
        }
        snprintf(c->role, sizeof(c->role), "%s", PQgetvalue(res, 0, 3));
        omni_apikey_mirror(
            b, c->hash, c->id, user, PQgetvalue(res, 0, 6), c->role, expires);
        c->answer = omni_arena_strndup(&r->arena,
            (char *)evbuffer_pullup(out, -1), evbuffer_get_length(out));
        evbuffer_free(out);
        r->state = 2;
        omni_api_redis_end(b, OMNI_AUTH_REDIS_TIMEOUT_MS);
        return;

    case 2:
        values[0] = c->id;
        if (r->redis_failed) {
            /* never shown, never usable: take it back */
            r->state = 3;
            omni_api_query(r, omni_apikey_undo_stmt, 1, values);
            return;
        }
        /* a role change or deactivation that committed after our insert
         * may have updated the mirror before our HSET reached it */
        values[1] = c->role;
        r->state = 4;
        omni_api_query(r, omni_apikey_recheck_stmt, 2, values);
        return;

    case 3:
        omni_respond_error(r, 503, "redis_unavailable",
            "the key could not be published to the gateway; "
            "retry");
        return;

    case 4:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 1
            && PQgetvalue(r->db_res, 0, 0)[0] == 't') {
            if (c->answer == NULL) {
                omni_respond_error(r, 503, "overloaded", "out of memory");
                return;
            }
            out = evbuffer_new();
            evbuffer_add(out, c->answer, strlen(c->answer));
            omni_log(OMNI_LOG_INFO, "api key created",
                "\"key_id\":\"%s\",\"user_id\":\"%s\"", c->id, user);
            omni_api_json(r, 201, out);
            evbuffer_free(out);
            return;
        }
        /* never shown: unpublish it and take it back */
        b = omni_api_redis_begin(r);
        if (b == NULL) {
            return;
        }
        snprintf(key, sizeof(key), "omni:apikey:%s", c->hash);
        values[0] = "DEL";
        values[1] = key;
        omni_api_redis_cmd(b, 2, values);
        r->state = 5;
        omni_api_redis_end(b, OMNI_AUTH_REDIS_TIMEOUT_MS);
        return;

    case 5:
        values[0] = c->id;
        r->state = 6;
        omni_api_query(r, omni_apikey_undo_stmt, 1, values);
        return;

    default:
        omni_respond_error(r, 409, "conflict",
            "role: your role or status changed while the key "
            "was being created; retry");
        return;
    }
}


static void omni_apikey_item(
    omni_req_t *r, struct evbuffer *b, PGresult *res, int row)
{
    evbuffer_add(b, "{", 1);
    omni_apikey_json(b, res, row);
    evbuffer_add(b, "}", 1);
}


static int omni_apikey_registered(omni_req_t *r)
{
    if (omni_req_identity(r)->user_id == NULL) {
        omni_respond_error(
            r, 403, "forbidden", "API keys belong to registered users");
        return 0;
    }
    return 1;
}


/* GET /api/v1/api-keys: the caller's live keys, newest first */
void omni_apikeys_list(omni_req_t *r)
{
    const char *values[1] = {omni_req_identity(r)->user_id};
    omni_api_page_t page = {
        omni_apikey_list_stmt, 0, 1, omni_apikey_registered, omni_apikey_item};

    omni_api_list_page(r, &page, 1, values);
}


/* DELETE /api/v1/api-keys/{id}: revoked in Postgres first, then removed
 * from Redis; a retry after a Redis failure clears the mirror again. */
void omni_apikeys_delete(omni_req_t *r)
{
    const char *user = omni_req_identity(r)->user_id,
               *id = omni_req_param(r, 0);
    const char *values[2], *argv[2];
    char key[96];
    omni_api_redis_t *b;

    switch (r->state) {

    case 0:
        if (user == NULL || !omni_uuid_valid(id)) {
            omni_respond_error(r, 404, "not_found", "no such API key");
            return;
        }
        values[0] = id;
        values[1] = user;
        r->state = 1;
        omni_api_query(r, omni_apikey_delete_stmt, 2, values);
        return;

    case 1:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQntuples(r->db_res) == 0) {
            omni_respond_error(r, 404, "not_found", "no such API key");
            return;
        }
        b = omni_api_redis_begin(r);
        if (b == NULL) {
            return;
        }
        snprintf(
            key, sizeof(key), "omni:apikey:%s", PQgetvalue(r->db_res, 0, 0));
        argv[0] = "DEL";
        argv[1] = key;
        omni_api_redis_cmd(b, 2, argv);
        r->state = PQgetvalue(r->db_res, 0, 1)[0] == 't' ? 2 : 3;
        omni_api_redis_end(b, OMNI_AUTH_REDIS_TIMEOUT_MS);
        return;

    case 2:
        if (r->redis_failed) {
            omni_respond_error(r, 503, "redis_unavailable",
                "the key is revoked but the gateway may still "
                "accept it; retry the delete");
            return;
        }
        omni_log(OMNI_LOG_INFO, "api key deleted",
            "\"key_id\":\"%s\",\"user_id\":\"%s\"", id, user);
        omni_respond(r, 204, "application/json", NULL);
        return;

    default:
        omni_respond_error(r, 404, "not_found", "no such API key");
        return;
    }
}


/* --- the mirror's re-sync -------------------------------------------------
 *
 * Redis may lose its data (restart without persistence, FLUSHALL). Every
 * process checks every OMNI_APIKEY_SYNC_MS that the marker
 * omni:apikey:synced exists; when it does not, the one that takes the lock
 * writes back, page by page, first every live revoked access token
 * (omni:revoked:<jti> from auth_service.revoked_tokens: a revocation is
 * never undone, so nothing is checked again), then every live key, then
 * sets the marker. A key revoked while its page was being written could be
 * written back after its own DEL: so each key page is checked again after
 * writing, and keys that died meanwhile are deleted (their revocation
 * committed before that check, or their own DEL comes after our write).
 *
 *   IDLE -> CHECK -> LOCK -> (JTI_PAGE -> JTI_WRITE)* ->
 *   (PAGE -> WRITE -> RECHECK -> DELETE)* -> FINISH -> IDLE */

typedef enum {
    OMNI_SYNC_IDLE,
    OMNI_SYNC_CHECK,
    OMNI_SYNC_LOCK,
    OMNI_SYNC_JTI_PAGE,
    OMNI_SYNC_JTI_WRITE,
    OMNI_SYNC_PAGE,
    OMNI_SYNC_WRITE,
    OMNI_SYNC_RECHECK,
    OMNI_SYNC_DELETE,
    OMNI_SYNC_FINISH
} omni_sync_state_t;

static struct {
    omni_sync_state_t state;
    struct event timer;
    int pending;
    int failed;
    char after[65];      /* last hash of the previous page */
    char after_jti[129]; /* last jti of the previous page */
    char *page;          /* this page's hashes: {h1,h2} */
    int page_rows;
    unsigned long written;
    unsigned long revoked;
    char lock_value[32];
} omni_sync;

static void omni_sync_step(PGresult *res);


static void omni_sync_reset(void)
{
    free(omni_sync.page);
    omni_sync.page = NULL;
    omni_sync.state = OMNI_SYNC_IDLE;
}


static void omni_sync_abort(const char *why)
{
    omni_log(OMNI_LOG_WARN, "API key mirror sync stopped; will retry",
        "\"reason\":\"%s\"", why);
    omni_sync_reset();
}


static void omni_sync_reply(redisAsyncContext *ctx, void *reply, void *arg)
{
    redisReply *rep = reply;

    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        omni_sync.failed++;
    }
    if (--omni_sync.pending > 0) {
        return;
    }
    if (omni_sync.state == OMNI_SYNC_CHECK) {
        if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0) {
            omni_sync.state = OMNI_SYNC_LOCK;
            omni_sync_step(NULL);
        } else {
            omni_sync_reset();
        }
        return;
    }
    if (omni_sync.state == OMNI_SYNC_LOCK) {
        if (rep && rep->type == REDIS_REPLY_STATUS) {
            omni_log(OMNI_LOG_INFO, "API key mirror sync started", NULL);
            omni_sync.after[0] = '\0';
            omni_sync.after_jti[0] = '\0';
            omni_sync.written = 0;
            omni_sync.revoked = 0;
            omni_sync.state = OMNI_SYNC_JTI_PAGE;
            omni_sync_step(NULL);
        } else {
            omni_sync_reset(); /* another process is syncing */
        }
        return;
    }
    if (omni_sync.failed) {
        omni_sync_abort("Redis command failed");
        return;
    }
    omni_sync_step(NULL);
}


static int omni_sync_redis(int argc, const char **argv)
{
    if (omni_redis_command_argv(
            omni_clients.redis, omni_sync_reply, NULL, argc, argv, NULL)
        != 0) {
        return -1;
    }
    omni_sync.pending++;
    return 0;
}


static void omni_sync_db_done(void *arg, omni_db_status_t status, PGresult *res)
{
    if (status != OMNI_DB_OK) {
        omni_sync_abort("query failed");
        return;
    }
    omni_sync_step(res);
}


static void omni_sync_query(int stmt, int n, const char **values)
{
    if (omni_db_query(omni_clients.db, stmt, n, values, omni_sync_db_done, NULL)
        != OMNI_DB_OK) {
        omni_sync_abort("database unavailable");
    }
}


/* Advances the sync by one step; res is the last query's result, if any. */
static void omni_sync_step(PGresult *res)
{
    char limit[16], key[160], ttl[24];
    const char *values[2], *argv[12];
    int i, rows, sent;
    int64_t left;
    struct evbuffer *b;

    omni_sync.failed = 0;

    switch (omni_sync.state) {

    case OMNI_SYNC_LOCK:
        argv[0] = "SET";
        argv[1] = "omni:apikey:sync-lock";
        argv[2] = omni_sync.lock_value;
        argv[3] = "NX";
        argv[4] = "PX";
        snprintf(limit, sizeof(limit), "%d", OMNI_APIKEY_SYNC_LOCK_MS);
        argv[5] = limit;
        if (omni_sync_redis(6, argv) != 0) {
            omni_sync_reset();
        }
        return;

    case OMNI_SYNC_JTI_PAGE:
        snprintf(limit, sizeof(limit), "%d", OMNI_APIKEY_SYNC_PAGE);
        values[0] = omni_sync.after_jti;
        values[1] = limit;
        omni_sync.state = OMNI_SYNC_JTI_WRITE;
        omni_sync_query(omni_revoked_page_stmt, 2, values);
        return;

    case OMNI_SYNC_JTI_WRITE:
        rows = PQntuples(res);
        omni_sync.state = rows ? OMNI_SYNC_JTI_PAGE : OMNI_SYNC_PAGE;
        for (i = 0, sent = 0; i < rows; i++) {
            left =
                omni_auth_revoke_ttl(strtoll(PQgetvalue(res, i, 1), NULL, 10));
            if (left <= 0 || PQgetlength(res, i, 0) > 128) {
                continue;
            }
            snprintf(
                key, sizeof(key), "omni:revoked:%s", PQgetvalue(res, i, 0));
            snprintf(ttl, sizeof(ttl), "%lld", (long long)left);
            argv[0] = "SET";
            argv[1] = key;
            argv[2] = "1";
            argv[3] = "EX";
            argv[4] = ttl;
            if (omni_sync_redis(5, argv) != 0) {
                omni_sync_abort("Redis unavailable");
                return;
            }
            sent++;
        }
        if (rows) {
            snprintf(omni_sync.after_jti, sizeof(omni_sync.after_jti), "%s",
                PQgetvalue(res, rows - 1, 0));
            omni_sync.revoked += (unsigned long)sent;
        }
        if (sent == 0) {
            omni_sync_step(NULL);
        }
        return; /* else the replies call us again */

    case OMNI_SYNC_PAGE:
        snprintf(limit, sizeof(limit), "%d", OMNI_APIKEY_SYNC_PAGE);
        values[0] = omni_sync.after;
        values[1] = limit;
        omni_sync.state = OMNI_SYNC_WRITE;
        omni_sync_query(omni_apikey_page_stmt, 2, values);
        return;

    case OMNI_SYNC_WRITE:
        rows = PQntuples(res);
        if (rows == 0) {
            argv[0] = "SET";
            argv[1] = "omni:apikey:synced";
            argv[2] = "1";
            if (omni_sync_redis(3, argv) != 0) {
                omni_sync_abort("Redis unavailable");
                return;
            }
            argv[0] = "DEL";
            argv[1] = "omni:apikey:sync-lock";
            omni_sync_redis(2, argv);
            omni_sync.state = OMNI_SYNC_FINISH;
            return;
        }
        b = evbuffer_new();
        evbuffer_add(b, "{", 1);
        for (i = 0; i < rows; i++) {
            snprintf(key, sizeof(key), "omni:apikey:%s", PQgetvalue(res, i, 0));
            argv[0] = "HSET";
            argv[1] = key;
            argv[2] = "key_id";
            argv[3] = PQgetvalue(res, i, 1);
            argv[4] = "user_id";
            argv[5] = PQgetvalue(res, i, 2);
            argv[6] = "username";
            argv[7] = PQgetvalue(res, i, 3);
            argv[8] = "role";
            argv[9] = PQgetvalue(res, i, 4);
            argv[10] = "expires_at";
            argv[11] = PQgetvalue(res, i, 5);
            if (omni_sync_redis(12, argv) != 0) {
                break;
            }
            if (strcmp(argv[11], "0") != 0) {
                argv[0] = "EXPIREAT";
                argv[2] = argv[11];
                omni_sync_redis(3, argv);
            }
            evbuffer_add_printf(b, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
        }
        evbuffer_add(b, "}", 2);
        free(omni_sync.page);
        omni_sync.page = strdup((char *)evbuffer_pullup(b, -1));
        evbuffer_free(b);
        snprintf(omni_sync.after, sizeof(omni_sync.after), "%s",
            PQgetvalue(res, rows - 1, 0));
        omni_sync.page_rows = rows;
        omni_sync.written += (unsigned long)rows;
        if (i < rows || omni_sync.page == NULL) {
            omni_sync_abort("Redis unavailable");
            return;
        }
        omni_sync.state = OMNI_SYNC_RECHECK;
        return; /* the replies call us again */

    case OMNI_SYNC_RECHECK:
        values[0] = omni_sync.page;
        omni_sync.state = OMNI_SYNC_DELETE;
        omni_sync_query(omni_apikey_dead_stmt, 1, values);
        return;

    case OMNI_SYNC_DELETE:
        rows = PQntuples(res);
        omni_sync.state = OMNI_SYNC_PAGE;
        for (i = 0; i < rows; i++) {
            snprintf(key, sizeof(key), "omni:apikey:%s", PQgetvalue(res, i, 0));
            argv[0] = "DEL";
            argv[1] = key;
            if (omni_sync_redis(2, argv) != 0) {
                omni_sync_abort("Redis unavailable");
                return;
            }
        }
        if (rows == 0) {
            omni_sync_step(NULL);
        }
        return;

    case OMNI_SYNC_FINISH:
        omni_log(OMNI_LOG_INFO, "API key mirror synced",
            "\"keys\":%lu,\"revoked_tokens\":%lu", omni_sync.written,
            omni_sync.revoked);
        omni_sync_reset();
        return;

    default:
        return;
    }
}


static void omni_sync_tick(evutil_socket_t fd, short what, void *arg)
{
    const char *argv[2] = {"EXISTS", "omni:apikey:synced"};

    if (omni_sync.state != OMNI_SYNC_IDLE || omni_sync.pending > 0
        || !omni_redis_connected(omni_clients.redis)
        || !omni_db_available(omni_clients.db)) {
        return;
    }
    omni_sync.state = OMNI_SYNC_CHECK;
    if (omni_sync_redis(2, argv) != 0) {
        omni_sync_reset();
    }
}


int omni_apikeys_start_sync(struct event_base *base)
{
    struct timeval tv = {
        OMNI_APIKEY_SYNC_MS / 1000, (OMNI_APIKEY_SYNC_MS % 1000) * 1000};

    snprintf(omni_sync.lock_value, sizeof(omni_sync.lock_value), "%d",
        (int)getpid());
    event_assign(&omni_sync.timer, base, -1, EV_PERSIST, omni_sync_tick, NULL);
    return event_add(&omni_sync.timer, &tv);
}
