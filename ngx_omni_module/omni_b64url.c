/*
 * omni_b64url.c: strict unpadded base64url (RFC 4648 section 5), the one
 * encoding of every JOSE segment and JWK member.
 */


#include <stddef.h>
#include <stdint.h>

#include "omni_jwt.h"


/*
 * A character's 6 bits already in place for each of the four positions of
 * a quantum, so that a quantum is four loads ORed together; a character
 * outside the alphabet is OMNI_B64_BAD (bit 24) in every table, and the
 * check waits for the end (the decode is on every uncached token's path).
 * Built by the preprocessor from the alphabet.
 */
#define OMNI_B64_BAD  0x01000000u
#define OMNI_B64_V(c)                                                        \
    ((c) >= 'A' && (c) <= 'Z' ? (c) - 'A'                                    \
     : (c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26                             \
     : (c) >= '0' && (c) <= '9' ? (c) - '0' + 52                             \
     : (c) == '-' ? 62 : (c) == '_' ? 63 : -1)
#define OMNI_B64_E(c, s)                                                     \
    (OMNI_B64_V(c) < 0 ? OMNI_B64_BAD : (uint32_t) OMNI_B64_V(c) << (s))
#define OMNI_B64_4(c, s)                                                     \
    OMNI_B64_E(c, s), OMNI_B64_E((c) + 1, s), OMNI_B64_E((c) + 2, s),        \
    OMNI_B64_E((c) + 3, s)
#define OMNI_B64_16(c, s)                                                    \
    OMNI_B64_4(c, s), OMNI_B64_4((c) + 4, s), OMNI_B64_4((c) + 8, s),        \
    OMNI_B64_4((c) + 12, s)
#define OMNI_B64_64(c, s)                                                    \
    OMNI_B64_16(c, s), OMNI_B64_16((c) + 16, s), OMNI_B64_16((c) + 32, s),   \
    OMNI_B64_16((c) + 48, s)
#define OMNI_B64_256(s)                                                      \
    { OMNI_B64_64(0, s), OMNI_B64_64(64, s), OMNI_B64_64(128, s),            \
      OMNI_B64_64(192, s) }

static const uint32_t  omni_jwt_b64[4][256] = {
    OMNI_B64_256(18), OMNI_B64_256(12), OMNI_B64_256(6), OMNI_B64_256(0)
};


int
omni_jwt_base64url_decode(unsigned char *out, size_t *outlen, const char *in,
    size_t len)
{
    size_t                i, n, rem;
    uint32_t              q, bad;
    const unsigned char  *p;

    p = (const unsigned char *) in;
    rem = len % 4;

    if (rem == 1) {
        return -1;
    }

    n = 0;
    bad = 0;

    for (i = 0; i + 4 <= len; i += 4) {
        q = omni_jwt_b64[0][p[i]] | omni_jwt_b64[1][p[i + 1]]
            | omni_jwt_b64[2][p[i + 2]] | omni_jwt_b64[3][p[i + 3]];
        bad |= q;

        out[n] = (unsigned char) (q >> 16);
        out[n + 1] = (unsigned char) (q >> 8);
        out[n + 2] = (unsigned char) q;
        n += 3;
    }

    /* the unused low bits of the last character must be zero */

    if (rem == 2) {
        q = omni_jwt_b64[0][p[i]] | omni_jwt_b64[1][p[i + 1]];
        bad |= q | ((q & 0xf000) ? OMNI_B64_BAD : 0);
        out[n++] = (unsigned char) (q >> 16);

    } else if (rem == 3) {
        q = omni_jwt_b64[0][p[i]] | omni_jwt_b64[1][p[i + 1]]
            | omni_jwt_b64[2][p[i + 2]];
        bad |= q | ((q & 0xc0) ? OMNI_B64_BAD : 0);
        out[n++] = (unsigned char) (q >> 16);
        out[n++] = (unsigned char) (q >> 8);
    }

    if (bad & OMNI_B64_BAD) {
        return -1;
    }

    *outlen = n;

    return 0;
}
