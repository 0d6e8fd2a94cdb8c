"""Gateway benchmark: JWT verification + identity headers in nginx, as a
ratio to plain `proxy_pass` to the same trivial upstream, in the same nginx
(SPEC section 9: >= 85% with the verified-token cache, >= 60% for RS256
without it).

Two nginx instances with the module are measured in turn: one without
`omni_jwt_cache`, one with it; each has a plain location and one location
per algorithm, all proxying over keepalive to an nginx `return 200` on a
unix socket.
"""

import subprocess
import time

import stack

ALGS = {
    # location: (PyJWT algorithm, openssl genpkey arguments or None = HMAC)
    "hs256": ("HS256", None),
    "rs256": ("RS256", ["-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048"]),
    "es256": ("ES256", ["-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256"]),
    "eddsa": ("EdDSA", ["-algorithm", "ED25519"]),
}

CONF = """
load_module {module};
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {preamble}
    {cache}
    omni_redis {redis} password={redis_password} timeout=100ms;
    omni_limit_zone l1 rate=1000000r/s burst=1000;
    omni_limit_zone l2 rate=1000000r/s burst=1000 key=$remote_addr;
    omni_limit_zone l3 rate=1000000r/s burst=1000 key=$http_user_agent;
    upstream trivial {{
        server unix:{upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location /plain {{ proxy_pass http://trivial; }}
{locations}
        location /limit1 {{
            omni_auth jwt;
            omni_jwt_key file={rs_key} alg=RS256;
            omni_jwt_issuer bench;
            omni_jwt_audience bench;
            omni_require_role user;
            omni_limit zone=l1;
            proxy_pass http://trivial;
        }}
        location /limit3 {{
            omni_auth jwt;
            omni_jwt_key file={rs_key} alg=RS256;
            omni_jwt_issuer bench;
            omni_jwt_audience bench;
            omni_require_role user;
            omni_limit zone=l1;
            omni_limit zone=l2;
            omni_limit zone=l3;
            proxy_pass http://trivial;
        }}
    }}
}}
"""

LOCATION = """        location /{name} {{
            omni_auth jwt;
            omni_jwt_key file={key} alg={alg};
            omni_jwt_issuer bench;
            omni_jwt_audience bench;
            proxy_pass http://trivial;
        }}"""


def make_keys(keydir):
    """Key files and one long-lived token per location, made with openssl
    and PyJWT (the independent implementation)."""
    import jwt
    keys, tokens = {}, {}
    now = int(time.time())
    # no jti: a token with one costs a revocation check in Redis, which the
    # per-algorithm rows do not measure (the limit rows do, with "jti")
    claims = {"iss": "bench", "aud": "bench", "sub": "bench-user",
              "preferred_username": "bench", "role": "user",
              "iat": now, "exp": now + 3600}
    for name, (alg, genpkey) in ALGS.items():
        if genpkey is None:
            secret = b"s" * 48
            (keydir / name).write_bytes(secret)
            keys[name] = keydir / name
            tokens[name] = jwt.encode(claims, secret, algorithm=alg)
            continue
        priv, pub = keydir / (name + ".key"), keydir / (name + ".pem")
        subprocess.run(["openssl", "genpkey", "-out", str(priv)] + genpkey,
                       check=True, capture_output=True)
        subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout",
                        "-out", str(pub)], check=True, capture_output=True)
        keys[name] = pub
        tokens[name] = jwt.encode(claims, priv.read_text(), algorithm=alg)
        if name == "rs256":
            tokens["jti"] = jwt.encode(dict(claims, jti="bench-jti"),
                                       priv.read_text(), algorithm=alg)
    return keys, tokens


def start(workers, upstream, keys, cached, redis):
    """The gateway nginx, with or without the token cache."""
    locations = "\n".join(
        LOCATION.format(name=name, key=keys[name], alg=ALGS[name][0])
        for name in ALGS)
    cache = "omni_jwt_cache zone=bench:32m ttl=10m;" if cached else ""
    return stack.NginxConf(CONF, "bench-gw", workers=workers, cache=cache,
                           upstream=upstream, locations=locations,
                           redis=redis, rs_key=keys["rs256"]).start("/plain")


def run(measure, summary, row, workers, upstream, redis, keys, tokens):
    """Measures every gateway row (keys and tokens from make_keys());
    returns the table's lines and a dict row name -> summary."""
    lines, results = [], {}
    for cached in (False, True):
        gw = start(workers, upstream, keys, cached, redis)
        try:
            url = "http://127.0.0.1:%d/" % gw.port
            plain = summary(measure(url + "plain"))
            mode = "cache on" if cached else "cache off"
            lines.append(row("plain `proxy_pass` (%s nginx)" % mode, plain))
            for name in ALGS:
                name_row = "%s + headers, %s" % (ALGS[name][0], mode)
                s = results[name_row] = summary(measure(
                    (url + name,
                     {"Authorization": "Bearer " + tokens[name]})))
                target = (">= 85%" if cached
                          else ">= 60%" if name == "rs256" else "")
                lines.append(row(name_row, s, plain, target))
            # SPEC 9's gateway row: RS256 + RBAC + Redis limits (and the
            # jti's revocation, in the same round trip) + headers
            for n in (1, 3):
                name_row = ("RS256 + RBAC + %d Redis limit%s + headers, %s"
                            % (n, "s" if n > 1 else "", mode))
                s = results[name_row] = summary(measure(
                    (url + "limit%d" % n,
                     {"Authorization": "Bearer " + tokens["jti"]})))
                lines.append(row(name_row, s, plain,
                                 ">= 85%" if cached else ""))
        finally:
            gw.destroy()
    return lines, results
