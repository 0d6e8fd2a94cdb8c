/* activity.h: the dashboard's activity feed, which any feature appends to. */
#ifndef OMNI_ACTIVITY_H
#define OMNI_ACTIVITY_H

/* Called once when the event is stored (ok = 1) or could not be (ok = 0:
 * Postgres rejected it, went away or timed out; already logged). */
typedef void (*omni_activity_done_pt)(void *arg, int ok);

/* Appends an event to omni2_dashboard.activity through this process's
 * Postgres pool and prunes the feed to live_updates.max_stored_events, in
 * one statement (omni2_dashboard.record_activity), committed on its own:
 * not part of the caller's transaction.
 *
 *   type         dotted lower-case name, at most 64 bytes: "config.updated",
 *                "mcp.server.down" (omni_activity_type_valid)
 *   actor        the user id that caused it, or NULL for the platform
 *   summary      one line for people, 1 to 500 bytes
 *   detail_json  a JSON object as text, or NULL for {}. The feed is shown
 *                to every role and broadcast: put no secrets in it.
 *
 * Every string is copied before this returns. Returns 0 when the event is
 * queued: done (may be NULL: fire and forget) is then called exactly once,
 * never from inside this call. Returns -1, without calling done, when an
 * argument is invalid or the pool takes no more queries (Postgres down,
 * queue full); a warning is logged and the event is lost. Events from one
 * process land in the order they were stored, not necessarily the order
 * they were queued: wait for done when the order matters. */
int omni_activity_record(const char *type, const char *actor,
    const char *summary, const char *detail_json, omni_activity_done_pt done,
    void *arg);

/* 1 when type is a valid event type (see above). Pure. */
int omni_activity_type_valid(const char *type);

#endif
