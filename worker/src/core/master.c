/* master.c: owns the listening socket; starts, restarts, reloads and drains
 * the worker processes. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "io/log.h"
#include "http/metrics.h"
#include "core/balance.h"
#include "core/master.h"
#include "core/server.h"
#include "core/services.h"


#define OMNI_RESTART_BACKOFF_MIN_MS 100
#define OMNI_RESTART_BACKOFF_MAX_MS 5000
#define OMNI_STABLE_MS 2000 /* lived this long: not crashing */

typedef struct {
    pid_t pid;    /* 0: free */
    int position; /* which of the N workers it is */
    int retiring; /* replaced on reload: not restarted */
    int told;     /* retiring and sent SIGTERM */
    int ready;    /* accepting (said so on its ready pipe) */
    int ready_fd; /* read end of the ready pipe, or -1 */
    struct event ready_ev;
    uint64_t started_ms;
} omni_proc_t;

/* how long a reload waits for the new generation before retiring the old
 * one anyway */
#define OMNI_TAKEOVER_MS (OMNI_SERVER_WARMUP_MS + 2000)

typedef struct {
    int backoff_ms;
    struct event restart;
} omni_position_t;

static struct {
    omni_config_t *cfg;
    struct event_base *base;
    int listen_fd;
    char *unix_path;
    omni_proc_t procs[OMNI_METRICS_MAX_PROCS];
    omni_position_t *positions;
    int npositions;
    int stopping;
    int exit_code;
    struct event sig[5];
    struct event kill_timer;
    struct event takeover_timer;
} omni_master;


static void omni_master_retire(int force)
{
    int i;

    if (!force) {
        for (i = 0; i < OMNI_METRICS_MAX_PROCS; i++) {
            if (omni_master.procs[i].pid && !omni_master.procs[i].retiring
                && !omni_master.procs[i].ready) {
                return; /* the new generation is not all in yet */
            }
        }
    }
    evtimer_del(&omni_master.takeover_timer);
    for (i = 0; i < OMNI_METRICS_MAX_PROCS; i++) {
        if (omni_master.procs[i].pid && omni_master.procs[i].retiring
            && !omni_master.procs[i].told) {
            omni_master.procs[i].told = 1;
            kill(omni_master.procs[i].pid, SIGTERM);
        }
    }
}


static void omni_master_takeover(evutil_socket_t fd, short what, void *arg)
{
    omni_log(OMNI_LOG_WARN,
        "new workers not ready in time; retiring the "
        "old ones anyway",
        NULL);
    omni_master_retire(1);
}


static void omni_master_ready_close(omni_proc_t *p)
{
    if (p->ready_fd >= 0) {
        event_del(&p->ready_ev);
        close(p->ready_fd);
        p->ready_fd = -1;
    }
}


/* A byte: the process accepts. EOF without one: it died first. */
static void omni_master_ready(evutil_socket_t fd, short what, void *arg)
{
    omni_proc_t *p = arg;
    char b;
    ssize_t n;

    n = read(fd, &b, 1);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return;
    }
    p->ready = n == 1;
    omni_master_ready_close(p);
    if (p->ready) {
        omni_master_retire(0);
    }
}


static uint64_t omni_master_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}


static int omni_master_listen_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, probe;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "OMNI_LISTEN: socket path too long: %s", path);
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);

    /* a stale socket from a crash is replaced; a live one is not ours */
    if (stat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen,
                "OMNI_LISTEN: %s exists and is not a "
                "socket",
                path);
            return -1;
        }
        probe = socket(AF_UNIX, SOCK_STREAM, 0);
        if (probe >= 0
            && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            snprintf(err, errlen,
                "OMNI_LISTEN: %s is in use by a running "
                "server",
                path);
            return -1;
        }
        if (probe >= 0) {
            close(probe);
        }
        unlink(path);
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "OMNI_LISTEN: cannot bind %s: %s", path,
            strerror(errno));
        goto failed;
    }

    if (omni_master.cfg->listen_group) {
        struct group *g = getgrnam(omni_master.cfg->listen_group);

        if (g == NULL || chown(path, (uid_t)-1, g->gr_gid) != 0) {
            snprintf(err, errlen, "OMNI_LISTEN_GROUP=%s: %s",
                omni_master.cfg->listen_group,
                g ? strerror(errno) : "no such group");
            goto failed;
        }
    }
    if (chmod(path, (mode_t)omni_master.cfg->listen_mode) != 0) {
        snprintf(err, errlen, "OMNI_LISTEN_MODE: chmod %s: %s", path,
            strerror(errno));
        goto failed;
    }

    omni_master.unix_path = strdup(path);
    return fd;

