/* auth_input.c: what the auth endpoints accept, as pure functions. */
#include <string.h>
#include <time.h>

#include "services/auth/auth_input.h"


const char *omni_auth_email_problem(const char *e)
{
    const char *at = strchr(e, '@'), *p;
    size_t n = strlen(e);

    if (n > 254) {
        return "longer than 254 characters";
    }
    if (at == NULL || at == e || strchr(at + 1, '@') != NULL) {
        return "expected one @ between a local part and a domain";
    }
    for (p = e; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            return "must not contain spaces or control characters";
        }
    }
    if (at - e > 64) {
        return "local part longer than 64 characters";
    }
    p = strchr(at + 1, '.');
    if (p == NULL || p == at + 1 || e[n - 1] == '.' || strstr(at, "..")) {
        return "expected a domain such as example.com after the @";
    }
    return NULL;
}


const char *omni_auth_username_problem(const char *u)
{
    size_t i, n = strlen(u);

    if (n < 3 || n > 64) {
        return "expected 3 to 64 characters";
    }
    for (i = 0; i < n; i++) {
        if (!((u[i] >= 'a' && u[i] <= 'z') || (u[i] >= 'A' && u[i] <= 'Z')
                || (u[i] >= '0' && u[i] <= '9') || u[i] == '_' || u[i] == '.'
                || u[i] == '-')) {
            return "only letters, digits, '_', '.' and '-' are allowed";
        }
    }
    return NULL;
}


int omni_auth_token_format(const char *t, const char *prefix)
{
    size_t i, p = strlen(prefix), n = strlen(t);

    if (n != p + 43 || strncmp(t, prefix, p) != 0) {
        return 0;
    }
    for (i = p; i < n; i++) {
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z')
                || (t[i] >= '0' && t[i] <= '9') || t[i] == '-'
                || t[i] == '_')) {
            return 0;
        }
    }
    return 1;
}


size_t omni_auth_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        n += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return n;
}


/* n digits at s as a number, or -1 when one is not a digit */
static int omni_auth_digits(const char *s, int n)
{
    int i, v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}


int omni_auth_rfc3339(const char *s, int64_t *out)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct tm tm;
    const char *p;
    int y, mo, d, h, mi, sec, leap, oh, om;
    int64_t t;

    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-'
        || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') {
        return -1;
    }
    y = omni_auth_digits(s, 4);
    mo = omni_auth_digits(s + 5, 2);
    d = omni_auth_digits(s + 8, 2);
    h = omni_auth_digits(s + 11, 2);
    mi = omni_auth_digits(s + 14, 2);
    sec = omni_auth_digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0
        || mi > 59 || sec < 0 || sec > 59) {
        return -1;
    }
    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) {
        return -1;
    }

    p = s + 19;
    if (*p == '.') {
        do {
            p++;
        } while (*p >= '0' && *p <= '9');
        if (p == s + 20) {
            return -1;
        }
    }

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = (int64_t)timegm(&tm);

    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        *out = t;
        return 0;
    }
    if ((*p != '+' && *p != '-') || strlen(p) != 6 || p[3] != ':') {
        return -1;
    }
    oh = omni_auth_digits(p + 1, 2);
    om = omni_auth_digits(p + 4, 2);
    if (oh < 0 || oh > 23 || om < 0 || om > 59) {
        return -1;
    }
    /* local time = UTC + offset */
    *out = *p == '+' ? t - (oh * 3600 + om * 60) : t + (oh * 3600 + om * 60);
    return 0;
}


int omni_auth_numeric_date(const char *s, int64_t *out)
{
    int64_t v = 0;
    int n;

    for (n = 0; s[n] >= '0' && s[n] <= '9'; n++) {
        if (n == 18) {
            return -1;
        }
        v = v * 10 + (s[n] - '0');
    }
    if (n == 0 || s[n] != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}


const char *omni_auth_array_next(const char *p, char *out, size_t outlen)
{
    size_t n = 0;

    if (*p == '{' || *p == ',') {
        p++;
    }
    while (*p && *p != ',' && *p != '}') {
        if (n + 1 < outlen) {
            out[n++] = *p;
        }
        p++;
    }
    out[n] = '\0';
    if (n == 0 || strcmp(out, "NULL") == 0) {
        return NULL;
    }
    return p;
}
