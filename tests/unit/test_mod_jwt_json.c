/* test_mod_jwt_json.c: a token's JSON parsed into flat nodes without
 * allocation (omni_jwt_json_parse() in ngx_omni_module/omni_jwt_nodes.c):
 * the values and lookups, the limits (a token's worth of values, large
 * objects checked for duplicate names, nesting), malformed input refused
 * with the same reasons as before, strings decoded as yajl decodes them,
 * NumericDates read exactly, base64url's strict alphabet and trailing
 * bits, and ECDSA signatures turned into DER by hand. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <unistd.h>

#include "omni_jwt.h"
#include "omni_jwt_int.h"
#include "unit.h"

static omni_jwt_t jwt;

static void b64url(char *out, const void *data, size_t len)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    size_t i;
    unsigned v;

    for (i = 0; i + 3 <= len; i += 3) {
        v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *out++ = abc[v >> 18];
        *out++ = abc[(v >> 12) & 63];
        *out++ = abc[(v >> 6) & 63];
        *out++ = abc[v & 63];
    }
    if (len - i == 1) {
        v = (unsigned)p[i] << 16;
        *out++ = abc[v >> 18];
        *out++ = abc[(v >> 12) & 63];
    } else if (len - i == 2) {
        v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        *out++ = abc[v >> 18];
        *out++ = abc[(v >> 12) & 63];
        *out++ = abc[(v >> 6) & 63];
    }
    *out = '\0';
}

/* "b64(header).b64(payload).c2ln" */
static const char *token(const char *header, const char *payload)
{
    static char tok[20000];
    size_t n;

    b64url(tok, header, strlen(header));
    n = strlen(tok);
    tok[n++] = '.';
    b64url(tok + n, payload, strlen(payload));
    strcat(tok, ".c2ln");
    return tok;
}

static omni_jwt_status_t parse_payload(const char *payload, const char **why)
{
    const char *t = token("{\"alg\":\"HS256\"}", payload);

    return omni_jwt_parse(&jwt, t, strlen(t), why);
}

static const char *claim(const char *path)
{
    static char buf[256];

    if (omni_jwt_claim(&jwt, path, buf, sizeof(buf)) < 0)
        return "(absent)";
    return buf;
}

static void test_values_and_lookups_come_from_the_nodes(void)
{
    const char *why = NULL;
    const char *parts[] = {"realm_access", "roles", NULL};
    const char *none[] = {"realm_access", "nope", NULL};
    const omni_json_node_t *v, *e;

    CHECK_EQ_INT(parse_payload("{\"sub\":\"al\\u00e9\\n\",\"n\":-1.5e2,"
                               "\"t\":true,\"f\":false,\"z\":null,"
                               "\"realm_access\":{\"roles\":[\"a\",\"b\"],"
                               "\"x\":{}},\"e\":[],\"k\":\"\\\"q\\\"\"}",
                     &why),
        OMNI_JWT_OK);
    CHECK(jwt.header != NULL && jwt.header->type == OMNI_JSON_OBJECT);
    CHECK(jwt.payload != NULL && jwt.payload->type == OMNI_JSON_OBJECT);
    CHECK_EQ_INT(jwt.payload->count, 8);

    /* a control character keeps a claim out of headers, as before */
    CHECK_STR_EQ(claim("sub"), "(absent)");
    CHECK_STR_EQ(claim("n"), "-1.5e2");
    CHECK_STR_EQ(claim("t"), "true");
    CHECK_STR_EQ(claim("f"), "false");
    CHECK_STR_EQ(claim("z"), "(absent)");
    CHECK_STR_EQ(claim("realm_access.roles"), "a,b");
    CHECK_STR_EQ(claim("realm_access.x"), "(absent)");
    CHECK_STR_EQ(claim("e"), "");
    CHECK_STR_EQ(claim("k"), "\"q\"");

    v = omni_jwt_get(&jwt, parts);
    CHECK(v != NULL && v->type == OMNI_JSON_ARRAY && v->count == 2);
    e = v + 1;
    CHECK(e->type == OMNI_JSON_STRING && e->len == 1);
    CHECK_STR_EQ(jwt.text + e->str, "a");
    e = &jwt.nodes[e->end];
    CHECK_STR_EQ(jwt.text + e->str, "b");
    CHECK(&jwt.nodes[e->end] == &jwt.nodes[v->end]);
    CHECK(omni_jwt_get(&jwt, none) == NULL);

    v = omni_jwt_node_member(&jwt, jwt.payload, "sub", 3);
    CHECK(v != NULL && v->len == 5);
    CHECK(memcmp(jwt.text + v->str, "al\xc3\xa9\n", 6) == 0);
    omni_jwt_free(&jwt);
}

