/* paced.c: GET a path at a fixed rate on one keep-alive connection and
 * print, per request, its send time (CLOCK_MONOTONIC, ns) and latency (ns).
 *
 *   paced PORT PATH RATE SECONDS
 *
 * For the latency a request meets below capacity, which wrk (always
 * saturating) cannot show and Debian packages no wrk2 or vegeta for. In C
 * rather than Python because an interpreter's own pauses (allocation,
 * another thread's GIL, page faults in a forked child) land in exactly the
 * percentile being measured. The figures are kept in memory and printed
 * at the end: writing them as it goes would block on a full pipe. Expects
 * 200 answers with Content-Length, as omni-worker gives; anything else
 * ends it with exit status 1. */
#define _GNU_SOURCE             /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>


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


/* Reads one response into buf; returns its status, or -1. */
static int
paced_response(int fd, char *buf, size_t size)
{
    size_t   got = 0, need = 0;
    ssize_t  n;
    char    *end, *cl;

    for ( ;; ) {
        n = read(fd, buf + got, size - 1 - got);
        if (n <= 0) {
            return -1;
        }
        got += n;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end == NULL) {
            if (got == size - 1) {
                return -1;
            }
            continue;
        }
        if (need == 0) {
            cl = strcasestr(buf, "\r\ncontent-length:");
            if (cl == NULL || cl > end) {
                return -1;
            }
            need = (size_t) (end + 4 - buf) + strtoul(cl + 17, NULL, 10);
            if (need >= size) {
                return -1;
            }
        }
        if (got >= need) {
            return got > need ? -1 : atoi(buf + 9);   /* "HTTP/1.1 200" */
        }
    }
}


int
main(int argc, char **argv)
{
    struct sockaddr_in  sin = { .sin_family = AF_INET };
    struct timespec     due_ts;
    long long           start, period, due, t0, n, total, *sent, *took;
    double              rate, seconds;
    char                req[512], buf[16384];
    int                 fd, one = 1, len, status;

    if (argc != 5 || (rate = atof(argv[3])) <= 0
        || (seconds = atof(argv[4])) <= 0)
    {
        fprintf(stderr, "usage: paced PORT PATH RATE SECONDS\n");
        return 2;
    }
    len = snprintf(req, sizeof(req),
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
    if (len < 0 || (size_t) len >= sizeof(req)) {
        fprintf(stderr, "paced: path too long\n");
        return 2;
    }

    sin.sin_port = htons((unsigned short) atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *) &sin, sizeof(sin)) != 0) {
        return paced_fail("connect");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    period = (long long) (1e9 / rate);
    total = (long long) (seconds * 1e9 + period - 1) / period;
    sent = malloc(total * sizeof(long long));
    took = malloc(total * sizeof(long long));
    if (sent == NULL || took == NULL) {
        return paced_fail("malloc");
    }

    start = paced_now();
    for (n = 0; n < total; n++) {
        due = start + n * period;
        due_ts.tv_sec = due / 1000000000LL;
        due_ts.tv_nsec = due % 1000000000LL;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due_ts, NULL)
               == EINTR)
        { /* void */ }

        t0 = paced_now();
        if (write(fd, req, len) != len) {
            return paced_fail("write");
        }
        status = paced_response(fd, buf, sizeof(buf));
        if (status != 200) {
            fprintf(stderr, "paced: request %lld answered %d\n", n, status);
            return 1;
        }
        took[n] = paced_now() - t0;
        sent[n] = t0;
    }

    for (n = 0; n < total; n++) {
        printf("%lld %lld\n", sent[n], took[n]);
    }
    return fflush(stdout) == 0 ? 0 : paced_fail("stdout");
}
