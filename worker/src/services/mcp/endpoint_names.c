/* endpoint_names.c: what /mcp shows of a tool (its <server>__<tool> name)
 * and the signed cursors of its tools/list pages. Pure but for the key. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "lib/encode.h"
#include "services/mcp/endpoint.h"

static unsigned char omni_ep_cursor_key[32];
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
                   ? 0
                   : -1;
    }
    omni_ep_cursor_random = 0;
    return HMAC(EVP_sha256(), secret, (int)len,
               (const unsigned char *)"omni mcp cursor", 15, omni_ep_cursor_key,
               &n) != NULL
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
