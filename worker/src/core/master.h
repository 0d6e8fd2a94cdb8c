/* master.h: the master process (socket, workers' life cycle, signals). */
#ifndef OMNI_MASTER_H
#define OMNI_MASTER_H

#include "io/config.h"

/* Binds OMNI_LISTEN, forks cfg->workers processes and supervises them:
 * restarts crashed ones with backoff, replaces all on SIGHUP, drains on
 * SIGTERM/SIGINT/SIGQUIT. Returns the exit code. */
int omni_master_run(omni_config_t *cfg);

#endif
