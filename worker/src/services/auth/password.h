/* password.h: PBKDF2-SHA256 password hashes in passlib's format (SPEC 6). */
#ifndef OMNI_PASSWORD_H
#define OMNI_PASSWORD_H

#include <stddef.h>

#define OMNI_PASSWORD_MIN_ITERATIONS 29000u
#define OMNI_PASSWORD_MAX_ITERATIONS 100000000u
#define OMNI_PASSWORD_MAX_BYTES 1024 /* longest password strength accepts */
#define OMNI_PASSWORD_HASH_MAX 128   /* out buffer always big enough */

/* Pure CPU work (a hash or verification at 29000 rounds takes tens of
 * milliseconds): never call these on the event loop. Everything here is
 * thread-safe once omni_password_set_iterations() has been called, which
 * must happen at start-up before any other thread uses this module.
 *
 * Passwords are byte strings of len bytes (NUL allowed, not required to be
 * NUL-terminated); passlib hashes the UTF-8 encoding, so the same text
 * gives the same hash on both sides. Hashes are NUL-terminated strings
 * "$pbkdf2-sha256$<rounds>$<salt>$<checksum>", salt and checksum in
 * passlib's ab64 (base64 with '.' for '+', no padding). */

/* Sets the iteration count omni_password_dummy_verify() works at: the one
 * the caller hashes new passwords with. Default OMNI_PASSWORD_MIN_ITERATIONS.
 * Returns -1 (and changes nothing) outside MIN..MAX_ITERATIONS, else 0. */
int omni_password_set_iterations(unsigned iterations);

/* Hashes password with a fresh 16-byte salt from RAND_bytes into out as a
 * NUL-terminated string. Returns 0, or -1 with out untouched when
 * iterations is outside MIN..MAX_ITERATIONS, outlen is too small (use
 * OMNI_PASSWORD_HASH_MAX), len exceeds INT_MAX, or OpenSSL fails (no
 * entropy, out of memory). */
int omni_password_hash(const char *password, size_t len, unsigned iterations,
    char *out, size_t outlen);

/* Checks password against stored in constant time. Returns 1 on a match,
 * 0 on a mismatch (also for len over INT_MAX: nothing that long was ever
 * hashed), -1 when stored is not a well-formed hash (strict: rounds
 * 1..MAX_ITERATIONS in decimal without leading zeros, salt 0..1024 bytes,
 * checksum exactly 32 bytes, canonical ab64, nothing after it) or OpenSSL
 * fails. Callers treat anything but 1 as "not authenticated". */
int omni_password_verify(const char *password, size_t len, const char *stored);

/* Does the work of one verification at the configured iteration count
 * against a fixed hash and throws the result away, so a login for an
 * unknown account takes as long as a wrong password. Always returns 0. */
int omni_password_dummy_verify(const char *password, size_t len);

/* The stored hash omni_password_dummy_verify() checks against with
 * omni_password_verify(): the configured rounds and a salt as long as the
 * ones omni_password_hash() writes. Static; changes with
 * omni_password_set_iterations(). */
const char *omni_password_dummy_hash(void);

/* Returns 0 when password is acceptable for a new account, else -1 and
 * sets *why (when why is not NULL) to a static English sentence: more than
 * OMNI_PASSWORD_MAX_BYTES bytes, contains NUL, is not valid UTF-8, or has
 * fewer than 8 characters (Unicode code points). */
int omni_password_strength(const char *password, size_t len, const char **why);

#endif
