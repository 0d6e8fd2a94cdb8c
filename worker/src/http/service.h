/* service.h: how a service plugs into the worker: one table, as an nginx
 * module plugs in through ngx_module_t. core/services.c lists the tables;
 * nothing else in core names a service. */
#ifndef OMNI_SERVICE_H
#define OMNI_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/router.h"
#include "io/config.h"

typedef struct {
    const char *name;

    /* Matched in this order, after the routes of the services listed
     * before this one. */
    const omni_route_t *routes;
    int nroutes;

    /* Master, once, before the pools exist: registers the prepared
     * statements. 0, or -1 when the statement table is full (start-up
     * fails). May be NULL, as may the three below. */
    int (*init)(void);

    /* Master, at start-up and on SIGHUP: takes its settings from cfg,
     * which outlives the next call. 0; or -1 with err naming the bad
     * setting, the previous settings staying in force. Worker processes
     * inherit what it set. */
    int (*configure)(const omni_config_t *cfg, char *err, size_t errlen);

    /* Each worker process, once its loop and clients (io/clients.h)
     * exist, before it accepts. 0, or -1: the process exits. */
    int (*start)(void);

    /* A draining worker process, once nothing is in flight: finishes what
     * it holds, then calls done(arg) exactly once (at once when nothing is
     * pending). */
    void (*stop)(void (*done)(void *arg), void *arg);
} omni_service_t;

/* .routes and .nroutes of a table's designated initializer, from an array
 * of routes. */
#define OMNI_SERVICE_ROUTES(a)                                                 \
    .routes = (a), .nroutes = (int)(sizeof(a) / sizeof((a)[0]))

/* Told of every answered request: its route index (-1 when none matched),
 * status and duration. Runs on the request's path: it must not block. */
typedef void (*omni_observer_pt)(int route, int status, uint64_t us);

#endif
