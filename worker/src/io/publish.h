/* publish.h: events for subscribers, handed to nchan's publisher location
 * on the gateway (POST /_omni_events/publish/<channel>) over one kept-alive
 * connection per process. nchan stores them in shared memory, or in Redis
 * when several gateways share channels: that is the gateway's
 * configuration, the worker's code path is the same.
 *
 * Publishing never blocks a request: omni_publish() copies the event into
 * a bounded queue and returns; a full queue drops the event (counted,
 * logged at most once a second). Delivery is at most once: an event whose
 * answer was lost with its connection is not sent again. */
#ifndef OMNI_PUBLISH_H
#define OMNI_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

typedef enum {
    OMNI_PUBLISH_SENT,    /* nchan took it */
    OMNI_PUBLISH_DROPPED, /* the queue was full, or the event unusable */
    OMNI_PUBLISH_FAILED   /* nchan refused it, or the connection broke */
} omni_publish_outcome_t;

/* Told of every event's fate, on the loop. */
typedef void (*omni_publish_count_pt)(omni_publish_outcome_t outcome);

/* Starts publishing on base to addr ("unix:/path" or "host:port" of the
 * gateway's publisher listener; NULL or "": publishing is off and
 * omni_publish() does nothing). secret (may be NULL) is sent as
 * X-Omni-Gateway-Secret; at most queue_max events wait. Connects lazily and
 * reconnects with backoff. Returns 0, or -1 with err naming the bad
 * address. */
int omni_publish_start(struct event_base *base, const char *addr,
    const char *secret, int queue_max, omni_publish_count_pt count, char *err,
    size_t errlen);

/* Queues {"id","type","ts","data"} for channel:
 *
 *   channel    1-80 of a-z, 0-9 and '-': "activity", "mcp",
 *              "conversation-<uuid>"
 *   type       dotted lower-case name, 1-64 bytes: "config.updated",
 *              "mcp.server.down", "chat.delta"
 *   data_json  a JSON value as text (not checked here; at most 64 KiB), or
 *              NULL for {}
 *
 * Copies everything; never blocks. Returns 0 when queued (or publishing is
 * off), -1 when dropped: bad argument, queue full, out of memory. */
int omni_publish(const char *channel, const char *type, const char *data_json);

/* Channel history nchan keeps (live_updates.max_stored_events): sent with
 * each event from now on. n < 1 is ignored. */
void omni_publish_set_history(int n);

/* Debug echo (dev_features.websocket_debug): when on, every published
 * event is followed on channel "debug" by {"channel","type","event_id",
 * "queued_ms","publish_ms"}. */
void omni_publish_set_debug(int on);

typedef struct {
    int queued; /* waiting or in flight */
    uint64_t sent, dropped, failed;
} omni_publish_stats_t;

void omni_publish_stats(omni_publish_stats_t *st);

/* Sends what is queued, then closes, then calls done(arg) once (at once
 * when publishing is off or idle); gives up after timeout_ms, counting
 * what is left as failed. */
void omni_publish_stop(int timeout_ms, void (*done)(void *arg), void *arg);

/* 1 when s is a usable channel name (see omni_publish). Pure. */
int omni_publish_channel_valid(const char *s);

#endif
