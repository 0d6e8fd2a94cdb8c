/* events.c: channel authorization for the gateway's nchan subscribers
 * (conversation channels; the gateway itself decides the others), and the
 * settings poll
 * (live_updates.max_stored_events, dev_features.websocket_debug) that
 * io/publish.c follows. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "lib/uuid.h"
#include "io/clients.h"
#include "io/log.h"
#include "io/publish.h"
#include "http/api.h"
#include "http/metrics.h"
#include "services/events/events.h"


#define OMNI_EVENTS_QUEUE_DEFAULT 4096
/* the settings are read at start and then this often: a change made by
 * any process or replica reaches every publisher within it */
#define OMNI_EVENTS_SETTINGS_MS 2000
#define OMNI_EVENTS_STOP_MS 1000
#define OMNI_EVENTS_CONVERSATION "conversation-"

static int omni_events_settings_stmt, omni_events_owned_stmt;
static struct event *omni_events_timer;
static int omni_events_reading;


static int omni_events_init(void)
{
    omni_events_settings_stmt = omni_db_statement("events_settings",
        "SELECT (SELECT (value->>'max_stored_events')::int"
        "  FROM omni2_dashboard.dashboard_config WHERE key = 'live_updates'),"
        " (SELECT coalesce((value->>'websocket_debug')::boolean, false)"
        "  FROM omni2_dashboard.dashboard_config WHERE key = 'dev_features')");
    /* The chat service's table may not exist yet, and a statement naming
     * a missing table would fail every connection's preparation: the
     * lookup is dynamic (values quoted by format's %L, the uuid checked by
     * its cast) and finds nobody while the table (with an owner column
     * user_id or owner_id) is missing. */
    omni_events_owned_stmt = omni_db_statement("events_conversation_owned",
        "SELECT CASE WHEN o.col IS NULL THEN false ELSE"
        " query_to_xml(format('SELECT 1 FROM omnichat.conversations"
        " WHERE id = %L::uuid AND %I::text = %L', $1::uuid, o.col,"
        " $2::text), false, true, '')::text <> '' END"
        " FROM (SELECT (SELECT a.attname FROM pg_catalog.pg_attribute AS a"
        "  WHERE a.attrelid = to_regclass('omnichat.conversations')"
        "  AND a.attname IN ('user_id', 'owner_id') AND NOT a.attisdropped"
        "  ORDER BY a.attname DESC LIMIT 1) AS col) AS o");
    return omni_events_settings_stmt < 0 || omni_events_owned_stmt < 0 ? -1 : 0;
}


static void omni_events_settings_read(
    void *arg, omni_db_status_t status, PGresult *res)
{
    (void)arg;
    omni_events_reading = 0;
    if (status != OMNI_DB_OK || PQntuples(res) != 1) {
        return;
    }
    if (!PQgetisnull(res, 0, 0)) {
        omni_publish_set_history(atoi(PQgetvalue(res, 0, 0)));
    }
    omni_publish_set_debug(
        !PQgetisnull(res, 0, 1) && PQgetvalue(res, 0, 1)[0] == 't');
}


static void omni_events_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (!omni_events_reading
        && omni_db_query(omni_clients.db, omni_events_settings_stmt, 0, NULL,
               omni_events_settings_read, NULL)
               == OMNI_DB_OK) {
        omni_events_reading = 1;
    }
}


static void omni_events_counted(omni_publish_outcome_t outcome)
{
    omni_metrics_event(outcome);
}


static int omni_events_start(void)
{
    const omni_config_t *cfg = omni_clients.cfg;
    struct timeval tv = {OMNI_EVENTS_SETTINGS_MS / 1000,
        (OMNI_EVENTS_SETTINGS_MS % 1000) * 1000};
    char err[256];

    if (omni_publish_start(omni_clients.base, cfg->events_publish,
            cfg->gateway_secret,
            cfg->events_queue_max ? cfg->events_queue_max
                                  : OMNI_EVENTS_QUEUE_DEFAULT,
            omni_events_counted, err, sizeof(err))
        != 0) {
        omni_log(
            OMNI_LOG_ERROR, "cannot publish events", "\"error\":\"%s\"", err);
        return -1;
    }
    if (cfg->events_publish == NULL) {
        return 0;
    }
    omni_events_timer =
        event_new(omni_clients.base, -1, EV_PERSIST, omni_events_tick, NULL);
    if (omni_events_timer == NULL || event_add(omni_events_timer, &tv) != 0) {
        return -1;
    }
    omni_events_tick(-1, 0, NULL);
    return 0;
}


static void omni_events_stop(void (*done)(void *arg), void *arg)
{
    if (omni_events_timer) {
        event_free(omni_events_timer);
        omni_events_timer = NULL;
    }
    omni_publish_stop(OMNI_EVENTS_STOP_MS, done, arg);
}


static void omni_events_forbidden(omni_req_t *r, const char *channel)
{
    omni_respond_error(r, 403, "forbidden_channel",
        "channel \"%.80s\" is not open to you: activity, mcp, and your own "
        "conversation-<uuid>",
        channel);
}


/* GET /internal/events/authorize, the gateway's nchan_authorize_request
 * for conversation channels: the channel comes in X-Omni-Channel (the
 * gateway clears the subscriber's query string and headers: a ?token=
 * never reaches us). 200 lets the subscriber in, 403 keeps it out. */
static void omni_events_authorize(omni_req_t *r)
{
    const char *channel = omni_req_header(r, "X-Omni-Channel");
    const omni_identity_t *who = omni_req_identity(r);
    const char *values[2];
    struct evbuffer *b;

    switch (r->state) {

    case 0:
        if (channel == NULL || !omni_publish_channel_valid(channel)) {
            omni_respond_error(r, 400, "invalid_channel",
                "X-Omni-Channel: expected a channel name (a-z, 0-9, -)");
            return;
        }
        if (strncmp(channel, OMNI_EVENTS_CONVERSATION,
                sizeof(OMNI_EVENTS_CONVERSATION) - 1)
                != 0
            || !omni_uuid_valid(
                channel + sizeof(OMNI_EVENTS_CONVERSATION) - 1)) {
            omni_events_forbidden(r, channel);
            return;
        }
        values[0] = channel + sizeof(OMNI_EVENTS_CONVERSATION) - 1;
        values[1] = who->id;
        r->state = 1;
        omni_api_query(r, omni_events_owned_stmt, 2, values);
        return;

    default:
        if (r->db_status != OMNI_DB_OK) {
            omni_api_db_failed(r);
            return;
        }
        if (PQgetvalue(r->db_res, 0, 0)[0] != 't') {
            omni_events_forbidden(r, channel);
            return;
        }
        b = evbuffer_new();
        evbuffer_add_printf(b, "{\"channel\":\"%s\"}\n", channel);
        omni_api_json(r, 200, b);
        evbuffer_free(b);
        return;
    }
}


static const omni_route_t omni_events_routes[] = {
    {"GET", "/internal/events/authorize", omni_events_authorize,
        OMNI_ROUTE_IDENTITY},
};


const omni_service_t omni_events_service = {.name = "events",
    OMNI_SERVICE_ROUTES(omni_events_routes),
    .init = omni_events_init,
    .start = omni_events_start,
    .stop = omni_events_stop};
