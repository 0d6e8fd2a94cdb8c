/* redis.h: one async hiredis connection per process on the event loop. */
#ifndef OMNI_REDIS_H
#define OMNI_REDIS_H

#include <stddef.h>
#include <hiredis/async.h>

struct event_base;
typedef struct omni_redis omni_redis_t;

/* Parses addr ("host:port" or "unix:/path"), resolves a host name once,
 * here at start-up (hiredis 0.14 resolves with blocking getaddrinfo), and
 * starts connecting in the background; reconnects with backoff for ever.
 * Returns NULL with err set when addr is malformed or does not resolve. */
omni_redis_t *omni_redis_create(struct event_base *base, const char *addr,
    const char *password, char *err, size_t errlen);

int omni_redis_connected(omni_redis_t *r);

/* Sends a command (hiredis format). Returns 0 when sent (fn is called with
 * the reply, or with NULL if the connection drops first), -1 when not
 * connected (fn is not called). */
int omni_redis_command(omni_redis_t *r, redisCallbackFn *fn, void *privdata,
    const char *fmt, ...);

/* The same with an argument vector (binary-safe; argvlen may be NULL for
 * NUL-terminated arguments). */
int omni_redis_command_argv(omni_redis_t *r, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen);

/* PINGs with a deadline (hiredis 0.14 has no async timeouts: we arm our
 * own timer). cb gets 1 for PONG in time, else 0; always called exactly
 * once, possibly before this returns when not connected. */
typedef void (*omni_redis_ping_pt)(void *arg, int ok);
void omni_redis_ping(omni_redis_t *r, int timeout_ms, omni_redis_ping_pt cb,
    void *arg);

void omni_redis_free(omni_redis_t *r);

#endif
