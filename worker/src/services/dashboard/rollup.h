/* rollup.h: per-minute request rollups, accumulated in memory and flushed to
 * omni_metrics.request_rollup in one statement per batch. */
#ifndef OMNI_ROLLUP_H
#define OMNI_ROLLUP_H

#include <stdint.h>
#include "lib/hist.h"

struct event_base;
struct evbuffer;
typedef struct omni_db omni_db_t;

#define OMNI_ROLLUP_MAX 256 /* distinct (minute, route, status) per batch */

typedef struct {
    int64_t minute; /* unix seconds, multiple of 60; 0 = empty */
    int route;
    int status;
    uint64_t count;
    uint64_t sum_us;
    uint64_t max_us;
    uint64_t hist[OMNI_HIST_BUCKETS];
} omni_rollup_entry_t;

typedef struct {
    omni_rollup_entry_t e[OMNI_ROLLUP_MAX];
    int used;
    uint64_t dropped; /* requests not counted: table full */
} omni_rollup_table_t;

/* Pure accumulation, unit-tested without a loop. */
void omni_rollup_add(omni_rollup_table_t *t, int64_t minute, int route,
    int status, uint64_t count, uint64_t sum_us, uint64_t max_us,
    const uint64_t *hist);
void omni_rollup_record(omni_rollup_table_t *t, int64_t now_sec, int route,
    int status, uint64_t us);
void omni_rollup_merge(
    omni_rollup_table_t *dst, const omni_rollup_table_t *src);

/* Renders the batch as the seven array parameters of the flush statement
 * (Postgres array literals), each a NUL-terminated string in out[i]. */
int omni_rollup_params(const omni_rollup_table_t *t, struct evbuffer *out[7]);

/* Registers the flush statement; call before omni_db_create(). */
int omni_rollup_register(void);

/* Starts the periodic flush of this process's rollups. */
int omni_rollup_start(struct event_base *base, omni_db_t *db, int flush_ms);

/* Counts one request in this process's table. */
void omni_rollup_request(int route, int status, uint64_t us);

/* Flushes what is left, then calls done (at once if nothing is pending).
 * Used on graceful exit. */
void omni_rollup_final_flush(void (*done)(void *arg), void *arg);

#endif
