/* rollup.c: batches per-minute request rollups into Postgres. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/db.h"
#include "io/log.h"
#include "http/metrics.h"
#include "services/dashboard/rollup.h"


static const char omni_rollup_sql[] =
    "INSERT INTO omni_metrics.request_rollup AS r"
    " (minute, route, status, count, sum_us, max_us, hist)"
    " SELECT to_timestamp(m), rt, st, c, s, mx, h::bigint[]"
    " FROM unnest($1::bigint[], $2::text[], $3::smallint[], $4::bigint[],"
    "             $5::bigint[], $6::bigint[], $7::text[])"
    "      AS t(m, rt, st, c, s, mx, h)"
    " ON CONFLICT (minute, route, status) DO UPDATE SET"
    " count = r.count + excluded.count,"
    " sum_us = r.sum_us + excluded.sum_us,"
    " max_us = greatest(r.max_us, excluded.max_us),"
    " hist = omni_metrics.hist_add(r.hist, excluded.hist)";

static struct {
    omni_db_t *db;
    int stmt;
    int flushing;
    omni_rollup_table_t acc;  /* being filled by requests */
    omni_rollup_table_t sent; /* the batch in flight */
    struct event timer;
    void (*done)(void *);
    void *done_arg;
} omni_rollup;


static unsigned omni_rollup_hash(int64_t minute, int route, int status)
{
    uint64_t h = (uint64_t)minute * 0x9E3779B97F4A7C15ull
                 ^ (uint64_t)route * 0xC2B2AE3D27D4EB4Full ^ (uint64_t)status;

    return (unsigned)(h ^ (h >> 29)) % OMNI_ROLLUP_MAX;
}


static omni_rollup_entry_t *omni_rollup_find(
    omni_rollup_table_t *t, int64_t minute, int route, int status)
{
    unsigned i, h = omni_rollup_hash(minute, route, status);

    for (i = 0; i < OMNI_ROLLUP_MAX; i++) {
        omni_rollup_entry_t *e = &t->e[(h + i) % OMNI_ROLLUP_MAX];

        if (e->minute == 0) {
            e->minute = minute;
            e->route = route;
            e->status = status;
            t->used++;
            return e;
        }
        if (e->minute == minute && e->route == route && e->status == status) {
            return e;
        }
    }
    return NULL;
}


void omni_rollup_add(omni_rollup_table_t *t, int64_t minute, int route,
    int status, uint64_t count, uint64_t sum_us, uint64_t max_us,
    const uint64_t *hist)
{
    omni_rollup_entry_t *e = omni_rollup_find(t, minute, route, status);
    int b;

    if (e == NULL) {
        t->dropped += count;
        return;
    }
    e->count += count;
    e->sum_us += sum_us;
    if (max_us > e->max_us) {
        e->max_us = max_us;
    }
    for (b = 0; b < OMNI_HIST_BUCKETS; b++) {
        e->hist[b] += hist[b];
    }
}


void omni_rollup_record(
    omni_rollup_table_t *t, int64_t now_sec, int route, int status, uint64_t us)
{
    omni_rollup_entry_t *e =
        omni_rollup_find(t, now_sec - now_sec % 60, route, status);

    if (e == NULL) {
        t->dropped++;
        return;
    }
    e->count++;
    e->sum_us += us;
    if (us > e->max_us) {
        e->max_us = us;
    }
    e->hist[omni_hist_bucket(us)]++;
}


void omni_rollup_merge(omni_rollup_table_t *dst, const omni_rollup_table_t *src)
{
    int i;

    for (i = 0; i < OMNI_ROLLUP_MAX; i++) {
        const omni_rollup_entry_t *e = &src->e[i];

        if (e->minute) {
            omni_rollup_add(dst, e->minute, e->route, e->status, e->count,
                e->sum_us, e->max_us, e->hist);
        }
    }
    dst->dropped += src->dropped;
}


