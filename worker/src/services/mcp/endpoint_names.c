/* endpoint_names.c: what /mcp shows of a tool (its <server>__<tool> name),
 * the signed cursors of its tools/list pages and the wrapped requestStates
 * of 2026-07-28 upstreams. Pure but for the keys. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/encode.h"
#include "services/mcp/endpoint.h"

static unsigned char omni_ep_cursor_key[32];
static unsigned char omni_ep_state_key[32];
static int omni_ep_cursor_random;


int omni_mcp_cursor_key(const unsigned char *secret, size_t len)
{
    unsigned int n = 0;

    if (secret == NULL) {
        /* in the master, before the fork: every process shares it (not
         * other replicas; a key file makes cursors work across them) */
        if (omni_ep_cursor_random) {
            return 0;
        }
        omni_ep_cursor_random = 1;
        return getrandom(omni_ep_cursor_key, sizeof(omni_ep_cursor_key), 0)
                           == (ssize_t)sizeof(omni_ep_cursor_key)
                       && getrandom(
                              omni_ep_state_key, sizeof(omni_ep_state_key), 0)
                              == (ssize_t)sizeof(omni_ep_state_key)
                   ? 0
                   : -1;
    }
    omni_ep_cursor_random = 0;
    return HMAC(EVP_sha256(), secret, (int)len,
               (const unsigned char *)"omni mcp cursor", 15, omni_ep_cursor_key,
               &n) != NULL
                   && HMAC(EVP_sha256(), secret, (int)len,
                          (const unsigned char *)"omni mcp request state", 22,
                          omni_ep_state_key, &n)
                          != NULL
               ? 0
               : -1;
}


static int omni_ep_valid_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '_' || c == '-';
}


/* a, b, c joined, cut at max characters */
static void omni_ep_join(
    char *out, size_t max, const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    size_t len = 0, k, i;

    for (i = 0; i < 3; i++) {
        k = strlen(parts[i]);
        if (k > max - len) {
            k = max - len;
        }
        memcpy(out + len, parts[i], k);
        len += k;
    }
    out[len] = '\0';
}


void omni_mcp_tool_name(
    const char *server, const char *tool, char out[OMNI_MCP_NAME_MAX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    char hex[9], *p;
    unsigned int mdlen = 0;
    size_t slen = strlen(server), tlen = strlen(tool), n, i;
    int clean = slen + 2 + tlen <= OMNI_MCP_NAME_MAX && tlen > 0;
    EVP_MD_CTX *ctx;

    for (i = 0; clean && i < tlen; i++) {
        clean = omni_ep_valid_char(tool[i]);
    }
    /* too long or not all allowed: the allowed prefix and a hash of the
     * whole, so equal inputs always give the same name */
    n = clean ? OMNI_MCP_NAME_MAX : OMNI_MCP_NAME_MAX - 9;
    omni_ep_join(out, n, server, "__", tool);
    if (clean) {
        return;
    }
    for (p = out; *p; p++) {
        if (!omni_ep_valid_char(*p)) {
            *p = '_';
        }
    }
    memset(md, 0, sizeof(md));
    ctx = EVP_MD_CTX_new();
    if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1
        && EVP_DigestUpdate(ctx, server, slen + 1) == 1
        && EVP_DigestUpdate(ctx, tool, tlen) == 1) {
        EVP_DigestFinal_ex(ctx, md, &mdlen);
    }
    EVP_MD_CTX_free(ctx);
    omni_hex_encode(md, 4, hex);
    n = strlen(out);
    snprintf(out + n, OMNI_MCP_NAME_MAX + 1 - n, "_%s", hex);
}


static void omni_ep_cursor_mac(
    const char *scope, unsigned offset, unsigned char mac[32])
{
    unsigned char msg[256];
    unsigned int n = 0;
    size_t len = strlen(scope);

    if (len > sizeof(msg) - 5) {
        len = sizeof(msg) - 5;
    }
    memcpy(msg, scope, len);
    msg[len] = 0;
    msg[len + 1] = (unsigned char)(offset >> 24);
    msg[len + 2] = (unsigned char)(offset >> 16);
    msg[len + 3] = (unsigned char)(offset >> 8);
    msg[len + 4] = (unsigned char)offset;
    HMAC(EVP_sha256(), omni_ep_cursor_key, sizeof(omni_ep_cursor_key), msg,
        len + 5, mac, &n);
}


void omni_mcp_cursor_make(
    const char *scope, unsigned offset, char out[OMNI_MCP_CURSOR_LEN + 1])
{
    unsigned char mac[32];

    omni_ep_cursor_mac(scope, offset, mac);
    snprintf(out, 10, "%08x", offset);
    omni_hex_encode(mac, 16, out + 8);
}


