/* log.c: one JSON object per line on stderr, written atomically. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "lib/json.h"
#include "io/log.h"

/* a write(2) of at most PIPE_BUF bytes to a pipe is atomic */
#define LOG_LINE_MAX PIPE_BUF
#define LOG_MSG_MAX 1024

static omni_log_level_t log_level = OMNI_LOG_INFO;

static const char *const log_names[] = {"debug", "info", "warn", "error"};


void omni_log_set_level(omni_log_level_t level)
{
    log_level = level;
}

int omni_log_enabled(omni_log_level_t level)
{
    return level >= log_level;
}

int omni_log_parse_level(const char *s, omni_log_level_t *out)
{
    size_t i;

    if (s == NULL)
        return -1;
    for (i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
        if (strcasecmp(s, log_names[i]) == 0) {
            *out = (omni_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

const char *omni_log_escape(char *buf, size_t size, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t len, i = 0, o = 0, n;
    char tmp[6];
    const char *piece;
    unsigned char c;
    int k;

    if (size == 0)
        return buf;
    if (s == NULL)
        s = "";
    len = strlen(s);

    while (i < len) {
        c = (unsigned char)s[i];
        piece = tmp;
        n = 2;
        k = 1;
        tmp[0] = '\\';
        if (c == '"' || c == '\\') {
            tmp[1] = (char)c;
        } else if (c == '\n') {
            tmp[1] = 'n';
        } else if (c == '\r') {
            tmp[1] = 'r';
        } else if (c == '\t') {
            tmp[1] = 't';
        } else if (c == '\b') {
            tmp[1] = 'b';
        } else if (c == '\f') {
            tmp[1] = 'f';
        } else if (c < 0x20) {
            memcpy(tmp + 1, "u00", 3);
            tmp[4] = hex[c >> 4];
            tmp[5] = hex[c & 0xF];
            n = 6;
        } else {
            k = c < 0x80 ? 1 : omni_utf8_seq(s + i, len - i);
            if (k > 0) {
                piece = s + i;
                n = (size_t)k;
            } else {
                piece = "\xEF\xBF\xBD";
                n = 3;
                k = -k;
            }
        }
        if (n > size - 1 - o)
            break;
        memcpy(buf + o, piece, n);
        o += n;
        i += (size_t)k;
    }
    buf[o] = '\0';
    return buf;
}

static void log_write(const char *line, size_t len)
{
    ssize_t n;

    while (len > 0) {
        n = write(STDERR_FILENO, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        line += n;
        len -= (size_t)n;
    }
}

void omni_log(omni_log_level_t level, const char *msg, const char *fields, ...)
{
    char line[LOG_LINE_MAX];
    char extra[LOG_LINE_MAX];
    char esc[LOG_MSG_MAX];
    struct timespec now;
    struct tm tm;
    va_list ap;
    size_t len, room;
    int saved = errno;
    int n;

    if (level < log_level)
        goto done;
    if ((unsigned)level > OMNI_LOG_ERROR)
        level = OMNI_LOG_ERROR;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
        "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\","
        "\"pid\":%ld,\"msg\":\"%s\"",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
        tm.tm_sec, now.tv_nsec / 1000000, log_names[level], (long)getpid(),
        omni_log_escape(esc, sizeof(esc), msg));
    if (n < 0)
        goto done;
    /* the prefix is bounded: timestamp, level, pid and LOG_MSG_MAX */
    len = (size_t)n;
    room = sizeof(line) - len - 2; /* keep "}\n" */

    if (fields != NULL) {
        va_start(ap, fields);
        n = vsnprintf(extra, sizeof(extra), fields, ap);
        va_end(ap);
        if (n > 0 && (size_t)n + 1 <= room) {
            line[len++] = ',';
            memcpy(line + len, extra, (size_t)n);
            len += (size_t)n;
        } else if (n > 0) {
            /* cutting raw members would break the line's JSON; an escaped
             * prefix keeps it valid and still tells what was there */
            static const char key[] = ",\"fields_truncated\":\"";

            memcpy(line + len, key, sizeof(key) - 1);
            len += sizeof(key) - 1;
            omni_log_escape(line + len, room - (sizeof(key) - 1) - 1, extra);
            len += strlen(line + len);
            line[len++] = '"';
        }
    }
    line[len++] = '}';
    line[len++] = '\n';
    log_write(line, len);

done:
    errno = saved;
}