static void test_a_second_token_leaves_nothing_of_the_first(void)
{
    const char *why = NULL;

    CHECK_EQ_INT(parse_payload("{\"sub\":\"a\",\"only\":\"first\","
                               "\"exp\":4102444800}",
                     &why),
        OMNI_JWT_OK);
    CHECK_STR_EQ(claim("only"), "first");
    CHECK(jwt.has_exp);
    omni_jwt_free(&jwt);

    CHECK_EQ_INT(parse_payload("{\"sub\":\"b\"}", &why), OMNI_JWT_OK);
    CHECK_STR_EQ(claim("only"), "(absent)");
    CHECK_STR_EQ(claim("sub"), "b");
    CHECK(!jwt.has_exp);
    omni_jwt_free(&jwt);

    /* a failed parse after a good one leaves no payload to read */
    CHECK_EQ_INT(parse_payload("{\"sub\":", &why), OMNI_JWT_MALFORMED);
    CHECK_STR_EQ(claim("sub"), "(absent)");
    CHECK(jwt.payload == NULL);
    omni_jwt_free(&jwt);
}

static void test_malformed_json_is_refused_with_its_reason(void)
{
    static const struct {
        const char *payload, *why;
    } cases[] = {
        {"{\"sub\":\"a\"", "payload is not JSON"},
        {"{\"sub\":\"a\"} x", "payload is not JSON"},
        {"{\"sub\":\"a\",}", "payload is not JSON"},
        {"{\"sub\":'a'}", "payload is not JSON"},
        {"{\"n\":01}", "payload is not JSON"},
        {"{\"n\":+1}", "payload is not JSON"},
        {"{\"n\":1.}", "payload is not JSON"},
        {"{\"n\":NaN}", "payload is not JSON"},
        {"{\"s\":\"a\x01\"}", "payload is not JSON"},
        {"{\"s\":\"\\x\"}", "payload is not JSON"},
        {"{\"s\":\"\\u12\"}", "payload is not JSON"},
        {"{\"s\":\"\xc3\"}", "payload is not JSON"},
        {"{\"sub\":\"a\"}{}", "payload is not JSON"},
        {" ", "payload is not JSON"},
        {"{\"sub\":\"a\"/**/}", "comment in JSON"},
        {"{\"s\":\"\\u0000\"}", "\\u0000 in a JSON string"},
        {"[{\"a\":1,\"a\":2}]", "payload is not a JSON object"},
        {"{\"\":1,\"\":2}", "duplicate member in payload"},
        {"{\"a\":[{\"b\":1,\"c\":{\"d\":1,\"d\":1}}]}",
            "duplicate member in payload"},
        {"{\"exp\":1e999}", "exp is not a number"},
        {"{\"nbf\":-1e999}", "nbf is not a number"},
        {"{\"iat\":1e-999}", "iat is not a number"},
        {"{\"exp\":\"1\"}", "exp is not a number"},
    };
    const char *why;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why = NULL;
        if (parse_payload(cases[i].payload, &why) != OMNI_JWT_MALFORMED
            || why == NULL || strcmp(why, cases[i].why) != 0) {
            fprintf(stderr, "    payload %s: %s\n", cases[i].payload,
                why ? why : "(accepted)");
            CHECK(0);
        }
        omni_jwt_free(&jwt);
    }

    /* what yajl_tree took, still taken: whitespace, -0, exponents, a
     * lone surrogate escape (yajl makes it "?"), escaped slash */
    CHECK_EQ_INT(parse_payload(" {\"sub\":\"a\\ud800\\/\",\"exp\":-0,"
                               "\"nbf\":1E+2,\"x\":[1e-2]}\n",
                     &why),
        OMNI_JWT_OK);
    CHECK_STR_EQ(claim("sub"), "a?/");
    CHECK(jwt.has_exp && jwt.exp == 0 && jwt.nbf == 100);
    omni_jwt_free(&jwt);
}

