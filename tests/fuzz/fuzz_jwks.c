/* fuzz_jwks.c: libFuzzer target for omni_jwt_jwks_parse(), the parser a
 * JWKS fetched from a URL goes through (a body from the network).
 *
 * Properties checked on every input:
 * - parsing never crashes and leaks nothing (ASan's leak check);
 * - a refusal leaves nothing to free and a one-line reason naming the
 *   source; a success gives at least one key, each bound to an algorithm,
 *   and no two keys with the same non-empty kid. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "omni_jwt.h"

#define NAME "https://idp.fuzz/jwks.json"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    omni_jwt_key_t *keys = (omni_jwt_key_t *)1;
    char err[512], *text;
    size_t n = 99, i, j;

    /* the fetcher refuses more than 64 KiB before parsing */
    if (size > 65536)
        return 0;
    text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    if (omni_jwt_jwks_parse(&keys, &n, text, size, NAME, err, sizeof(err))
        != 0) {
        if (keys != NULL || n != 0 || strstr(err, NAME) == NULL
            || strchr(err, '\n') != NULL)
            abort();
        free(text);
        return 0;
    }

    if (keys == NULL || n == 0)
        abort();
    for (i = 0; i < n; i++) {
        if (keys[i].algs == 0)
            abort();
        for (j = 0; j < i; j++)
            if (keys[i].kid[0] != '\0' && strcmp(keys[i].kid, keys[j].kid) == 0)
                abort();
    }
    for (i = 0; i < n; i++)
        omni_jwt_key_free(&keys[i]);
    free(keys);
    free(text);
    return 0;
}
