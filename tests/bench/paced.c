/* paced.c: send a request to a path at a fixed total rate over N
 * keep-alive connections and print, per request, its scheduled send time
 * (CLOCK_MONOTONIC, ns) and its latency from that time (ns).
 *
 *   paced [-c CONNECTIONS] [-H 'Name: value']... [-m METHOD]
 *         [-d BODY | -D FILE] [-k MARKER] PORT PATH RATE SECONDS
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
 * at the end: writing them as it goes would block on a full pipe.
 *
 * The request is a GET, or METHOD (-m) with a body (-d, or -D read from a
 * file) sent with its Content-Length. Answers are framed by
 * Content-Length or chunked (an MCP server's text/event-stream). An
 * answer is good when it is a 200 and, with -k, its body carries MARKER
 * and no "error" (a JSON-RPC error comes in a 200). Bad answers are
 * counted, the first one shown, and end it with exit status 1 once all
 * are in; an answer that cannot be read (no framing, too long, bytes
 * past its end) or a connection the server closed ends it at once. */
#define _GNU_SOURCE             /* strcasestr, memmem, ppoll */
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
#define PACED_MAX_BODY     (1024 * 1024)


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


/* The value of header `name` in the head buf..end, or NULL. */
static const char *
paced_header(const char *buf, const char *end, const char *name)
{
    const char  *p;
    size_t       n;

    n = strlen(name);
    for (p = strstr(buf, "\r\n"); p != NULL && p < end;
         p = strstr(p + 2, "\r\n"))
    {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            p += 3 + n;
            while (*p == ' ' || *p == '\t') {
                p++;
            }
            return p;
        }
    }
    return NULL;
}


/* The chunked body from p to last into body: 1 once its last chunk and
 * trailers are in, 0 while incomplete, -1 when it cannot be one. */
static int
paced_chunked(const char *p, const char *last, char *body, size_t *len)
{
    const char     *eol;
    char           *q;
    unsigned long   size;
    int             empty;

    *len = 0;
    for ( ;; ) {
        eol = memmem(p, last - p, "\r\n", 2);
        if (eol == NULL) {
            return 0;
        }
        size = strtoul(p, &q, 16);
        if (q == p || (q != eol && *q != ';') || size >= PACED_BUF) {
            return -1;
        }
        p = eol + 2;
        if (size == 0) {
            break;
        }
        if ((size_t) (last - p) < size + 2) {
            return 0;
        }
        if (p[size] != '\r' || p[size + 1] != '\n') {
            return -1;
        }
        memcpy(body + *len, p, size);
        *len += size;
        p += size + 2;
    }

    /* trailers, if any, then an empty line */
    do {
        eol = memmem(p, last - p, "\r\n", 2);
        if (eol == NULL) {
            return 0;
        }
        empty = (eol == p);
        p = eol + 2;
    } while (!empty);

    return p == last ? 1 : -1;
}


/* An answer in buf: its status once complete, with its body (unchunked,
 * NUL-terminated) in body; 0 while incomplete; -1 when it cannot be one
 * (no framing, too long, bytes past its end). */
