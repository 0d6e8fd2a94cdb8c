/* usercli.h: `omni-worker user create`, for operators. */
#ifndef OMNI_USERCLI_H
#define OMNI_USERCLI_H

#include "io/config.h"

/* Runs `user create --email E --password-file F --role R [--username U]`
 * (argv starts after "user"). Prints the new user's id on success.
 * Returns the process exit code: 0, 1 on a refused or failed creation
 * (message on stderr), 2 on bad usage. */
int omni_usercli_main(const omni_config_t *cfg, int argc, char **argv);

#endif
