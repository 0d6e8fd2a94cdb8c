/* fuzz_auth_input.c: libFuzzer target for the auth input parsers.
 *
 * Every input, as a NUL-terminated string, goes to each function of
 * auth_input.h, whose answer is compared with an independent reading of the
 * header's contract:
 * - email_problem and username_problem accept exactly what their rules
 *   allow, and a refusal is a one-line reason;
 * - token_format accepts exactly prefix + 43 base64url characters (prefix
 *   "omr_", "" and, for "prefix\ntoken" inputs, the text before the '\n');
 * - chars counts the code points of valid UTF-8 and never exceeds strlen;
 * - rfc3339 accepts exactly what a separate parser accepts, with the same
 *   seconds (from a days-from-civil count, not timegm), and gmtime_r of the
 *   result shifted by the offset gives back the input's fields;
 * - array_next walks to the end in fewer steps than bytes, never writes
 *   past outlen (exact-size heap buffers), and returns each element as the
 *   contract says, for several outlen. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "services/auth/auth_input.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_b64url(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)
           || c == '-' || c == '_';
}

static void check_reason(const char *why)
{
    if (why[0] == '\0' || strchr(why, '\n') != NULL)
        abort();
}

static int email_ok(const char *e)
{
    size_t n = strlen(e), i, ats = 0, at = 0;
    const char *dom;
    size_t dlen;

    if (n > 254)
        return 0;
    for (i = 0; i < n; i++) {
        if ((unsigned char)e[i] <= 0x20 || e[i] == 0x7f)
            return 0;
        if (e[i] == '@') {
            ats++;
            at = i;
        }
    }
    if (ats != 1 || at < 1 || at > 64)
        return 0;
    dom = e + at + 1;
    dlen = n - at - 1;
    return dlen >= 3 && memchr(dom, '.', dlen) != NULL && dom[0] != '.'
           && dom[dlen - 1] != '.' && strstr(dom, "..") == NULL;
}

static void check_email(const char *s)
{
    const char *why = omni_auth_email_problem(s);

    if ((why == NULL) != email_ok(s))
        abort();
    if (why != NULL)
        check_reason(why);
}

static void check_username(const char *s)
{
    const char *why = omni_auth_username_problem(s);
    size_t n = strlen(s), i;
    int ok = n >= 3 && n <= 64;

    for (i = 0; ok && i < n; i++)
        ok = is_b64url(s[i]) || s[i] == '.';
    if ((why == NULL) != ok)
        abort();
    if (why != NULL)
        check_reason(why);
}

static void check_token(const char *t, const char *prefix)
{
    size_t p = strlen(prefix), n = strlen(t), i;
    int ok = n == p + 43 && memcmp(t, prefix, p) == 0;

    for (i = p; ok && i < n; i++)
        ok = is_b64url(t[i]);
    if (omni_auth_token_format(t, prefix) != ok)
        abort();
}

/* code points of s, or -1 when s is not valid UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF) */
static long utf8_count(const unsigned char *s)
{
    long n = 0;
    uint32_t cp;
    int k, i;

    while (*s) {
        if (*s < 0x80) {
            k = 0;
            cp = *s;
        } else if ((*s & 0xe0) == 0xc0) {
            k = 1;
            cp = *s & 0x1f;
        } else if ((*s & 0xf0) == 0xe0) {
            k = 2;
            cp = *s & 0x0f;
        } else if ((*s & 0xf8) == 0xf0) {
            k = 3;
            cp = *s & 0x07;
        } else {
            return -1;
        }
        for (i = 1; i <= k; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return -1;
            cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800)
            || (k == 3 && cp < 0x10000) || cp > 0x10ffff
            || (cp >= 0xd800 && cp <= 0xdfff))
            return -1;
        s += k + 1;
        n++;
    }
    return n;
}

static void check_chars(const char *s)
{
    size_t got = omni_auth_chars(s);
    long want = utf8_count((const unsigned char *)s);

    if (got > strlen(s) || (want >= 0 && got != (size_t)want))
        abort();
}

/* days from 1970-01-01 to y-m-d, proleptic Gregorian (H. Hinnant) */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int num(const char *s, int n)
{
    int v = 0;

    while (n-- > 0)
        v = v * 10 + (*s++ - '0');
    return v;
}