/* Strings read as Debian's yajl reads them (what claims always held):
 * escapes, pairs, a high surrogate joined with whatever \u follows it, a
 * lone one "?", and UTF-8 checked for its shape only. */
static void test_strings_decode_as_yajl_decodes_them(void)
{
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t"},
        {"\"\\u00e9\\u20AC\\ud83d\\ude00\"",
            "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
        {"\"a\\ud800 b\"", "a? b"},
        {"\"a\\ud800\\n\"", "a?\n"},
        {"\"a\\ud800\\\\ub\"", "a?\\ub"},
        {"\"\\ud800\\u0041\"", "\xf0\x90\x81\x81"},
        {"\"\\udc00\"", "\xed\xb0\x80"},
        {"\"x\\ud800\"", "x?"},
        {"\"\xc0\x80\x7f\"", "\xc0\x80\x7f"},
    };
    const omni_json_node_t *root;
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        omni_jwt_free(&jwt);
        CHECK_EQ_INT(
            omni_jwt_json_parse(&jwt, (const unsigned char *)cases[i].json,
                strlen(cases[i].json), &root),
            OMNI_JWT_JSON_OK);
        CHECK_EQ_INT(root->type, OMNI_JSON_STRING);
        CHECK_EQ_INT(root->len, strlen(cases[i].want));
        CHECK(memcmp(jwt.text + root->str, cases[i].want, root->len) == 0);
    }
    omni_jwt_free(&jwt);
}

/* What no JSON text may hold is refused, each where yajl refuses it; and
 * what yajl let through after a complete value (an unterminated string)
 * is refused too. */
static void test_text_after_the_value_and_broken_strings_are_refused(void)
{
    static const char *bad[] = {
        "{\"sub\":\"a\"} \"junk",
        "{\"sub\":\"a\"} \"",
        "1 \"",
        "\"\xc3\"",
        "\"\xe2\x82\"",
        "\"\xf8\x80\x80\x80\x80\"",
        "\"\x80\"",
        "\"a\tb\"",
        "\"\\u12g4\"",
        "\"\\a\"",
        "\"abc",
        "\"abc\\",
        "[1,]",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{1:1}",
        "[tru]",
        "[nul]",
        "-",
        "-a",
        "1e",
        "1e+",
        "1.e1",
        "[01]",
        "",
        " \v\f ",
    };
    static const char spaced[] =
        "\v{\f\"a\"\t:\r[ true ,false,null,-0.5e-3 ]\n}\v";
    const omni_json_node_t *root;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        omni_jwt_free(&jwt);
        if (omni_jwt_json_parse(
                &jwt, (const unsigned char *)bad[i], strlen(bad[i]), &root)
            != OMNI_JWT_JSON_BAD) {
            fprintf(stderr, "    accepted: %s\n", bad[i]);
            CHECK(0);
        }
    }

    /* yajl's whitespace (\v and \f among it) around and between values */
    omni_jwt_free(&jwt);
    CHECK_EQ_INT(omni_jwt_json_parse(&jwt, (const unsigned char *)spaced,
                     strlen(spaced), &root),
        OMNI_JWT_JSON_OK);
    CHECK_EQ_INT(root->count, 1);
    CHECK_EQ_INT(root[1].count, 4);
    CHECK_EQ_INT(root[5].type, OMNI_JSON_NUMBER);
    CHECK_STR_EQ(jwt.text + root[5].str, "-0.5e-3");
    omni_jwt_free(&jwt);
}