failed:

    if (fd >= 0) {
        close(fd);
    }
    return -1;
}


static int omni_master_listen_tcp(const char *addr, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char host[256];
    const char *colon = strrchr(addr, ':');
    size_t hlen = (size_t)(colon - addr);
    int fd = -1, one = 1, rc;

    if (hlen >= sizeof(host)) {
        snprintf(err, errlen, "OMNI_LISTEN=%s: host too long", addr);
        return -1;
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    /* [::1]:9000 */
    if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']') {
        memmove(host, host + 1, hlen - 2);
        host[hlen - 2] = '\0';
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "OMNI_LISTEN=%s: %s", addr, gai_strerror(rc));
        return -1;
    }

    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0
        || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0
        || bind(fd, res->ai_addr, res->ai_addrlen) != 0) {
        snprintf(err, errlen, "OMNI_LISTEN=%s: cannot bind: %s", addr,
            strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        fd = -1;
    }
    freeaddrinfo(res);

    if (fd >= 0 && omni_master.cfg->gateway_secret == NULL) {
        /* omni_config_load refused this beyond loopback */
        omni_log(OMNI_LOG_WARN,
            "no OMNI_GATEWAY_SECRET: identity headers "
            "are believed from any local process that connects",
            "\"listen\":\"%s\"", addr);
    }
    return fd;
}


static void omni_master_spawn(int position)
{
    int slot, fds[2];
    pid_t pid;

    for (slot = 0; slot < OMNI_METRICS_MAX_PROCS; slot++) {
        if (omni_master.procs[slot].pid == 0) {
            break;
        }
    }
    if (slot == OMNI_METRICS_MAX_PROCS) {
        omni_log(OMNI_LOG_ERROR, "too many processes", NULL);
        return;
    }

    if (pipe(fds) != 0) {
        omni_log(
            OMNI_LOG_ERROR, "pipe failed", "\"error\":\"%s\"", strerror(errno));
        return;
    }

    pid = fork();
    if (pid < 0) {
        omni_log(
            OMNI_LOG_ERROR, "fork failed", "\"error\":\"%s\"", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return;
    }

    if (pid == 0) {
        sigset_t all;
        int i;

        /* The master's loop and signal handlers are not ours. The epoll
         * instance is shared across fork: reinit first, so freeing the
         * base does not unregister the master's descriptors from it. */
        event_reinit(omni_master.base);
        event_base_free(omni_master.base);
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        if (getppid() == 1) {
            _exit(0);
        }
        /* the other processes' ready pipes are the master's business */
        for (i = 0; i < OMNI_METRICS_MAX_PROCS; i++) {
            if (omni_master.procs[i].ready_fd >= 0) {
                close(omni_master.procs[i].ready_fd);
            }
        }
        close(fds[0]);
        _exit(omni_server_run(
            omni_master.cfg, omni_master.listen_fd, slot, fds[1]));
    }

    close(fds[1]);
    omni_master.procs[slot].ready = 0;
    omni_master.procs[slot].told = 0;
    omni_master.procs[slot].ready_fd = fds[0];
    event_assign(&omni_master.procs[slot].ready_ev, omni_master.base, fds[0],
        EV_READ | EV_PERSIST, omni_master_ready, &omni_master.procs[slot]);
    event_add(&omni_master.procs[slot].ready_ev, NULL);

    omni_master.procs[slot].pid = pid;
    omni_master.procs[slot].position = position;
    omni_master.procs[slot].retiring = 0;
    omni_master.procs[slot].started_ms = omni_master_now_ms();
    omni_log(OMNI_LOG_INFO, "worker started",
        "\"worker_pid\":%d,\"position\":%d", (int)pid, position);
}


static void omni_master_restart(evutil_socket_t fd, short what, void *arg)
{
    if (!omni_master.stopping) {
        omni_master_spawn((int)(intptr_t)arg);
    }
}


static int omni_master_children(void)
{
    int i, n = 0;

    for (i = 0; i < OMNI_METRICS_MAX_PROCS; i++) {
        n += omni_master.procs[i].pid != 0;
    }
    return n;
}


static void omni_master_signal_all(int sig)
{
    int i;

    for (i = 0; i < OMNI_METRICS_MAX_PROCS; i++) {
        if (omni_master.procs[i].pid) {
            kill(omni_master.procs[i].pid, sig);
        }
    }
}


static void omni_master_reaped(omni_proc_t *p, int status)
{
    omni_position_t *pos = &omni_master.positions[p->position];
    uint64_t lived = omni_master_now_ms() - p->started_ms;
    struct timeval tv;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;

    omni_log(
        p->retiring || omni_master.stopping ? OMNI_LOG_INFO : OMNI_LOG_WARN,
        "worker exited",
        "\"worker_pid\":%d,\"code\":%d,\"signal\":%d,\"lived_ms\":%llu",
        (int)p->pid, code, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
        (unsigned long long)lived);

    omni_metrics_release((int)(p - omni_master.procs));
    omni_balance_release((int)(p - omni_master.procs));
    omni_master_ready_close(p);
    p->pid = 0;
    p->ready = 0;

    if (p->retiring || omni_master.stopping) {
        return;
    }

    if (code == OMNI_EXIT_CONFIG) {
        omni_log(OMNI_LOG_ERROR,
            "worker cannot run with this "
            "configuration; stopping",
            NULL);
        omni_master.exit_code = 1;
        omni_master.stopping = 1;
        omni_master_signal_all(SIGTERM);
        return;
    }

    /* crash loops back off; a worker that ran a while restarts at once */
    if (lived >= OMNI_STABLE_MS) {
        pos->backoff_ms = 0;
    } else {
        pos->backoff_ms =
            pos->backoff_ms ? pos->backoff_ms * 2 : OMNI_RESTART_BACKOFF_MIN_MS;
        if (pos->backoff_ms > OMNI_RESTART_BACKOFF_MAX_MS) {
            pos->backoff_ms = OMNI_RESTART_BACKOFF_MAX_MS;
        }
    }
    tv.tv_sec = pos->backoff_ms / 1000;
    tv.tv_usec = (pos->backoff_ms % 1000) * 1000;
    evtimer_add(&pos->restart, &tv);
}


static void omni_master_sigchld(evutil_socket_t fd, short what, void *arg)
{
    pid_t pid;
    int status, i;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (i = 0; i < OMNI_METRICS_MAX_PROCS; i++) {
            if (omni_master.procs[i].pid == pid) {
                omni_master_reaped(&omni_master.procs[i], status);
                break;
            }
        }
    }

    if (omni_master.stopping && omni_master_children() == 0) {
        event_base_loopbreak(omni_master.base);
    }
}


