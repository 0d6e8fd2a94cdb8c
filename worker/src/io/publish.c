/* publish.c: the event queue and its HTTP/1.1 connection to nchan's
 * publisher location, pipelined, on the process's loop. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "lib/json.h"
#include "io/log.h"
#include "io/publish.h"


#define OMNI_PUB_CHANNEL_MAX 80
#define OMNI_PUB_TYPE_MAX 64
#define OMNI_PUB_DATA_MAX 65536
/* requests written before their answers arrive */
#define OMNI_PUB_WINDOW 32
#define OMNI_PUB_TIMEOUT_S 5
/* Reconnects after a failure back off from 100 ms up to 1 s: events wait
 * in the queue meanwhile, and a worker started before its gateway (the
 * socket not there yet) reached 5 s between tries under a 5 s cap, so its
 * events stayed queued for up to 5 s after the gateway came up */
#define OMNI_PUB_BACKOFF_MIN_MS 100
#define OMNI_PUB_BACKOFF_MAX_MS 1000
#define OMNI_PUB_HEAD_MAX 8192

typedef struct omni_pub_msg_s omni_pub_msg_t;

struct omni_pub_msg_s {
    omni_pub_msg_t *next;
    uint64_t queued_us;
    uint64_t sent_us;
    char channel[OMNI_PUB_CHANNEL_MAX + 1];
    char type[OMNI_PUB_TYPE_MAX + 1];
    char id[37];
    size_t len;
    char body[];
};

typedef enum {
    OMNI_PUB_STATUS_LINE,
    OMNI_PUB_HEADERS,
    OMNI_PUB_BODY
} omni_pub_parse_t;

static struct {
    struct event_base *base;
    int on;
    struct sockaddr_storage sa;
    socklen_t salen;
    char *secret;
    int queue_max;
    omni_publish_count_pt count;

    /* the queue: answered in order, so the in-flight ones come first */
    omni_pub_msg_t *head, *tail, *unsent;
    int inflight;
    omni_publish_stats_t st;

    struct bufferevent *bev;
    int connected;
    int closing; /* the peer said Connection: close */
    struct event *retry;
    int backoff_ms;
    int failing; /* a connection failure was logged */

    omni_pub_parse_t parse;
    long status;
    long left; /* body bytes of the current answer */
    int close_after;

    int history;
    int debug;

    time_t drop_logged;
    uint64_t drops_unlogged;

    int stopping;
    struct event *stop_timer;
    void (*done)(void *arg);
    void *done_arg;
} omni_pub = {.history = 1000};


static void omni_pub_connect(void);
static void omni_pub_write(void);


static uint64_t omni_pub_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}


int omni_publish_channel_valid(const char *s)
{
    size_t i, n = s ? strlen(s) : 0;

    if (n == 0 || n > OMNI_PUB_CHANNEL_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
                || s[i] == '-')) {
            return 0;
        }
    }
    return 1;
}


static int omni_pub_type_valid(const char *s)
{
    size_t i, n = s ? strlen(s) : 0;

    if (n == 0 || n > OMNI_PUB_TYPE_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')
                || s[i] == '.' || s[i] == '_' || s[i] == '-')) {
            return 0;
        }
    }
    return 1;
}


static void omni_pub_count(omni_publish_outcome_t outcome)
{
    switch (outcome) {
    case OMNI_PUBLISH_SENT:
        omni_pub.st.sent++;
        break;
    case OMNI_PUBLISH_DROPPED:
        omni_pub.st.dropped++;
        break;
    default:
        omni_pub.st.failed++;
        break;
    }
    if (omni_pub.count) {
        omni_pub.count(outcome);
    }
}


/* A drop is logged, but at most once a second with the count since. */
static void omni_pub_drop(const char *reason)
{
    time_t now = time(NULL);

    omni_pub_count(OMNI_PUBLISH_DROPPED);
    omni_pub.drops_unlogged++;
    if (now != omni_pub.drop_logged) {
        omni_log(OMNI_LOG_WARN, "events dropped",
            "\"reason\":\"%s\",\"dropped\":%llu,\"queue_max\":%d", reason,
            (unsigned long long)omni_pub.drops_unlogged, omni_pub.queue_max);
        omni_pub.drop_logged = now;
        omni_pub.drops_unlogged = 0;
    }
}