/* Nesting as deep as the scan allows parses; one level more is refused
 * with the scan's reason, and an empty object or array closes at once. */
static void test_nesting_to_the_limit_and_beyond(void)
{
    char payload[200];
    const char *why = NULL;
    size_t n, i;

    for (n = 0; n < 2; n++) {
        strcpy(payload, "{\"sub\":\"a\",\"x\":");
        for (i = 0; i < 30 + n; i++)
            strcat(payload, "[");
        strcat(payload, "{}");
        for (i = 0; i < 30 + n; i++)
            strcat(payload, "]");
        strcat(payload, "}");
        why = NULL;
        if (n == 0) {
            CHECK_EQ_INT(parse_payload(payload, &why), OMNI_JWT_OK);
            /* the header's 2, the payload's object, "sub", 30 arrays
             * and the innermost object: 32 levels */
            CHECK_EQ_INT(jwt.nnodes, 2 + 1 + 1 + 30 + 1);
        } else {
            CHECK_EQ_INT(parse_payload(payload, &why), OMNI_JWT_MALFORMED);
            CHECK_STR_EQ(why, "JSON nested too deeply");
        }
        omni_jwt_free(&jwt);
    }
}

/* NumericDates: integers exactly (up to 15 digits without strtod, more
 * through it), fractions and exponents as strtod reads them. */
static void test_numeric_dates_are_read_exactly(void)
{
    const char *why = NULL;

    CHECK_EQ_INT(parse_payload("{\"exp\":999999999999999,\"nbf\":-0,"
                               "\"iat\":12345678901234567}",
                     &why),
        OMNI_JWT_OK);
    CHECK(jwt.exp == 999999999999999.0);
    CHECK(jwt.nbf == 0 && jwt.has_nbf);
    CHECK(jwt.iat == 12345678901234567.0);
    omni_jwt_free(&jwt);

    CHECK_EQ_INT(parse_payload("{\"exp\":1.5e9,\"iat\":1700000000.25}", &why),
        OMNI_JWT_OK);
    CHECK(jwt.exp == 1.5e9);
    CHECK(jwt.iat == 1700000000.25);
    omni_jwt_free(&jwt);
}

/* base64url: the alphabet alone, no padding, zero unused bits, and every
 * length's tail decoded. */
static void test_base64url_is_strict_and_exact(void)
{
    static const char *bad[] = {"QQ=", "QQ==", "Q", "QUJD+", "QUJ/", "QR",
        "QUJDR", "QUJDRF", "QUJ\x80", "QU\0J"};
    unsigned char out[64], data[48];
    char enc[80];
    size_t n, i, len;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        len = (i == sizeof(bad) / sizeof(bad[0]) - 1) ? 4 : strlen(bad[i]);
        if (omni_jwt_base64url_decode(out, &n, bad[i], len) == 0) {
            fprintf(stderr, "    accepted: %s\n", bad[i]);
            CHECK(0);
        }
    }

    for (i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 97 + 251);
    for (len = 0; len <= sizeof(data); len++) {
        b64url(enc, data, len);
        CHECK_EQ_INT(omni_jwt_base64url_decode(out, &n, enc, strlen(enc)), 0);
        CHECK_EQ_INT(n, len);
        CHECK(memcmp(out, data, len) == 0);
    }
}