static int
paced_answer(const char *buf, size_t got, char *body, size_t *len)
{
    const char  *end, *v;
    size_t       head, cl;
    int          rc;

    end = strstr(buf, "\r\n\r\n");
    if (end == NULL) {
        return got == PACED_BUF - 1 ? -1 : 0;
    }
    if (strncmp(buf, "HTTP/1.", 7) != 0 || end - buf < 12) {
        return -1;
    }
    head = (size_t) (end + 4 - buf);

    v = paced_header(buf, end, "transfer-encoding");
    if (v != NULL && strncasecmp(v, "chunked", 7) == 0) {
        rc = paced_chunked(end + 4, buf + got, body, len);
        if (rc == 0 && got == PACED_BUF - 1) {
            return -1;
        }
        if (rc != 1) {
            return rc;
        }

    } else {
        v = paced_header(buf, end, "content-length");
        if (v == NULL) {
            return -1;
        }
        cl = strtoul(v, NULL, 10);
        if (head + cl >= PACED_BUF) {
            return -1;
        }
        if (got < head + cl) {
            return 0;
        }
        if (got > head + cl) {
            return -1;
        }
        memcpy(body, end + 4, cl);
        *len = cl;
    }

    body[*len] = '\0';
    return atoi(buf + 9);                       /* "HTTP/1.1 200" */
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


/* The whole of a file, for -D. */
static char *
paced_read_file(const char *path, size_t *len)
{
    FILE  *f;
    char  *data;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    data = malloc(PACED_MAX_BODY + 1);
    if (data != NULL) {
        *len = fread(data, 1, PACED_MAX_BODY + 1, f);
        if (ferror(f) || *len > PACED_MAX_BODY) {
            free(data);
            data = NULL;
        }
    }
    fclose(f);
    return data;
}


int
main(int argc, char **argv)
{
    struct timespec     wait_ts, *timeout;
    struct pollfd      *pfd;
    paced_conn_t       *conns;
    long long           start, period, total, next, done, now, n, wait,
                        bad, *took;
    double              rate, seconds;
    char               *req, *data, body[PACED_BUF];
    const char         *headers[PACED_MAX_HEADERS], *method, *marker;
    size_t              size, data_len, blen;
    int                 nconns, nheaders, opt, len, i, k, status;
    unsigned short      port;
    const char         *end, *v;
    ssize_t             r;

    nconns = 1;
    nheaders = 0;
    method = "GET";
    marker = NULL;
    data = NULL;
    data_len = 0;

    while ((opt = getopt(argc, argv, "c:H:m:d:D:k:")) != -1) {
        if (opt == 'c' && (nconns = atoi(optarg)) >= 1
            && nconns <= PACED_MAX_CONNS)
        {
            continue;
        }
        if (opt == 'H' && nheaders < PACED_MAX_HEADERS) {
            headers[nheaders++] = optarg;
            continue;
        }
        if (opt == 'm' && *optarg != '\0') {
            method = optarg;
            continue;
        }
        if (opt == 'd' && data == NULL) {
            data = optarg;
            data_len = strlen(optarg);
            continue;
        }
        if (opt == 'D' && data == NULL) {
            data = paced_read_file(optarg, &data_len);
            if (data == NULL) {
                fprintf(stderr, "paced: cannot read %s (at most %d bytes)\n",
                        optarg, PACED_MAX_BODY);
                return 2;
            }
            continue;
        }
        if (opt == 'k' && *optarg != '\0') {
            marker = optarg;
            continue;
        }
        optind = argc + 1;
        break;
    }
    if (argc - optind != 4 || (rate = atof(argv[optind + 2])) <= 0
        || (seconds = atof(argv[optind + 3])) <= 0)
    {
        fprintf(stderr, "usage: paced [-c CONNECTIONS (1-%d)] "
                "[-H 'Name: value']... [-m METHOD] [-d BODY | -D FILE] "
                "[-k MARKER] PORT PATH RATE SECONDS\n", PACED_MAX_CONNS);
        return 2;
    }

    size = strlen(method) + strlen(argv[optind + 1]) + data_len + 128;
    for (i = 0; i < nheaders; i++) {
        size += strlen(headers[i]) + 2;
    }
    req = malloc(size);
    if (req == NULL) {
        return paced_fail("malloc");
    }
    len = snprintf(req, size, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                   method, argv[optind + 1]);
    for (i = 0; i < nheaders; i++) {
        len += snprintf(req + len, size - len, "%s\r\n", headers[i]);
    }
    if (data != NULL) {
        len += snprintf(req + len, size - len, "Content-Length: %zu\r\n",
                        data_len);
    }
    len += snprintf(req + len, size - len, "\r\n");
    if (data != NULL) {
        memcpy(req + len, data, data_len);
        len += data_len;
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
    bad = 0;

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
            if (r < 0) {
                return paced_fail("read");
            }
            if (r == 0) {
                fprintf(stderr, "paced: request %lld: the server closed the "
                        "connection before its answer\n", conns[i].req);
                return 1;
            }
            conns[i].got += r;
            conns[i].buf[conns[i].got] = '\0';
            status = paced_answer(conns[i].buf, conns[i].got, body, &blen);
            if (status == 0) {
                continue;
            }
            n = conns[i].req;
            if (status < 0) {
                fprintf(stderr, "paced: request %lld: an answer that cannot "
                        "be read (no Content-Length or chunked framing, over "
                        "%d bytes, or bytes past its end): %.300s\n", n,
                        PACED_BUF - 1, conns[i].buf);
                return 1;
            }
            took[n] = paced_now() - (start + n * period);
            conns[i].req = -1;
            done++;

            if (status != 200
                || (marker != NULL
                    && (memmem(body, blen, marker, strlen(marker)) == NULL
                        || memmem(body, blen, "\"error\"", 7) != NULL)))
            {
                if (bad++ == 0) {
                    fprintf(stderr, "paced: request %lld answered %d: "
                            "%.300s\n", n, status, body);
                }
            }

            /* nginx closes a keep-alive connection after
             * keepalive_requests (1000) and says so */
            end = strstr(conns[i].buf, "\r\n\r\n");
            v = paced_header(conns[i].buf, end, "connection");
            if (v != NULL && strncasecmp(v, "close", 5) == 0) {
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
    if (fflush(stdout) != 0) {
        return paced_fail("stdout");
    }
    if (bad > 0) {
        fprintf(stderr, "paced: %lld of %lld answers bad (not a 200%s)\n",
                bad, total, marker ? " carrying the marker and no \"error\""
                                   : "");
        return 1;
    }
    return 0;
}