int omni_publish_start(struct event_base *base, const char *addr,
    const char *secret, int queue_max, omni_publish_count_pt count, char *err,
    size_t errlen)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&omni_pub.sa;
    struct addrinfo hints, *res = NULL;
    char host[256];
    const char *colon;
    int rc;

    omni_pub.base = base;
    omni_pub.count = count;
    omni_pub.queue_max = queue_max > 0 ? queue_max : 1024;
    omni_pub.on = 0;
    if (addr == NULL || *addr == '\0') {
        return 0;
    }
    if (strncmp(addr, "unix:", 5) == 0) {
        if (strlen(addr + 5) == 0 || strlen(addr + 5) >= sizeof(un->sun_path)) {
            snprintf(err, errlen, "OMNI_EVENTS_PUBLISH: bad unix socket path");
            return -1;
        }
        memset(un, 0, sizeof(*un));
        un->sun_family = AF_UNIX;
        strcpy(un->sun_path, addr + 5);
        omni_pub.salen = sizeof(*un);
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || colon == addr
            || (size_t)(colon - addr) >= sizeof(host) || colon[1] == '\0') {
            snprintf(err, errlen,
                "OMNI_EVENTS_PUBLISH: expected unix:/path or host:port");
            return -1;
        }
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        /* once, at start-up: the loop never waits for a resolver */
        rc = getaddrinfo(host, colon + 1, &hints, &res);
        if (rc != 0 || res == NULL || res->ai_addrlen > sizeof(omni_pub.sa)) {
            snprintf(err, errlen, "OMNI_EVENTS_PUBLISH: cannot resolve %s: %s",
                host, rc ? gai_strerror(rc) : "no address");
            if (res) {
                freeaddrinfo(res);
            }
            return -1;
        }
        memcpy(&omni_pub.sa, res->ai_addr, res->ai_addrlen);
        omni_pub.salen = res->ai_addrlen;
        freeaddrinfo(res);
    }
    free(omni_pub.secret);
    omni_pub.secret = secret && *secret ? strdup(secret) : NULL;
    omni_pub.on = 1;
    return 0;
}


void omni_publish_set_history(int n)
{
    if (n >= 1) {
        omni_pub.history = n;
    }
}


void omni_publish_set_debug(int on)
{
    omni_pub.debug = on;
}


void omni_publish_stats(omni_publish_stats_t *st)
{
    *st = omni_pub.st;
}


/* A random (version 4) UUID as the event's id. */
static void omni_pub_event_id(char *out)
{
    unsigned char b[16];
    size_t got = 0;
    ssize_t n;
    int i;

    while (got < sizeof(b)) {
        n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (i = 0; i < 16; i++) {
        out += sprintf(out, "%02x", b[i]);
        if (i == 3 || i == 5 || i == 7 || i == 9) {
            *out++ = '-';
        }
    }
    *out = '\0';
}


int omni_publish(const char *channel, const char *type, const char *data_json)
{
    omni_pub_msg_t *m;
    struct evbuffer *b;
    struct timeval tv;
    struct tm tm;
    char id[37], ts[96];
    size_t dlen = data_json ? strlen(data_json) : 2;

    if (!omni_pub.on || omni_pub.stopping) {
        return 0;
    }
    if (!omni_publish_channel_valid(channel) || !omni_pub_type_valid(type)
        || dlen == 0 || dlen > OMNI_PUB_DATA_MAX) {
        omni_pub_drop("bad channel, type or data");
        return -1;
    }
    if (omni_pub.st.queued >= omni_pub.queue_max) {
        omni_pub_drop("queue full");
        return -1;
    }

    omni_pub_event_id(id);
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
        tm.tm_sec, (int)(tv.tv_usec / 1000));

    b = evbuffer_new();
    if (b == NULL) {
        omni_pub_drop("out of memory");
        return -1;
    }
    evbuffer_add_printf(b,
        "{\"id\":\"%s\",\"type\":\"%s\",\"ts\":\"%s\",\"data\":", id, type, ts);
    evbuffer_add(b, data_json ? data_json : "{}", dlen);
    evbuffer_add(b, "}", 1);

    m = malloc(sizeof(*m) + evbuffer_get_length(b));
    if (m == NULL) {
        evbuffer_free(b);
        omni_pub_drop("out of memory");
        return -1;
    }
    memset(m, 0, sizeof(*m));
    m->queued_us = omni_pub_now_us();
    strcpy(m->channel, channel);
    strcpy(m->type, type);
    strcpy(m->id, id);
    m->len = evbuffer_get_length(b);
    evbuffer_remove(b, m->body, m->len);
    evbuffer_free(b);

    if (omni_pub.tail) {
        omni_pub.tail->next = m;
    } else {
        omni_pub.head = m;
    }
    omni_pub.tail = m;
    if (omni_pub.unsent == NULL) {
        omni_pub.unsent = m;
    }
    omni_pub.st.queued++;

    if (omni_pub.bev == NULL && omni_pub.retry == NULL) {
        omni_pub_connect();
    } else {
        omni_pub_write();
    }
    return 0;
}