int omni_rollup_params(const omni_rollup_table_t *t, struct evbuffer *out[7])
{
    int i, b, p, first = 1, rc = 0;

    for (p = 0; p < 7; p++) {
        rc |= evbuffer_add(out[p], "{", 1);
    }

    for (i = 0; i < OMNI_ROLLUP_MAX; i++) {
        const omni_rollup_entry_t *e = &t->e[i];
        const char *sep = first ? "" : ",";

        if (e->minute == 0) {
            continue;
        }
        first = 0;
        /* route labels hold no quote or backslash: they come from the
         * compiled-in route table */
        rc |= evbuffer_add_printf(out[0], "%s%lld", sep, (long long)e->minute)
              < 0;
        rc |= evbuffer_add_printf(
                  out[1], "%s\"%s\"", sep, omni_metrics_route_label(e->route))
              < 0;
        rc |= evbuffer_add_printf(out[2], "%s%d", sep, e->status) < 0;
        rc |= evbuffer_add_printf(
                  out[3], "%s%llu", sep, (unsigned long long)e->count)
              < 0;
        rc |= evbuffer_add_printf(
                  out[4], "%s%llu", sep, (unsigned long long)e->sum_us)
              < 0;
        rc |= evbuffer_add_printf(
                  out[5], "%s%llu", sep, (unsigned long long)e->max_us)
              < 0;
        rc |= evbuffer_add_printf(out[6], "%s\"{", sep) < 0;
        for (b = 0; b < OMNI_HIST_BUCKETS; b++) {
            rc |= evbuffer_add_printf(out[6], b ? ",%llu" : "%llu",
                      (unsigned long long)e->hist[b])
                  < 0;
        }
        rc |= evbuffer_add(out[6], "}\"", 2);
    }

    for (p = 0; p < 7; p++) {
        rc |= evbuffer_add(out[p], "}", 2); /* with the NUL */
    }
    return rc ? -1 : 0;
}


int omni_rollup_register(void)
{
    omni_rollup.stmt = omni_db_statement("rollup_flush", omni_rollup_sql);
    return omni_rollup.stmt < 0 ? -1 : 0;
}


void omni_rollup_request(int route, int status, uint64_t us)
{
    omni_rollup_record(
        &omni_rollup.acc, (int64_t)time(NULL), route, status, us);
}


static int omni_rollup_flush(void);


static void omni_rollup_flushed(
    void *arg, omni_db_status_t status, PGresult *res)
{
    omni_rollup.flushing = 0;

    if (status != OMNI_DB_OK) {
        /* keep the counts for the next attempt */
        omni_rollup_merge(&omni_rollup.acc, &omni_rollup.sent);
        if (status == OMNI_DB_ERROR) {
            char buf[256];

            omni_log(OMNI_LOG_ERROR, "rollup flush failed", "\"error\":\"%s\"",
                omni_log_escape(buf, sizeof(buf), PQresultErrorMessage(res)));
        }
    }
    memset(&omni_rollup.sent, 0, sizeof(omni_rollup.sent));

    /* on exit: send what arrived meanwhile, unless Postgres is failing */
    if (omni_rollup.done && status == OMNI_DB_OK && omni_rollup_flush()) {
        return;
    }
    if (omni_rollup.done) {
        void (*done)(void *) = omni_rollup.done;

        omni_rollup.done = NULL;
        done(omni_rollup.done_arg);
    }
}


/* Sends the accumulated batch; returns 1 when a flush is under way. */
static int omni_rollup_flush(void)
{
    struct evbuffer *bufs[7];
    const char *values[7];
    int i, ok = 1;

    if (omni_rollup.flushing) {
        return 1;
    }
    if (omni_rollup.acc.used == 0 || omni_rollup.db == NULL) {
        return 0;
    }

    if (omni_rollup.acc.dropped) {
        omni_log(OMNI_LOG_WARN, "rollup table full, requests not counted",
            "\"dropped\":%llu", (unsigned long long)omni_rollup.acc.dropped);
    }

    for (i = 0; i < 7; i++) {
        bufs[i] = evbuffer_new();
        ok &= bufs[i] != NULL;
    }
    if (ok && omni_rollup_params(&omni_rollup.acc, bufs) == 0) {
        for (i = 0; i < 7; i++) {
            values[i] = (const char *)evbuffer_pullup(bufs[i], -1);
        }
        if (omni_db_query(omni_rollup.db, omni_rollup.stmt, 7, values,
                omni_rollup_flushed, NULL)
            == OMNI_DB_OK) {
            omni_rollup.sent = omni_rollup.acc;
            omni_rollup.sent.dropped = 0;
            memset(&omni_rollup.acc, 0, sizeof(omni_rollup.acc));
            omni_rollup.flushing = 1;
        }
    }
    for (i = 0; i < 7; i++) {
        if (bufs[i]) {
            evbuffer_free(bufs[i]);
        }
    }
    return omni_rollup.flushing;
}


static void omni_rollup_tick(evutil_socket_t fd, short what, void *arg)
{
    omni_rollup_flush();
}


int omni_rollup_start(struct event_base *base, omni_db_t *db, int flush_ms)
{
    struct timeval tv = {flush_ms / 1000, (flush_ms % 1000) * 1000};

    omni_rollup.db = db;
    event_assign(
        &omni_rollup.timer, base, -1, EV_PERSIST, omni_rollup_tick, NULL);
    return event_add(&omni_rollup.timer, &tv);
}


void omni_rollup_final_flush(void (*done)(void *arg), void *arg)
{
    event_del(&omni_rollup.timer);

    if (!omni_rollup.flushing && !omni_rollup_flush()) {
        done(arg);
        return;
    }
    omni_rollup.done = done;
    omni_rollup.done_arg = arg;
}
