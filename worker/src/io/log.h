/* log.h: structured logs, one JSON object per line on stderr. */
#ifndef OMNI_LOG_H
#define OMNI_LOG_H

#include <stddef.h>

typedef enum {
    OMNI_LOG_DEBUG,
    OMNI_LOG_INFO,
    OMNI_LOG_WARN,
    OMNI_LOG_ERROR
} omni_log_level_t;

/* Messages below level are dropped; the default is OMNI_LOG_INFO. */
void omni_log_set_level(omni_log_level_t level);

/* Parses "debug|info|warn|error" (any case); returns 0, or -1 on anything
 * else (out untouched). */
int omni_log_parse_level(const char *s, omni_log_level_t *out);

/* 1 when a line of `level` would be written: lets a caller skip building
 * the fields of a line that would be dropped. */
int omni_log_enabled(omni_log_level_t level);

/* Logs {"ts":..,"level":..,"pid":..,"msg":msg, <fields>} where fields is
 * printf-formatted JSON members without braces, e.g.
 * omni_log(OMNI_LOG_INFO, "listening", "\"addr\":\"%s\"", addr).
 * Pass NULL fields for none. ts is RFC 3339 UTC with milliseconds; msg is
 * escaped here. Each line is at most 4096 bytes (PIPE_BUF) and goes out in
 * one write(2), so lines from several processes never interleave; fields
 * that do not fit are kept as an escaped prefix in "fields_truncated".
 * Never fails and preserves errno; never logs secrets by contract of the
 * callers. String values must be JSON-escaped by the caller when they come
 * from outside (use omni_log_escape). */
void omni_log(omni_log_level_t level, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

/* Escapes s (NULL = "") into buf for use inside a JSON string: \" \\ \n \r
 * \t \b \f, other control characters as \u00XX, invalid UTF-8 as U+FFFD.
 * Truncates to fit without splitting an escape or a character. Returns buf
 * (size must be > 0). */
const char *omni_log_escape(char *buf, size_t size, const char *s);

#endif
