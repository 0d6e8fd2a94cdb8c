/* api.h: what every API handler shares: queries that re-enter the handler,
 * and how database failures are answered. */
#ifndef OMNI_API_H
#define OMNI_API_H

#include "io/db.h"
#include "http/http.h"

struct evbuffer;

/* Runs a prepared statement for request r. On completion the route's
 * handler is called again with r->db_status and r->db_res set (res is valid
 * only during that call). Returns 0 when queued; otherwise it has already
 * answered 503 and returns -1: the handler must return at once. */
int omni_api_query(
    omni_req_t *r, int stmt, int nparams, const char *const *values);

/* Redis commands for request r whose replies are awaited together: begin,
 * add commands, end. Once every reply is in (or timeout_ms has passed) the
 * route's handler is called again with r->redis_failed = the number of
 * commands that failed, were not sent (Redis down) or did not answer in
 * time. A reply that arrives after the deadline is dropped. begin returns
 * NULL only when out of memory, after answering 503: return at once. */
typedef struct omni_api_redis omni_api_redis_t;

omni_api_redis_t *omni_api_redis_begin(omni_req_t *r);
void omni_api_redis_cmd(omni_api_redis_t *b, int argc, const char **argv);
void omni_api_redis_end(omni_api_redis_t *b, int timeout_ms);

/* Answers a failed query: 503 database_unavailable / database_timeout, or
 * 500 internal_error for a statement Postgres rejected (logged, never
 * shown to the client). */
void omni_api_db_failed(omni_req_t *r);

/* Answers 200 (or status) with a JSON body built by the handler. */
void omni_api_json(omni_req_t *r, int status, struct evbuffer *body);

/* Answers status with the JSON text json[0..len) and a newline (no body
 * for a 204): for answers made whole elsewhere (SQL, another service). */
void omni_api_json_text(
    omni_req_t *r, int status, const char *json, size_t len);

/* Writes a text column as a JSON string, or null when it is SQL NULL. */
int omni_api_put_text(
    struct evbuffer *out, struct pg_result *res, int row, int col);

/* Answers 200 {"items":[...],"next_cursor":...} from r->db_res, a query
 * asked for limit + 1 rows: the extra row only says a next page exists,
 * and next_cursor is then column cursor_col of the last item shown. row
 * writes one item (a JSON value). */
typedef void (*omni_api_row_pt)(
    omni_req_t *r, struct evbuffer *b, struct pg_result *res, int row);

void omni_api_list(
    omni_req_t *r, int limit, int cursor_col, omni_api_row_pt row);

/* A whole list route (GET with `limit` and `cursor`), called by the
 * handler in every state: checks limit (400), page->allow (may be NULL;
 * returns 1, or 0 after answering), the cursor (a UUID when uuid_cursor,
 * else any text), runs page->stmt with the handler's values (at most
 * OMNI_API_PAGE_MAX_VALUES, e.g. the owner) followed by the cursor (NULL
 * when absent) and limit + 1, then answers as omni_api_list. */
#define OMNI_API_PAGE_MAX_VALUES 6

typedef struct {
    int stmt;
    int cursor_col; /* next_cursor's column */
    int uuid_cursor;
    int (*allow)(omni_req_t *r);
    omni_api_row_pt row;
} omni_api_page_t;

void omni_api_list_page(omni_req_t *r, const omni_api_page_t *page, int nvalues,
    const char *const *values);

/* The `cursor` argument of a list keyed by UUID: 0 and *out set (NULL
 * when absent); otherwise it has answered 400 invalid_parameter and
 * returns -1. */
int omni_api_cursor(omni_req_t *r, const char **out);

/* A string field of the JSON body: 0 and *out set (NULL when absent and
 * optional); otherwise it has answered 400 missing_field / invalid_field
 * naming the field and returns -1. */
int omni_api_field_string(
    omni_req_t *r, const char *name, int required, const char **out);

/* Parses a list's `limit` argument (default 50, 1..500). Returns the limit,
 * or -1 after answering 400 naming the parameter. */
int omni_api_limit(omni_req_t *r);

#endif
