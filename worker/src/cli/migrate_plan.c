/* migrate_plan.c: the pure half of migrate: which files make which
 * migrations, in what order, with what checksum. No database. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "cli/migrate_plan.h"


static int migrate_is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}


int omni_migrate_parse_filename(
    const char *file, int *version, char *name, size_t namelen, int *is_down)
{
    size_t len, stem, digits, nlen, i;
    long v;

    len = strlen(file);
    if (file[0] == '.' || len < 4 || strcmp(file + len - 4, ".sql") != 0) {
        return 0;
    }
    stem = len - 4;

    *is_down = 0;
    if (stem >= 5 && memcmp(file + stem - 5, ".down", 5) == 0) {
        *is_down = 1;
        stem -= 5;
    }

    v = 0;
    for (digits = 0;
         digits < stem && file[digits] >= '0' && file[digits] <= '9';
         digits++) {
        if (digits == 9) {
            return -1;
        }
        v = v * 10 + (file[digits] - '0');
    }
    if (digits == 0 || v < 1 || digits + 1 >= stem || file[digits] != '_') {
        return -1;
    }

    nlen = stem - digits - 1;
    if (nlen >= namelen) {
        return -1;
    }
    for (i = 0; i < nlen; i++) {
        if (!migrate_is_name_char(file[digits + 1 + i])) {
            return -1;
        }
    }

    memcpy(name, file + digits + 1, nlen);
    name[nlen] = '\0';
    *version = (int)v;
    return 1;
}


/* Length of a migration file name without ".sql" / ".down.sql", so an up
 * file pairs only with the down file spelled the same ("1_a" != "001_a"). */
static size_t migrate_stem_len(const char *file)
{
    size_t len = strlen(file) - 4;

    if (len >= 5 && memcmp(file + len - 5, ".down", 5) == 0) {
        len -= 5;
    }
    return len;
}


int omni_migrate_list_add(
    omni_migration_list_t *l, const char *file, char *err, size_t errlen)
{
    char name[OMNI_MIGRATE_FILE_MAX];
    const char *other;
    char *slot;
    size_t i, cap;
    omni_migration_t *m, *items;
    int version, is_down, rc;

    if (strlen(file) >= OMNI_MIGRATE_FILE_MAX) {
        snprintf(err, errlen, "%.64s...: file name longer than %d bytes", file,
            OMNI_MIGRATE_FILE_MAX - 1);
        return -1;
    }

    rc = omni_migrate_parse_filename(
        file, &version, name, sizeof(name), &is_down);
    if (rc == 0) {
        return 0;
    }
    if (rc < 0) {
        snprintf(err, errlen,
            "%s: not a migration file name (want "
            "NNN_name.sql and NNN_name.down.sql, name of [A-Za-z0-9_-])",
            file);
        return -1;
    }

    for (i = 0; i < l->n; i++) {
        m = &l->items[i];
        if (m->version != version) {
            continue;
        }
        other = m->up[0] ? m->up : m->down;
        slot = is_down ? m->down : m->up;
        if (slot[0] || migrate_stem_len(file) != migrate_stem_len(other)
            || strncmp(file, other, migrate_stem_len(file)) != 0) {
            snprintf(err, errlen, "duplicate migration number %03d: %s and %s",
                version, other, file);
            return -1;
        }
        strcpy(slot, file);
        return 0;
    }

    if (l->n == l->cap) {
        cap = l->cap ? 2 * l->cap : 16;
        items = realloc(l->items, cap * sizeof(omni_migration_t));
        if (items == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        l->items = items;
        l->cap = cap;
    }

    m = &l->items[l->n++];
    memset(m, 0, sizeof(*m));
    m->version = version;
    strcpy(m->name, name);
    strcpy(is_down ? m->down : m->up, file);
    return 0;
}


static int migrate_cmp_version(const void *a, const void *b)
{
    const omni_migration_t *x = a, *y = b;

    return (x->version > y->version) - (x->version < y->version);
}


int omni_migrate_list_check(
    omni_migration_list_t *l, int need_down, char *err, size_t errlen)
{
    size_t i;
    omni_migration_t *m;

    if (l->n > 1) {
        qsort(l->items, l->n, sizeof(omni_migration_t), migrate_cmp_version);
    }

    for (i = 0; i < l->n; i++) {
        m = &l->items[i];

        if (i > 0 && m->version == l->items[i - 1].version) {
            snprintf(err, errlen, "duplicate migration number %03d: %s and %s",
                m->version,
                l->items[i - 1].up[0] ? l->items[i - 1].up
                                      : l->items[i - 1].down,
                m->up[0] ? m->up : m->down);
            return -1;
        }

        if ((size_t)m->version != i + 1) {
            if (i == 0) {
                snprintf(err, errlen, "no migration 001: the first is %s",
                    m->up[0] ? m->up : m->down);
            } else {
                snprintf(err, errlen,
                    "gap in migration numbers: no %03d "
                    "between %s and %s",
                    (int)i + 1,
                    l->items[i - 1].up[0] ? l->items[i - 1].up
                                          : l->items[i - 1].down,
                    m->up[0] ? m->up : m->down);
            }
            return -1;
        }

        if (m->up[0] == '\0') {
            snprintf(err, errlen, "%s: no up file %.*s.sql next to it", m->down,
                (int)migrate_stem_len(m->down), m->down);
            return -1;
        }

        if (need_down && m->down[0] == '\0') {
            snprintf(err, errlen, "%s: missing its down file %.*s.down.sql",
                m->up, (int)migrate_stem_len(m->up), m->up);
            return -1;
        }
    }

    return 0;
}


const omni_migration_t *omni_migrate_list_find(
    const omni_migration_list_t *l, int version)
{
    omni_migration_t key;

    if (l->n == 0) {
        return NULL;
    }
    key.version = version;
    return bsearch(
        &key, l->items, l->n, sizeof(omni_migration_t), migrate_cmp_version);
}


void omni_migrate_list_free(omni_migration_list_t *l)
{
    free(l->items);
    l->items = NULL;
    l->n = 0;
    l->cap = 0;
}


int omni_migrate_sha256_hex(const void *buf, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen, i;

    out[0] = '\0';
    if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1
        || mdlen != 32) {
        return -1;
    }
    for (i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    out[64] = '\0';
    return 0;
}


int omni_migrate_parse_count(const char *s, int *n)
{
    long v = 0;

    if (*s == '\0') {
        return -1;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        v = v * 10 + (*s - '0');
        if (v > INT_MAX) {
            return -1;
        }
    }
    if (v < 1) {
        return -1;
    }
    *n = (int)v;
    return 0;
}


void omni_migrate_redact(
    char *out, size_t outlen, const char *msg, const char *secret)
{
    size_t o = 0, slen;
    size_t k;

    if (outlen == 0) {
        return;
    }
    slen = secret ? strlen(secret) : 0;

    while (*msg && o + 1 < outlen) {
        if (slen && strncmp(msg, secret, slen) == 0) {
            for (k = 0; k < 3 && o + 1 < outlen; k++) {
                out[o++] = '*';
            }
            msg += slen;
            continue;
        }
        out[o++] = *msg++;
    }
    out[o] = '\0';
}