/* An object of n members "k0".."k<n-1>", the last named dup when dup. */
static const char *members(char *out, int n, const char *dup)
{
    int i, len = 0;

    out[len++] = '{';
    for (i = 0; i < n; i++) {
        if (i == n - 1 && dup)
            len += sprintf(out + len, ",\"%s\":%d", dup, i);
        else
            len += sprintf(out + len, "%s\"k%d\":%d", i ? "," : "", i, i);
    }
    strcpy(out + len, "}");
    return out;
}

static void test_duplicates_in_large_objects_are_found(void)
{
    static char buf[8000];
    const char *why = NULL;
    int n;

    /* around the switch from pairwise to the hash table (8 members) */
    for (n = 2; n <= 40; n++) {
        CHECK_EQ_INT(parse_payload(members(buf, n, NULL), &why), OMNI_JWT_OK);
        omni_jwt_free(&jwt);
        CHECK_EQ_INT(
            parse_payload(members(buf, n, "k0"), &why), OMNI_JWT_MALFORMED);
        CHECK_STR_EQ(why, "duplicate member in payload");
        omni_jwt_free(&jwt);
    }

    /* as many members as a token holds */
    CHECK_EQ_INT(parse_payload(members(buf, 500, NULL), &why), OMNI_JWT_OK);
    CHECK_EQ_INT(jwt.payload->count, 500);
    CHECK_STR_EQ(claim("k499"), "499");
    omni_jwt_free(&jwt);
    CHECK_EQ_INT(
        parse_payload(members(buf, 500, "k300"), &why), OMNI_JWT_MALFORMED);
    CHECK_STR_EQ(why, "duplicate member in payload");
    omni_jwt_free(&jwt);
}

/* The most values a token can carry: "[0,0,...]" filling 8192 bytes. */
static void test_a_token_full_of_values_fits(void)
{
    static char payload[7000], tok[9000];
    const char *why = NULL, *t;
    size_t n, i;

    strcpy(payload, "{\"sub\":\"a\",\"v\":[0");
    n = strlen(payload);
    for (i = 0; n < 6100; i++) {
        memcpy(payload + n, ",0", 2);
        n += 2;
    }
    strcpy(payload + n, "]}");
    t = token("{\"alg\":\"HS256\"}", payload);
    snprintf(tok, sizeof(tok), "%s", t);
    CHECK(strlen(tok) <= OMNI_JWT_MAX_TOKEN);
    CHECK(strlen(tok) > OMNI_JWT_MAX_TOKEN - 64);
    CHECK_EQ_INT(omni_jwt_parse(&jwt, tok, strlen(tok), &why), OMNI_JWT_OK);
    CHECK(jwt.nnodes > 3000 && jwt.nnodes <= OMNI_JWT_MAX_NODES);
    CHECK_EQ_INT(omni_jwt_node_member(&jwt, jwt.payload, "v", 1)->count, i + 1);
    omni_jwt_free(&jwt);
}

/* The raw parse reports a lack of room rather than overrunning. */
static void test_nodes_beyond_the_limit_are_refused(void)
{
    static unsigned char json[2 * OMNI_JWT_MAX_NODES + 8];
    const omni_json_node_t *root;
    size_t n = 0, i;

    json[n++] = '[';
    for (i = 0; i < OMNI_JWT_MAX_NODES; i++) {
        json[n++] = i ? ',' : '0';
        if (i)
            json[n++] = '0';
    }
    json[n++] = ']';
    omni_jwt_free(&jwt);
    CHECK_EQ_INT(omni_jwt_json_parse(&jwt, json, n, &root), OMNI_JWT_JSON_FULL);
    omni_jwt_free(&jwt);
    /* one fewer element fits exactly */
    n -= 3;
    json[n++] = ']';
    CHECK_EQ_INT(omni_jwt_json_parse(&jwt, json, n, &root), OMNI_JWT_JSON_OK);
    CHECK_EQ_INT(jwt.nnodes, OMNI_JWT_MAX_NODES);
    CHECK_EQ_INT(root->count, OMNI_JWT_MAX_NODES - 1);
    omni_jwt_free(&jwt);
}

