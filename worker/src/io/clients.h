/* clients.h: this process's event loop and the clients on it, set up by
 * core/server.c before the process accepts, for everything above io/. */
#ifndef OMNI_CLIENTS_H
#define OMNI_CLIENTS_H

#include "io/config.h"
#include "io/db.h"
#include "io/redis.h"

struct event_base;

typedef struct {
    const omni_config_t *cfg;
    struct event_base *base;
    omni_db_t *db;
    omni_redis_t *redis;
} omni_clients_t;

extern omni_clients_t omni_clients;

#endif