static void omni_pub_finish_stop(void)
{
    void (*done)(void *arg) = omni_pub.done;

    if (omni_pub.stop_timer) {
        event_free(omni_pub.stop_timer);
        omni_pub.stop_timer = NULL;
    }
    if (omni_pub.bev) {
        bufferevent_free(omni_pub.bev);
        omni_pub.bev = NULL;
    }
    if (omni_pub.retry) {
        event_free(omni_pub.retry);
        omni_pub.retry = NULL;
    }
    omni_pub.done = NULL;
    if (done) {
        done(omni_pub.done_arg);
    }
}


/* The head message is answered (or lost): off the queue. */
static void omni_pub_complete(omni_publish_outcome_t outcome)
{
    omni_pub_msg_t *m = omni_pub.head;
    char data[512];

    omni_pub.head = m->next;
    if (omni_pub.head == NULL) {
        omni_pub.tail = NULL;
    }
    omni_pub.inflight--;
    omni_pub.st.queued--;
    omni_pub_count(outcome);

    if (outcome == OMNI_PUBLISH_SENT && omni_pub.debug
        && strcmp(m->channel, "debug") != 0) {
        snprintf(data, sizeof(data),
            "{\"channel\":\"%s\",\"type\":\"%s\",\"event_id\":\"%s\","
            "\"queued_ms\":%.3f,\"publish_ms\":%.3f}",
            m->channel, m->type, m->id,
            (double)(m->sent_us - m->queued_us) / 1000.0,
            (double)(omni_pub_now_us() - m->sent_us) / 1000.0);
        omni_publish("debug", "debug.published", data);
    }
    free(m);
    if (omni_pub.stopping && omni_pub.head == NULL) {
        omni_pub_finish_stop();
    }
}


static void omni_pub_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    event_free(omni_pub.retry);
    omni_pub.retry = NULL;
    if (omni_pub.head) {
        omni_pub_connect();
    }
}


/* Drops the connection. Events written and not answered are lost (they
 * may have been published: never sent twice), unless the peer announced
 * the close: nginx reads nothing after such an answer, so they go again. */