int omni_mcp_cursor_check(
    const char *scope, const char *cursor, unsigned *offset)
{
    unsigned char mac[32];
    char want[33];
    unsigned v = 0;
    int i;

    if (strlen(cursor) != OMNI_MCP_CURSOR_LEN) {
        return -1;
    }
    for (i = 0; i < 8; i++) {
        char c = cursor[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;

        if (d < 0) {
            return -1;
        }
        v = v << 4 | (unsigned)d;
    }
    omni_ep_cursor_mac(scope, v, mac);
    omni_hex_encode(mac, 16, want);
    if (CRYPTO_memcmp(want, cursor + 8, 32) != 0) {
        return -1;
    }
    *offset = v;
    return 0;
}


/* HMAC-SHA256 over user, server, method and name (each NUL-ended), the
 * expiry (8 bytes, big-endian) and the upstream's state */
static int omni_ep_state_mac(const char *const bound[4], uint64_t expiry,
    const char *state, size_t len, unsigned char mac[32])
{
    size_t n = 8 + len, at = 0, k, i;
    unsigned int maclen = 0;
    unsigned char *msg;
    int rc;

    for (i = 0; i < 4; i++) {
        n += strlen(bound[i]) + 1;
    }
    msg = malloc(n);
    if (msg == NULL) {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        k = strlen(bound[i]) + 1;
        memcpy(msg + at, bound[i], k);
        at += k;
    }
    for (i = 0; i < 8; i++) {
        msg[at++] = (unsigned char)(expiry >> (56 - 8 * i));
    }
    memcpy(msg + at, state, len);
    rc = HMAC(EVP_sha256(), omni_ep_state_key, sizeof(omni_ep_state_key), msg,
             n, mac, &maclen)
                 != NULL
             ? 0
             : -1;
    free(msg);
    return rc;
}


char *omni_mcp_state_wrap(
    omni_arena_t *a, const char *const bound[4], const char *state, time_t now)
{
    size_t len = strlen(state), i;
    uint64_t expiry = (uint64_t)now + OMNI_MCP_STATE_TTL;
    unsigned char *raw;
    char *out;

    raw = omni_arena_alloc(a, 40 + len);
    out = omni_arena_alloc(
        a, sizeof(OMNI_MCP_STATE_PREFIX) - 1 + OMNI_B64URL_LEN(40 + len) + 1);
    if (raw == NULL || out == NULL) {
        return NULL;
    }
    for (i = 0; i < 8; i++) {
        raw[i] = (unsigned char)(expiry >> (56 - 8 * i));
    }
    if (omni_ep_state_mac(bound, expiry, state, len, raw + 8) != 0) {
        return NULL;
    }
    memcpy(raw + 40, state, len);
    memcpy(out, OMNI_MCP_STATE_PREFIX, sizeof(OMNI_MCP_STATE_PREFIX) - 1);
    omni_b64url_encode(raw, 40 + len, out + sizeof(OMNI_MCP_STATE_PREFIX) - 1);
    return out;
}


static int omni_ep_b64url_value(char c)
{
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '-'             ? 62
           : c == '_'             ? 63
                                  : -1;
}


int omni_mcp_state_open(omni_arena_t *a, const char *const bound[4],
    const char *wrapped, time_t now, const char **state)
{
    size_t plen = sizeof(OMNI_MCP_STATE_PREFIX) - 1, len, n = 0, i;
    unsigned char *raw, mac[32];
    uint64_t expiry = 0;
    uint32_t acc = 0;
    char *plain;
    int bits = 0, v;

    len = strlen(wrapped);
    if (len < plen || memcmp(wrapped, OMNI_MCP_STATE_PREFIX, plen) != 0
        || (len - plen) % 4 == 1) {
        return -1;
    }
    raw = omni_arena_alloc(a, (len - plen) * 3 / 4 + 1);
    if (raw == NULL) {
        return -1;
    }
    for (i = plen; i < len; i++) {
        v = omni_ep_b64url_value(wrapped[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[n++] = (unsigned char)(acc >> bits);
        }
    }
    if (n < 40 || (acc & ((1u << bits) - 1)) != 0) {
        return -1;
    }
    for (i = 0; i < 8; i++) {
        expiry = expiry << 8 | raw[i];
    }
    plain = omni_arena_strndup(a, (const char *)raw + 40, n - 40);
    if (plain == NULL || strlen(plain) != n - 40
        || omni_ep_state_mac(bound, expiry, plain, n - 40, mac) != 0
        || CRYPTO_memcmp(mac, raw + 8, 32) != 0) {
        return -1;
    }
    if ((uint64_t)now > expiry) {
        return -2;
    }
    *state = plain;
    return 0;
}