/* the reference reading of the rfc3339 contract: 0 and *out and the
 * offset in seconds east of UTC in *east, or -1 */
static int ref_rfc3339(const char *s, int64_t *out, int *east)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    int y, mo, d, h, mi, sec, days, oh, om;
    const char *p;
    size_t i;

    for (i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd' && !is_digit(s[i]))
            return -1;
        if (shape[i] == 'T' && s[i] != 'T' && s[i] != 't')
            return -1;
        if (shape[i] != 'd' && shape[i] != 'T' && s[i] != shape[i])
            return -1;
    }
    y = num(s, 4);
    mo = num(s + 5, 2);
    d = num(s + 8, 2);
    h = num(s + 11, 2);
    mi = num(s + 14, 2);
    sec = num(s + 17, 2);
    if (mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59)
        return -1;
    days = (int)(mo == 12 ? days_from_civil(y + 1, 1, 1)
                          : days_from_civil(y, mo + 1, 1))
           - (int)days_from_civil(y, mo, 1);
    if (d < 1 || d > days)
        return -1;
    p = s + 19;
    if (*p == '.') {
        if (!is_digit(p[1]))
            return -1;
        for (p++; is_digit(*p); p++)
            ;
    }
    *east = 0;
    if (*p == 'Z' || *p == 'z') {
        if (p[1] != '\0')
            return -1;
    } else if (*p == '+' || *p == '-') {
        if (!is_digit(p[1]) || !is_digit(p[2]) || p[3] != ':' || !is_digit(p[4])
            || !is_digit(p[5]) || p[6] != '\0')
            return -1;
        oh = num(p + 1, 2);
        om = num(p + 4, 2);
        if (oh > 23 || om > 59)
            return -1;
        *east = (*p == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    } else {
        return -1;
    }
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - *east;
    return 0;
}

static void check_rfc3339(const char *s)
{
    int64_t got = 0, want = 0;
    int rc = omni_auth_rfc3339(s, &got), east = 0;
    char back[32];
    time_t local;
    struct tm tm;

    if (rc != ref_rfc3339(s, &want, &east))
        abort();
    if (rc != 0)
        return;
    if (got != want || strlen(s) < 20)
        abort();
    /* the local time the input wrote, read back by the C library */
    local = (time_t)(got + east);
    if (gmtime_r(&local, &tm) == NULL)
        abort();
    snprintf(back, sizeof(back), "%04d-%02d-%02dT%02d:%02d:%02d",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
        tm.tm_sec);
    back[10] = s[10];
    if (memcmp(back, s, 19) != 0)
        abort();
}

static void check_array(const char *text, size_t outlen)
{
    const char *p = text, *next, *start;
    size_t steps = 0, most = strlen(text) + 1, len, copy;
    char *out = malloc(outlen);

    if (out == NULL)
        abort();
    while (p != NULL) {
        if (++steps > most)
            abort();
        start = p + (*p == '{' || *p == ',');
        len = strcspn(start, ",}");
        copy = len < outlen - 1 ? len : outlen - 1;
        next = omni_auth_array_next(p, out, outlen);
        if (strlen(out) != copy || memcmp(out, start, copy) != 0)
            abort();
        if ((next == NULL) != (copy == 0 || strcmp(out, "NULL") == 0))
            abort();
        if (next != NULL && next != start + len)
            abort();
        p = next;
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t outlens[] = {1, 2, 5, 37, 160};
    char *s = malloc(size + 1);
    const char *nl;
    size_t i;

    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    check_email(s);
    check_username(s);
    check_token(s, "omr_");
    check_token(s, "");
    nl = strchr(s, '\n');
    if (nl != NULL) {
        char *prefix = strndup(s, (size_t)(nl - s));

        if (prefix == NULL)
            abort();
        check_token(nl + 1, prefix);
        free(prefix);
    }
    check_chars(s);
    check_rfc3339(s);
    for (i = 0; i < sizeof(outlens) / sizeof(outlens[0]); i++)
        check_array(s, outlens[i]);
    free(s);
    return 0;
}