static void omni_pub_reset(const char *why)
{
    struct timeval tv;

    if (omni_pub.bev) {
        bufferevent_free(omni_pub.bev);
        omni_pub.bev = NULL;
    }
    if (omni_pub.closing) {
        omni_pub.unsent = omni_pub.head;
        omni_pub.inflight = 0;
    }
    while (omni_pub.inflight > 0) {
        omni_pub_complete(OMNI_PUBLISH_FAILED);
    }
    if (why != NULL && !omni_pub.failing) {
        omni_log(OMNI_LOG_WARN, "event publisher connection failed",
            "\"error\":\"%s\"", why);
        omni_pub.failing = 1;
    }
    omni_pub.connected = 0;
    omni_pub.closing = 0;
    omni_pub.parse = OMNI_PUB_STATUS_LINE;

    if (why == NULL) {
        omni_pub.backoff_ms = 0;
    } else {
        omni_pub.backoff_ms = omni_pub.backoff_ms ? omni_pub.backoff_ms * 2
                                                  : OMNI_PUB_BACKOFF_MIN_MS;
        if (omni_pub.backoff_ms > OMNI_PUB_BACKOFF_MAX_MS) {
            omni_pub.backoff_ms = OMNI_PUB_BACKOFF_MAX_MS;
        }
    }
    if (omni_pub.head == NULL) {
        return;
    }
    if (omni_pub.stopping && why != NULL) {
        while (omni_pub.head) {
            omni_pub.inflight++;
            omni_pub_complete(OMNI_PUBLISH_FAILED);
        }
        return;
    }
    omni_pub.retry = evtimer_new(omni_pub.base, omni_pub_retry_cb, NULL);
    if (omni_pub.retry) {
        tv.tv_sec = omni_pub.backoff_ms / 1000;
        tv.tv_usec = (omni_pub.backoff_ms % 1000) * 1000;
        evtimer_add(omni_pub.retry, &tv);
    }
}


/* Reads as many whole answers as have arrived. 0, or -1 after a reset. */
static int omni_pub_parse(struct evbuffer *in)
{
    char *line;
    size_t n;
    long v;

    for (;;) {
        switch (omni_pub.parse) {

        case OMNI_PUB_STATUS_LINE:
            line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
            if (line == NULL) {
                goto more;
            }
            if (omni_pub.inflight == 0 || n < 12
                || strncmp(line, "HTTP/1.", 7) != 0) {
                free(line);
                omni_pub_reset("not an HTTP answer");
                return -1;
            }
            omni_pub.status = strtol(line + 9, NULL, 10);
            omni_pub.left = -1;
            omni_pub.close_after = 0;
            omni_pub.parse = OMNI_PUB_HEADERS;
            free(line);
            break;

        case OMNI_PUB_HEADERS:
            line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
            if (line == NULL) {
                goto more;
            }
            if (n == 0) {
                free(line);
                if (omni_pub.left < 0) {
                    omni_pub_reset("answer without Content-Length");
                    return -1;
                }
                omni_pub.parse = OMNI_PUB_BODY;
                break;
            }
            if (strncasecmp(line, "Content-Length:", 15) == 0) {
                v = strtol(line + 15, NULL, 10);
                omni_pub.left = v < 0 ? 0 : v;
            } else if (strncasecmp(line, "Connection:", 11) == 0) {
                v = 11 + (long)strspn(line + 11, " \t");
                omni_pub.close_after = strncasecmp(line + v, "close", 5) == 0;
            }
            free(line);
            if (evbuffer_get_length(in) > OMNI_PUB_HEAD_MAX) {
                omni_pub_reset("answer head too large");
                return -1;
            }
            break;

        case OMNI_PUB_BODY:
            n = evbuffer_get_length(in);
            if ((long)n < omni_pub.left) {
                evbuffer_drain(in, n);
                omni_pub.left -= (long)n;
                goto more;
            }
            evbuffer_drain(in, (size_t)omni_pub.left);
            omni_pub.parse = OMNI_PUB_STATUS_LINE;
            if (omni_pub.status < 200 || omni_pub.status > 299) {
                omni_log(OMNI_LOG_WARN, "event not published",
                    "\"channel\":\"%s\",\"status\":%ld", omni_pub.head->channel,
                    omni_pub.status);
            }
            omni_pub_complete(omni_pub.status >= 200 && omni_pub.status <= 299
                                  ? OMNI_PUBLISH_SENT
                                  : OMNI_PUBLISH_FAILED);
            if (omni_pub.close_after) {
                omni_pub.closing = 1;
                omni_pub_reset(NULL);
                if (omni_pub.head && omni_pub.retry == NULL) {
                    omni_pub_connect();
                }
                return -1;
            }
            break;
        }
    }

more:
    return 0;
}


