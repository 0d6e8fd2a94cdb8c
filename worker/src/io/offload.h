/* offload.h: a small per-process thread pool for CPU-heavy work (password
 * hashing, token signing) so the event loop never stalls on it. */
#ifndef OMNI_OFFLOAD_H
#define OMNI_OFFLOAD_H

struct event_base;

typedef void (*omni_offload_fn)(void *arg);

/* Starts `threads` threads at a lower scheduling priority than the loop
 * (they yield the CPU to request handling) and hooks their completions
 * into base. At most queue_max jobs wait for a thread. Returns 0, or -1
 * when a thread or the eventfd cannot be created. Call once per process,
 * after fork. */
int omni_offload_start(struct event_base *base, int threads, int queue_max);

/* Runs work(arg) on a pool thread, then done(arg) on the loop. Returns 0,
 * or -1 (neither is called) when queue_max jobs already wait or the pool
 * is not running: the caller answers 503. work must not touch the loop or
 * anything the loop uses. */
int omni_offload_submit(omni_offload_fn work, omni_offload_fn done, void *arg);

/* Jobs waiting for a thread now. */
int omni_offload_queued(void);

/* Waits for the running jobs, drops the waiting ones without calling them
 * and joins the threads. For process exit, when nothing is in flight. */
void omni_offload_stop(void);

#endif
