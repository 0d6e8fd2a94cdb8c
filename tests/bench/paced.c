/* paced.c: GET a path at a fixed total rate over N keep-alive connections
 * and print, per request, its scheduled send time (CLOCK_MONOTONIC, ns)
 * and its latency from that time (ns).
 *
 *   paced [-c CONNECTIONS] [-H 'Name: value']... PORT PATH RATE SECONDS
 *
 * For the latency a request meets below capacity, which wrk (always
 * saturating) cannot show and Debian packages no wrk2 or vegeta for.
 * Open loop: request k is due at start + k / RATE whatever happened to
 * the ones before it, goes out on the first idle connection (one request
 * in flight per connection), and its latency counts from when it was due,
 * so a stall shows in every request it delays instead of hiding in the
 * requests it kept from being sent ("coordinated omission"). In C rather
 * than Python because an interpreter's own pauses (allocation, another
 * thread's GIL, page faults in a forked child) land in exactly the
 * percentile being measured. The figures are kept in memory and printed
 * at the end: writing them as it goes would block on a full pipe. Expects
 * 200 answers with Content-Length, as omni-worker and nginx give; anything
 * else ends it with exit status 1. */
#define _GNU_SOURCE             /* strcasestr, ppoll */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PACED_MAX_CONNS    1024
#define PACED_MAX_HEADERS  16
#define PACED_BUF          16384


typedef struct {
    int        fd;
    long long  req;             /* in flight, or -1 */
    size_t     got;
    char       buf[PACED_BUF];
} paced_conn_t;


static long long
paced_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}


static int
paced_fail(const char *what)
{
    fprintf(stderr, "paced: %s%s%s\n", what, errno ? ": " : "",
            errno ? strerror(errno) : "");
    return 1;
}


/* A response in buf: its status once complete, 0 while incomplete, -1 when
 * it cannot be one (no Content-Length, too long, bytes past its end). */
static int
paced_complete(const char *buf, size_t got)
{
    const char  *end, *cl;
    size_t       need;

    end = strstr(buf, "\r\n\r\n");
    if (end == NULL) {
        return got == PACED_BUF - 1 ? -1 : 0;
    }
    cl = strcasestr(buf, "\r\ncontent-length:");
    if (cl == NULL || cl > end) {
        return -1;
    }
    need = (size_t) (end + 4 - buf) + strtoul(cl + 17, NULL, 10);
    if (need >= PACED_BUF) {
        return -1;
    }
    if (got < need) {
        return 0;
    }
    return got > need ? -1 : atoi(buf + 9);     /* "HTTP/1.1 200" */
}


static int
paced_connect(unsigned short port)
{
    struct sockaddr_in  sin = { .sin_family = AF_INET };
    int                 fd, one = 1;

    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *) &sin, sizeof(sin)) != 0) {
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}


