/* redis.h: one async hiredis connection per process on the event loop. */
#ifndef OMNI_REDIS_H
#define OMNI_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/async.h>

struct event_base;
typedef struct omni_redis omni_redis_t;

/* Parses addr ("host:port", "unix:/path" or
 * "sentinel://HOST:PORT[,HOST:PORT...]/MASTER"), resolves host names once,
 * here at start-up (hiredis 0.14 resolves with blocking getaddrinfo), and
 * starts connecting in the background; reconnects with backoff for ever.
 * With Sentinels, each connection asks them (in turn, each within
 * timeout_ms) where MASTER is, and a -READONLY reply drops the link so the
 * next one asks again; the master must be given by a numeric address.
 * A connect, or a command's reply, that takes longer than timeout_ms tears
 * the connection down (every waiting command fails) and reconnects; at
 * most pending_max commands wait for replies at a time. Returns NULL with
 * err set when addr is malformed or does not resolve. */
omni_redis_t *omni_redis_create(struct event_base *base, const char *addr,
    const char *password, int timeout_ms, int pending_max, char *err,
    size_t errlen);

/* 0 for a NULL client too (freed by its process), as every call below
 * treats it: not connected. */
int omni_redis_connected(omni_redis_t *r);

typedef struct {
    int connected;
    int pending; /* sent, not answered yet */
    int pending_max;
    uint64_t timeouts; /* connections torn down at a deadline */
    uint64_t rejected; /* commands refused: pending_max reached */
} omni_redis_stats_t;

void omni_redis_stats(omni_redis_t *r, omni_redis_stats_t *st);

/* Sends a command (hiredis format). Returns 0 when sent (fn is called with
 * the reply, or with NULL if the connection drops or stalls first), -1
 * when not connected or pending_max commands already wait (fn is not
 * called): the caller fails at once. */
int omni_redis_command(
    omni_redis_t *r, redisCallbackFn *fn, void *privdata, const char *fmt, ...);

/* The same with an argument vector (binary-safe; argvlen may be NULL for
 * NUL-terminated arguments). */
int omni_redis_command_argv(omni_redis_t *r, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen);

/* PINGs with a deadline (hiredis 0.14 has no async timeouts: we arm our
 * own timer). cb gets 1 for PONG in time, else 0; always called exactly
 * once, possibly before this returns when not connected. */
typedef void (*omni_redis_ping_pt)(void *arg, int ok);
void omni_redis_ping(
    omni_redis_t *r, int timeout_ms, omni_redis_ping_pt cb, void *arg);

void omni_redis_free(omni_redis_t *r);

#endif