static void omni_pub_read_cb(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (omni_pub_parse(bufferevent_get_input(bev)) != 0) {
        return;
    }
    if (omni_pub.inflight == 0) {
        /* idle: nginx closes a kept connection when it likes */
        bufferevent_set_timeouts(bev, NULL, NULL);
    }
    omni_pub_write();
}


static void omni_pub_event_cb(struct bufferevent *bev, short what, void *arg)
{
    char why[128];

    (void)arg;
    if (what & BEV_EVENT_CONNECTED) {
        omni_pub.connected = 1;
        omni_pub.backoff_ms = 0;
        if (omni_pub.failing) {
            omni_log(OMNI_LOG_INFO, "event publisher connected", NULL);
            omni_pub.failing = 0;
        }
        bufferevent_enable(bev, EV_READ | EV_WRITE);
        omni_pub_write();
        return;
    }
    if ((what & BEV_EVENT_EOF) && omni_pub.inflight == 0) {
        omni_pub_reset(NULL);
        return;
    }
    snprintf(why, sizeof(why), "%s",
        what & BEV_EVENT_TIMEOUT ? "no answer in time"
        : what & BEV_EVENT_EOF   ? "closed by the gateway"
                                 : strerror(EVUTIL_SOCKET_ERROR()));
    omni_pub_reset(why);
}


static void omni_pub_connect(void)
{
    omni_pub.bev =
        bufferevent_socket_new(omni_pub.base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (omni_pub.bev == NULL) {
        omni_pub_reset("out of memory");
        return;
    }
    bufferevent_setcb(
        omni_pub.bev, omni_pub_read_cb, NULL, omni_pub_event_cb, NULL);
    if (bufferevent_socket_connect(
            omni_pub.bev, (struct sockaddr *)&omni_pub.sa, (int)omni_pub.salen)
        != 0) {
        omni_pub_reset(strerror(errno));
    }
}


static void omni_pub_write(void)
{
    struct evbuffer *out;
    struct timeval tv = {OMNI_PUB_TIMEOUT_S, 0};
    omni_pub_msg_t *m;

    if (!omni_pub.connected || omni_pub.closing) {
        return;
    }
    out = bufferevent_get_output(omni_pub.bev);
    while (omni_pub.unsent && omni_pub.inflight < OMNI_PUB_WINDOW) {
        m = omni_pub.unsent;
        evbuffer_add_printf(out,
            "POST /_omni_events/publish/%s HTTP/1.1\r\n"
            "Host: omni-events\r\n"
            "Content-Type: application/json\r\n"
            "Content-Length: %zu\r\n"
            "X-Omni-History: %d\r\n"
            "%s%s%s"
            "\r\n",
            m->channel, m->len, omni_pub.history,
            omni_pub.secret ? "X-Omni-Gateway-Secret: " : "",
            omni_pub.secret ? omni_pub.secret : "",
            omni_pub.secret ? "\r\n" : "");
        evbuffer_add(out, m->body, m->len);
        m->sent_us = omni_pub_now_us();
        omni_pub.unsent = m->next;
        omni_pub.inflight++;
    }
    if (omni_pub.inflight > 0) {
        bufferevent_set_timeouts(omni_pub.bev, &tv, &tv);
    }
}


static void omni_pub_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    omni_pub_reset("stopping: the gateway did not take every event in time");
    while (omni_pub.head) {
        omni_pub.inflight++;
        omni_pub_complete(OMNI_PUBLISH_FAILED);
    }
    if (omni_pub.done) {
        omni_pub_finish_stop();
    }
}


void omni_publish_stop(int timeout_ms, void (*done)(void *arg), void *arg)
{
    struct timeval tv;

    omni_pub.stopping = 1;
    omni_pub.done = done;
    omni_pub.done_arg = arg;
    if (omni_pub.head == NULL) {
        omni_pub_finish_stop();
        return;
    }
    omni_pub.stop_timer = evtimer_new(omni_pub.base, omni_pub_stop_cb, NULL);
    if (omni_pub.stop_timer == NULL) {
        omni_pub_stop_cb(-1, 0, NULL);
        return;
    }
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(omni_pub.stop_timer, &tv);
}