int
main(int argc, char **argv)
{
    struct timespec     wait_ts, *timeout;
    struct pollfd      *pfd;
    paced_conn_t       *conns;
    long long           start, period, total, next, done, now, n, wait,
                       *took;
    double              rate, seconds;
    char                req[8192];
    const char         *headers[PACED_MAX_HEADERS];
    int                 nconns = 1, nheaders = 0, opt, len, i, k, status;
    unsigned short      port;
    const char         *end, *cl;
    ssize_t             r;

    while ((opt = getopt(argc, argv, "c:H:")) != -1) {
        if (opt == 'c' && (nconns = atoi(optarg)) >= 1
            && nconns <= PACED_MAX_CONNS)
        {
            continue;
        }
        if (opt == 'H' && nheaders < PACED_MAX_HEADERS) {
            headers[nheaders++] = optarg;
            continue;
        }
        optind = argc + 1;
        break;
    }
    if (argc - optind != 4 || (rate = atof(argv[optind + 2])) <= 0
        || (seconds = atof(argv[optind + 3])) <= 0)
    {
        fprintf(stderr, "usage: paced [-c CONNECTIONS (1-%d)] "
                "[-H 'Name: value']... PORT PATH RATE SECONDS\n",
                PACED_MAX_CONNS);
        return 2;
    }

    len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                   argv[optind + 1]);
    for (i = 0; i < nheaders && len > 0 && (size_t) len < sizeof(req); i++) {
        len += snprintf(req + len, sizeof(req) - len, "%s\r\n", headers[i]);
    }
    if (len > 0 && (size_t) len < sizeof(req)) {
        len += snprintf(req + len, sizeof(req) - len, "\r\n");
    }
    if (len < 0 || (size_t) len >= sizeof(req)) {
        fprintf(stderr, "paced: request too long\n");
        return 2;
    }

    port = (unsigned short) atoi(argv[optind]);
    conns = calloc(nconns, sizeof(paced_conn_t));
    pfd = calloc(nconns, sizeof(struct pollfd));
    if (conns == NULL || pfd == NULL) {
        return paced_fail("calloc");
    }
    for (i = 0; i < nconns; i++) {
        conns[i].fd = paced_connect(port);
        conns[i].req = -1;
        if (conns[i].fd < 0) {
            return paced_fail("connect");
        }
    }

    period = (long long) (1e9 / rate);
    if (period < 1) {
        period = 1;
    }
    total = (long long) (seconds * 1e9 + period - 1) / period;
    took = malloc(total * sizeof(long long));
    if (took == NULL) {
        return paced_fail("malloc");
    }

    start = paced_now();
    next = 0;           /* the first request not sent yet */
    done = 0;

    while (done < total) {
        now = paced_now();

        /* every request due goes out, while a connection is idle */
        for (i = 0; i < nconns && next < total
             && start + next * period <= now; i++)
        {
            if (conns[i].req >= 0) {
                continue;
            }
            if (write(conns[i].fd, req, len) != len) {
                return paced_fail("write");
            }
            conns[i].req = next++;
            conns[i].got = 0;
        }

        k = 0;
        for (i = 0; i < nconns; i++) {
            pfd[i].fd = conns[i].req >= 0 ? conns[i].fd : -1;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
            k += conns[i].req < 0;
        }

        /* sleep until the next request is due, if it could go out then */
        timeout = NULL;
        if (next < total && k > 0) {
            wait = start + next * period - paced_now();
            if (wait < 0) {
                wait = 0;
            }
            wait_ts.tv_sec = wait / 1000000000LL;
            wait_ts.tv_nsec = wait % 1000000000LL;
            timeout = &wait_ts;
        }

        if (ppoll(pfd, nconns, timeout, NULL) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return paced_fail("ppoll");
        }

        for (i = 0; i < nconns; i++) {
            if (pfd[i].revents == 0) {
                continue;
            }
            r = read(conns[i].fd, conns[i].buf + conns[i].got,
                     PACED_BUF - 1 - conns[i].got);
            if (r <= 0) {
                return paced_fail("read");
            }
            conns[i].got += r;
            conns[i].buf[conns[i].got] = '\0';
            status = paced_complete(conns[i].buf, conns[i].got);
            if (status == 0) {
                continue;
            }
            n = conns[i].req;
            if (status != 200) {
                fprintf(stderr, "paced: request %lld answered %d\n", n,
                        status);
                return 1;
            }
            took[n] = paced_now() - (start + n * period);
            conns[i].req = -1;
            done++;

            /* nginx closes a keep-alive connection after
             * keepalive_requests (1000) and says so */
            end = strstr(conns[i].buf, "\r\n\r\n");
            cl = strcasestr(conns[i].buf, "\r\nconnection: close");
            if (cl != NULL && cl < end) {
                close(conns[i].fd);
                conns[i].fd = paced_connect(port);
                if (conns[i].fd < 0) {
                    return paced_fail("connect");
                }
            }
        }
    }

    for (n = 0; n < total; n++) {
        printf("%lld %lld\n", start + n * period, took[n]);
    }
    return fflush(stdout) == 0 ? 0 : paced_fail("stdout");
}