static void omni_master_kill(evutil_socket_t fd, short what, void *arg)
{
    omni_log(OMNI_LOG_WARN, "workers did not drain in time; killing", NULL);
    omni_master_signal_all(SIGKILL);
}


static void omni_master_sigterm(evutil_socket_t fd, short what, void *arg)
{
    int ms = omni_master.cfg->drain_timeout_ms + 2000;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    int i;

    if (omni_master.stopping) {
        return;
    }
    omni_log(OMNI_LOG_INFO, "shutting down: draining workers", NULL);
    omni_master.stopping = 1;

    /* new connections are refused from now on; accepted ones finish */
    close(omni_master.listen_fd);
    omni_master.listen_fd = -1;
    if (omni_master.unix_path) {
        unlink(omni_master.unix_path);
    }

    for (i = 0; i < omni_master.npositions; i++) {
        evtimer_del(&omni_master.positions[i].restart);
    }
    omni_master_signal_all(SIGTERM);

    evtimer_assign(
        &omni_master.kill_timer, omni_master.base, omni_master_kill, NULL);
    evtimer_add(&omni_master.kill_timer, &tv);

    if (omni_master_children() == 0) {
        event_base_loopbreak(omni_master.base);
    }
}


static void omni_master_sighup(evutil_socket_t fd, short what, void *arg)
{
    omni_config_t *cfg;
    char err[512];
    int i, nold = 0;
    struct timeval tv;

    if (omni_master.stopping) {
        return;
    }

    cfg = malloc(sizeof(omni_config_t));
    if (cfg == NULL || omni_config_load(cfg, 1, err, sizeof(err)) != 0
        || omni_services_configure(cfg, err, sizeof(err)) != 0) {
        omni_log(OMNI_LOG_ERROR, "reload refused: bad configuration",
            "\"error\":\"%s\"", cfg ? err : "out of memory");
        free(cfg);
        return;
    }
    /* the socket and the number of workers stay as they were started */
    free(cfg->listen);
    cfg->listen = omni_master.cfg->listen;
    cfg->workers = omni_master.cfg->workers;
    omni_master.cfg = cfg;
    omni_log_set_level((omni_log_level_t)cfg->log_level);

    omni_log(OMNI_LOG_INFO, "reloading: replacing workers", NULL);

    for (i = 0; i < OMNI_METRICS_MAX_PROCS; i++) {
        if (omni_master.procs[i].pid && !omni_master.procs[i].retiring) {
            omni_master.procs[i].retiring = 1;
            nold++;
        }
    }
    /* the new generation shares the socket before the old one lets go, so
     * no connection finds nobody accepting */
    for (i = 0; i < omni_master.npositions; i++) {
        evtimer_del(&omni_master.positions[i].restart);
        omni_master.positions[i].backoff_ms = 0;
        omni_master_spawn(i);
    }
    /* the old generation goes once the new one accepts */
    if (nold > 0) {
        tv.tv_sec = OMNI_TAKEOVER_MS / 1000;
        tv.tv_usec = (OMNI_TAKEOVER_MS % 1000) * 1000;
        evtimer_add(&omni_master.takeover_timer, &tv);
        omni_master_retire(0);
    }
}