/* r || s of a DER ECDSA signature, each coord bytes. */
static int jose_sig(
    const unsigned char *der, size_t len, size_t coord, unsigned char *out)
{
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r, *ss;

    if (s == NULL)
        return -1;
    ECDSA_SIG_get0(s, &r, &ss);
    BN_bn2binpad(r, out, (int)coord);
    BN_bn2binpad(ss, out + coord, (int)coord);
    ECDSA_SIG_free(s);
    return 0;
}

/* Signatures of every shape (r or s with the high bit set, with leading
 * zero bytes, P-521's long DER length) verify; one bit off does not. */
static void test_ecdsa_signatures_of_every_shape_verify(void)
{
    static const struct {
        const char *curve, *alg;
        size_t coord;
        const EVP_MD *(*md)(void);
    } curves[] = {
        {"P-256", "ES256", 32, EVP_sha256},
        {"P-521", "ES512", 66, EVP_sha512},
    };
    static char tok[2000], pem[8192];
    unsigned char der[256], raw[132];
    size_t c, n, dlen, i;
    int high = 0, lead = 0;
    EVP_PKEY *pkey;
    EVP_MD_CTX *md;
    omni_jwt_key_t key;
    const char *why = NULL;
    char path[] = "/tmp/omni_jwt_json_XXXXXX", hdr[64];
    FILE *f;
    int fd;

    for (c = 0; c < 2; c++) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curves[c].curve);
        CHECK(pkey != NULL);
        strcpy(path, "/tmp/omni_jwt_json_XXXXXX");
        fd = mkstemp(path);
        CHECK(fd >= 0);
        f = fdopen(fd, "w");
        CHECK(f != NULL && PEM_write_PUBKEY(f, pkey) == 1);
        fclose(f);
        CHECK_EQ_INT(
            omni_jwt_key_load(&key, path, curves[c].alg, NULL, pem, 256), 0);
        unlink(path);

        for (i = 0; i < 48; i++) {
            snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"}", curves[c].alg);
            snprintf(pem, sizeof(pem), "{\"sub\":\"u%zu\"}", i);
            snprintf(tok, sizeof(tok), "%s", token(hdr, pem));
            n = strlen(tok) - 5; /* the signing input */
            md = EVP_MD_CTX_new();
            dlen = sizeof(der);
            CHECK(EVP_DigestSignInit(md, NULL, curves[c].md(), NULL, pkey) == 1
                  && EVP_DigestSign(md, der, &dlen, (unsigned char *)tok, n)
                         == 1);
            EVP_MD_CTX_free(md);
            CHECK_EQ_INT(jose_sig(der, dlen, curves[c].coord, raw), 0);
            high += (raw[0] & 0x80) || (raw[curves[c].coord] & 0x80);
            lead += raw[0] == 0 || raw[curves[c].coord] == 0;
            tok[n] = '.';
            b64url(tok + n + 1, raw, 2 * curves[c].coord);
            CHECK_EQ_INT(
                omni_jwt_parse(&jwt, tok, strlen(tok), &why), OMNI_JWT_OK);
            CHECK_EQ_INT(omni_jwt_verify(&jwt, &key, 1, &why), OMNI_JWT_OK);
            jwt.sig[i % jwt.sig_len] ^= 1;
            CHECK_EQ_INT(
                omni_jwt_verify(&jwt, &key, 1, &why), OMNI_JWT_BAD_SIGNATURE);
            omni_jwt_free(&jwt);
        }
        omni_jwt_key_free(&key);
        EVP_PKEY_free(pkey);
    }
    /* the shapes were met (P-521's top byte is 0 or 1: always "lead") */
    CHECK(high > 0 && lead > 0);
}

/* HS256/384/512 through the key's prepared HMAC context, initialised
 * again for each token: good and tampered tokens alternate, with two keys
 * in turn, and each answer stays exact. */
