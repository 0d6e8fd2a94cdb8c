/* main.c: omni-worker's command line: serve (default) or migrate. */
#include <stdio.h>
#include <string.h>

#include "io/config.h"
#include "io/log.h"
#include "core/master.h"
#include "cli/migrate.h"
#include "cli/usercli.h"


static void omni_usage(FILE *f)
{
    fprintf(f,
        "usage: omni-worker [serve]\n"
        "       omni-worker migrate [up | down N | status]\n"
        "       omni-worker user create --email E --password-file F "
        "--role R [--username U]\n"
        "       omni-worker --version\n"
        "Settings come from the environment (and the KEY=VALUE file named by\n"
        "OMNI_CONFIG); see conf/worker.env.example.\n");
}


int main(int argc, char **argv)
{
    omni_config_t cfg;
    char err[512];
    const char *cmd = argc > 1 ? argv[1] : "serve";
    int serve = strcmp(cmd, "serve") == 0;

    if (strcmp(cmd, "--version") == 0) {
        printf("omni-worker 0.1.0\n");
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        omni_usage(stdout);
        return 0;
    }
    if (!serve && strcmp(cmd, "migrate") != 0 && strcmp(cmd, "user") != 0) {
        omni_usage(stderr);
        return 2;
    }

    if (omni_config_load(&cfg, serve, err, sizeof(err)) != 0) {
        fprintf(stderr, "omni-worker: %s\n", err);
        return 1;
    }
    omni_log_set_level((omni_log_level_t)cfg.log_level);

    if (strcmp(cmd, "user") == 0) {
        return omni_usercli_main(&cfg, argc - 2, argv + 2);
    }

    if (!serve) {
        if (cfg.database_url == NULL) {
            fprintf(stderr, "omni-worker: OMNI_DATABASE_URL is required but "
                            "not set\n");
            return 1;
        }
        return omni_migrate_main(
            cfg.database_url, cfg.sql_dir, argc - 2, argv + 2);
    }

    return omni_master_run(&cfg);
}
