/* server.h: one worker process: its event loop, HTTP server and clients. */
#ifndef OMNI_SERVER_H
#define OMNI_SERVER_H

#include "io/config.h"

/* Exit code a worker uses for a configuration it cannot run with: the
 * master stops instead of restarting it (sysexits EX_CONFIG). */
#define OMNI_EXIT_CONFIG 78

/* Serves listen_fd until SIGTERM has drained it. Returns the exit code.
 * Accepting starts once a Postgres connection is ready (or after
 * OMNI_SERVER_WARMUP_MS, so a database outage answers 503 rather than
 * nothing); then one byte is written to ready_fd, which is closed: the
 * master retires the previous generation only then. */
#define OMNI_SERVER_WARMUP_MS 1000

int omni_server_run(
    const omni_config_t *cfg, int listen_fd, int slot, int ready_fd);

#endif