static void test_reused_hmac_contexts_stay_exact(void)
{
    static const struct {
        const char *alg;
        omni_jwt_alg_t id;
        const EVP_MD *(*md)(void);
    } hs[] = {
        {"HS256", OMNI_JWT_HS256, EVP_sha256},
        {"HS384", OMNI_JWT_HS384, EVP_sha384},
        {"HS512", OMNI_JWT_HS512, EVP_sha512},
    };
    static char tok[2][3][1000];
    char path[2][32], secret[2][65], hdr[64], err[256];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen;
    omni_jwt_key_t key[2];
    const char *why;
    size_t n;
    int k, a, round;
    FILE *f;

    for (k = 0; k < 2; k++) {
        memset(secret[k], 'a' + k, 64);
        secret[k][64] = '\0';
        strcpy(path[k], "/tmp/omni_jwt_hs_XXXXXX");
        f = fdopen(mkstemp(path[k]), "w");
        CHECK(f != NULL);
        fputs(secret[k], f);
        fclose(f);
        CHECK_EQ_INT(omni_jwt_key_load(&key[k], path[k], "HS256,HS384,HS512",
                         NULL, err, sizeof(err)),
            0);
        unlink(path[k]);
        for (a = 0; a < 3; a++) {
            CHECK(key[k].mac[hs[a].id] != NULL);
            snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\"}", hs[a].alg);
            snprintf(tok[k][a], sizeof(tok[k][a]), "%s",
                token(hdr, "{\"sub\":\"a\"}"));
            n = strlen(tok[k][a]) - 5;
            HMAC(hs[a].md(), secret[k], 64, (unsigned char *)tok[k][a], n, mac,
                &maclen);
            tok[k][a][n] = '.';
            b64url(tok[k][a] + n + 1, mac, maclen);
        }
    }

    for (round = 0; round < 30; round++) {
        k = round % 2;
        a = round % 3;
        CHECK_EQ_INT(omni_jwt_parse(&jwt, tok[k][a], strlen(tok[k][a]), &why),
            OMNI_JWT_OK);
        CHECK_EQ_INT(omni_jwt_verify(&jwt, &key[k], 1, &why), OMNI_JWT_OK);
        CHECK_EQ_INT(omni_jwt_verify(&jwt, &key[1 - k], 1, &why),
            OMNI_JWT_BAD_SIGNATURE);
        jwt.sig[round % jwt.sig_len] ^= 0x10;
        CHECK_EQ_INT(
            omni_jwt_verify(&jwt, &key[k], 1, &why), OMNI_JWT_BAD_SIGNATURE);
        jwt.sig[round % jwt.sig_len] ^= 0x10;
        CHECK_EQ_INT(omni_jwt_verify(&jwt, &key[k], 1, &why), OMNI_JWT_OK);
        omni_jwt_free(&jwt);
    }
    omni_jwt_key_free(&key[0]);
    omni_jwt_key_free(&key[1]);
}

UNIT_MAIN(UNIT_TEST(test_values_and_lookups_come_from_the_nodes),
    UNIT_TEST(test_a_second_token_leaves_nothing_of_the_first),
    UNIT_TEST(test_malformed_json_is_refused_with_its_reason),
    UNIT_TEST(test_strings_decode_as_yajl_decodes_them),
    UNIT_TEST(test_text_after_the_value_and_broken_strings_are_refused),
    UNIT_TEST(test_nesting_to_the_limit_and_beyond),
    UNIT_TEST(test_numeric_dates_are_read_exactly),
    UNIT_TEST(test_base64url_is_strict_and_exact),
    UNIT_TEST(test_duplicates_in_large_objects_are_found),
    UNIT_TEST(test_a_token_full_of_values_fits),
    UNIT_TEST(test_nodes_beyond_the_limit_are_refused),
    UNIT_TEST(test_ecdsa_signatures_of_every_shape_verify),
    UNIT_TEST(test_reused_hmac_contexts_stay_exact))
