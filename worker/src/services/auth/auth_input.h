/* auth_input.h: what the auth endpoints accept, as pure functions (no I/O)
 * that unit tests and fuzzers reach directly. */
#ifndef OMNI_AUTH_INPUT_H
#define OMNI_AUTH_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* NULL when email is acceptable for an account, else a static reason for
 * "email: <reason>": at most 254 bytes, exactly one '@', a local part of
 * 1..64 bytes, no byte <= 0x20 or 0x7f, a domain with a dot that is neither
 * its first nor last character and no "..". What mail systems deliver to
 * in practice, not RFC 5321's whole grammar. */
const char *omni_auth_email_problem(const char *email);

/* NULL for 3..64 characters of A-Za-z0-9_.- , else a static reason. */
const char *omni_auth_username_problem(const char *username);

/* 1 when token has the form of our refresh tokens: prefix + 43 base64url
 * characters (32 random bytes). */
int omni_auth_token_format(const char *token, const char *prefix);

/* Characters (code points) of a valid UTF-8 string. */
size_t omni_auth_chars(const char *s);

/* RFC 3339 date-time ("2026-01-02T03:04:05Z"; 't'/'z' allowed, an optional
 * fraction, or an offset "+hh:mm" / "-hh:mm") to unix seconds in *out.
 * Returns 0, or -1 when s is not one: every field must be digits in range,
 * the day must exist in its month (leap years included), the year 0000 to
 * 9999; a leap second (:60) is refused, as most systems do. */
int omni_auth_rfc3339(const char *s, int64_t *out);

/* A JWT NumericDate as the gateway passes it on (the claim as written):
 * only a plain decimal integer of 1 to 18 digits is one here; "1.9e9",
 * "1900000000.5", "-1", "+5", " 5" or "" are not. Returns 0 and sets *out,
 * or -1. */
int omni_auth_numeric_date(const char *s, int64_t *out);

/* Next element of a Postgres array of simple unquoted values ("{a,b,c}"),
 * copied into out (truncated to outlen - 1). p is the array text, then the
 * returned position. Returns NULL at the end of the array, at an empty
 * element, or at NULL (an SQL null). */
const char *omni_auth_array_next(const char *p, char *out, size_t outlen);

#endif
