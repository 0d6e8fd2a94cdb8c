/*
 * omni_b64url.c: strict unpadded base64url (RFC 4648 section 5), the one
 * encoding of every JOSE segment and JWK member.
 */


#include <stddef.h>

#include "omni_jwt.h"

#include "omni_jwt.h"


static int omni_jwt_b64_value(unsigned char c);


int
omni_jwt_base64url_decode(unsigned char *out, size_t *outlen, const char *in,
    size_t len)
{
    size_t          i, n, rem;
    unsigned long   acc;
    int             j, v;
    const unsigned char  *p;

    p = (const unsigned char *) in;
    rem = len % 4;

    if (rem == 1) {
        return -1;
    }

    n = 0;

    for (i = 0; i + 4 <= len; i += 4) {
        acc = 0;

        for (j = 0; j < 4; j++) {
            v = omni_jwt_b64_value(p[i + j]);
            if (v < 0) {
                return -1;
            }
            acc = (acc << 6) | (unsigned long) v;
        }

        out[n++] = (unsigned char) (acc >> 16);
        out[n++] = (unsigned char) (acc >> 8);
        out[n++] = (unsigned char) acc;
    }

    if (rem != 0) {
        acc = 0;

        for (j = 0; j < (int) rem; j++) {
            v = omni_jwt_b64_value(p[i + j]);
            if (v < 0) {
                return -1;
            }
            acc = (acc << 6) | (unsigned long) v;
        }

        /* the unused low bits of the last character must be zero */

        if (rem == 2) {
            if (acc & 0x0f) {
                return -1;
            }
            out[n++] = (unsigned char) (acc >> 4);

        } else {
            if (acc & 0x03) {
                return -1;
            }
            out[n++] = (unsigned char) (acc >> 10);
            out[n++] = (unsigned char) (acc >> 2);
        }
    }

    *outlen = n;

    return 0;
}


static int
omni_jwt_b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '-') {
        return 62;
    }

    if (c == '_') {
        return 63;
    }

    return -1;
}