int omni_master_run(omni_config_t *cfg)
{
    const omni_route_t *routes;
    char err[512];
    int i, nroutes;
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP};

    omni_master.cfg = cfg;
    omni_master.npositions = cfg->workers;
    for (i = 0; i < OMNI_METRICS_MAX_PROCS; i++) {
        omni_master.procs[i].ready_fd = -1;
    }

    if (omni_services_init() != 0) {
        return 1;
    }
    routes = omni_services_routes(&nroutes);
    if (omni_metrics_init(routes, nroutes) != 0) {
        omni_log(OMNI_LOG_ERROR, "start-up failed: metrics table", NULL);
        return 1;
    }
    if (omni_balance_init() != 0) {
        omni_log(OMNI_LOG_ERROR, "start-up failed: accept balance table", NULL);
        return 1;
    }
    if (omni_services_configure(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "omni-worker: %s\n", err);
        return OMNI_EXIT_CONFIG;
    }

    omni_master.listen_fd =
        strncmp(cfg->listen, "unix:", 5) == 0
            ? omni_master_listen_unix(cfg->listen + 5, err, sizeof(err))
            : omni_master_listen_tcp(cfg->listen, err, sizeof(err));
    if (omni_master.listen_fd < 0) {
        fprintf(stderr, "omni-worker: %s\n", err);
        return 1;
    }
    if (listen(omni_master.listen_fd, 1024) != 0
        || fcntl(omni_master.listen_fd, F_SETFL, O_NONBLOCK) != 0) {
        fprintf(stderr, "omni-worker: listen on %s: %s\n", cfg->listen,
            strerror(errno));
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    omni_master.base = event_base_new();
    omni_master.positions = calloc(cfg->workers, sizeof(omni_position_t));
    if (omni_master.base == NULL || omni_master.positions == NULL) {
        fprintf(stderr, "omni-worker: out of memory\n");
        return 1;
    }

    evtimer_assign(&omni_master.takeover_timer, omni_master.base,
        omni_master_takeover, NULL);
    evsignal_assign(&omni_master.sig[0], omni_master.base, SIGCHLD,
        omni_master_sigchld, NULL);
    for (i = 1; i <= 3; i++) {
        evsignal_assign(&omni_master.sig[i], omni_master.base, sigs[i],
            omni_master_sigterm, NULL);
    }
    evsignal_assign(&omni_master.sig[4], omni_master.base, SIGHUP,
        omni_master_sighup, NULL);
    for (i = 0; i < 5; i++) {
        evsignal_add(&omni_master.sig[i], NULL);
    }

    omni_log(OMNI_LOG_INFO, "master started",
        "\"listen\":\"%s\",\"workers\":%d", cfg->listen, cfg->workers);

    for (i = 0; i < cfg->workers; i++) {
        evtimer_assign(&omni_master.positions[i].restart, omni_master.base,
            omni_master_restart, (void *)(intptr_t)i);
        omni_master_spawn(i);
    }

    event_base_dispatch(omni_master.base);

    if (omni_master.listen_fd >= 0) {
        close(omni_master.listen_fd);
        if (omni_master.unix_path) {
            unlink(omni_master.unix_path);
        }
    }
    omni_log(
        OMNI_LOG_INFO, "master exit", "\"code\":%d", omni_master.exit_code);
    event_base_free(omni_master.base);
    return omni_master.exit_code;
}
