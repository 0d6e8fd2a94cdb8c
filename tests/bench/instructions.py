"""Instructions per request (valgrind's callgrind), the deterministic
figure beside gateway.py's timed rounds, whose ratios swing with the
shared VM's load from run to run.

Method: one nginx process (`master_process off`) runs under callgrind
with the module and the measured RS256 ceiling's module
(tests/bench/rsa_ceiling.c) loaded, each location answering a static
file: plain (no module), the measured ceiling (one bare RSA-2048
verification), and the module's JWT locations (RBAC + headers) with and
without `omni_jwt_cache`. Per location, nginx runs twice, once serving
WARM requests and once WARM + COUNT over one keep-alive connection with
the same token (a cached token is verified by the first request of both
runs); instructions per request = the difference of the two runs'
totals / COUNT, so start-up, configuration and the first verification
cancel out. It counts user-space instructions only: the module makes no
system call of its own on these paths (strace: the same calls a request
as plain nginx), so the kernel's share is the same on both sides. The
module's own = location - plain nginx sent the same token; beyond the
ceiling = RS256 uncached - the ceiling.

`/usr/bin/python3 tests/bench/instructions.py [--module SO]` prints the
table alone (for another build of the module: an A/B by instructions);
`bash tests/bench/run.sh gateway` puts it in results-gateway.md.
"""

import http.client
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
import stack  # noqa: E402

WARM = 10
COUNT = 400
# a directory to keep each run's callgrind output in (for callgrind_annotate)
KEEP = os.environ.get("INSTRUCTIONS_KEEP")

CEILING_MODULE = stack.BUILD / "ngx_http_bench_rsa_module.so"

CONF = """
load_module {module};
load_module {ceiling};
master_process off;
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    {preamble}
    {cache}
    {redis}
    omni_limit_zone l1 rate=1000000r/s burst=1000;
    omni_limit_zone l2 rate=1000000r/s burst=1000 key=$remote_addr;
    omni_limit_zone l3 rate=1000000r/s burst=1000 key=$http_user_agent;
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/www;
        location /plain {{ }}
        location /ceiling {{ bench_rsa_verify {rs_key}; }}
{locations}
    }}
}}
"""

# the module's locations: name, key, algorithm, limit zones
JWT_LOCATIONS = (
    ("rs256", "rs_key", "RS256", ()),
    ("hs256", "hs_key", "HS256", ()),
    ("limit1", "rs_key", "RS256", ("l1",)),
    ("limit3", "rs_key", "RS256", ("l1", "l2", "l3")),
)

JWT_LOCATION = """        location /{name} {{{{
            omni_auth jwt;
            omni_jwt_key file={{{key}}} alg={alg};
            omni_jwt_issuer bench;
            omni_jwt_audience bench;
            omni_require_role user;
{limits}        }}}}"""

CONF = CONF.replace("{locations}", "\n".join(
    JWT_LOCATION.format(name=name, key=key, alg=alg,
                        limits="".join("            omni_limit zone=%s;\n" % z
                                       for z in zones))
    for name, key, alg, zones in JWT_LOCATIONS))

# (row, location, cached, token): plain nginx gets each token too, since
# nginx parses the Authorization header either way (an RS256 token's
# 342-character signature costs it 2.8k instructions more than HS256's)
ROWS = (
    ("plain nginx, RS256 token (sent, not read)", "plain", False, "rs256"),
    ("plain nginx, HS256 token (sent, not read)", "plain", False, "hs256"),
    ("the measured ceiling: one bare RSA-2048 verification", "ceiling",
     False, "rs256"),
    ("RS256 + RBAC + headers, cache off", "rs256", False, "rs256"),
    ("HS256 + RBAC + headers, cache off", "hs256", False, "hs256"),
    ("RS256 + RBAC + headers, cache on", "rs256", True, "rs256"),
    ("HS256 + RBAC + headers, cache on", "hs256", True, "hs256"),
    # one request at a time: a script call each (none shared), whose
    # round trip is counted whole on the nginx side
    ("RS256 + RBAC + 1 Redis limit + headers, cache on", "limit1", True,
     "rs256"),
    ("RS256 + RBAC + 3 Redis limits + headers, cache on", "limit3", True,
     "rs256"),
)


def total_instructions(keys, cached, location, token, requests, redis,
                       module=None):
    """Instructions nginx executed from start to exit having served
    `requests` requests for location (Redis at redis: its unix socket)."""
    extra = {"module": module} if module else {}
    ngx = stack.NginxConf(
        CONF, "bench-instr", ceiling=CEILING_MODULE, rs_key=keys["rs256"],
        redis="omni_redis %s password=%s timeout=1s;" % (
            redis, stack.REDIS_PASSWORD),
        **extra,
        hs_key=keys["hs256"],
        cache="omni_jwt_cache zone=instr:4m ttl=10m;" if cached else "")
    www = ngx.prefix / "www"
    www.mkdir()
    for name in ("plain", "ceiling") + tuple(n for n, *_ in JWT_LOCATIONS):
        (www / name).write_text("ok\n")
    out = ngx.prefix / "callgrind.out"
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s" % out,
         "nginx", "-p", str(ngx.prefix), "-c", str(ngx.conf),
         "-e", str(ngx.error_log)],
        start_new_session=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        conn = None
        deadline = time.monotonic() + 60
        while conn is None:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", ngx.port,
                                                  timeout=60)
                conn.connect()
            except OSError:
                conn = None
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nginx under callgrind did not start")
                time.sleep(0.2)
        headers = {"Authorization": "Bearer " + token}
        for _ in range(requests):
            conn.request("GET", "/" + location, headers=headers)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                raise RuntimeError("/%s answered %d" % (location, r.status))
        conn.close()
        pid = int((ngx.prefix / "nginx.pid").read_text())
        subprocess.run(["kill", "-QUIT", str(pid)], check=True)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if KEEP:
            shutil.copy(out, "%s/%s-%s-%d.out" % (
                KEEP, location, "on" if cached else "off", requests))
        shutil.rmtree(ngx.prefix, ignore_errors=True)
    m = re.search(r"Collected : (\d+)", err)
    if m is None:
        raise RuntimeError("no callgrind total:\n" + err[-2000:])
    return int(m.group(1))


def per_request(keys, tokens, cached, location, token_name, redis,
                module=None):
    token = tokens[token_name]
    low = total_instructions(keys, cached, location, token, WARM, redis,
                             module)
    high = total_instructions(keys, cached, location, token, WARM + COUNT,
                              redis, module)
    return (high - low) / COUNT


HEADER = [
    "| instructions per request (callgrind, one nginx process, %d "
    "requests) | nginx | the module's own (- plain) | beyond the measured "
    "ceiling |" % COUNT,
    "|---|---|---|---|",
]


def run(keys, tokens, redis, module=None):
    """The table's lines (keys and tokens from gateway.make_keys(), redis
    a stack.Redis); module: another build of the module's .so."""
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is missing: make deps")
    if not CEILING_MODULE.exists():
        raise RuntimeError("%s is missing: make %s" % (
            CEILING_MODULE, CEILING_MODULE.relative_to(stack.REPO)))
    got = {}
    for name, location, cached, token in ROWS:
        got[name] = per_request(keys, tokens, cached, location, token,
                                redis.unix_addr, module)
    plain = {token: got[name] for name, location, _c, token in ROWS
             if location == "plain"}
    ceiling = got[ROWS[2][0]]
    lines = list(HEADER)
    for name, location, _cached, token in ROWS:
        n = got[name]
        beyond = ("%.1fk (%.1f%% of the ceiling's)" % (
                      (n - ceiling) / 1000, 100 * (n - ceiling) / ceiling)
                  if location == "rs256" and name.endswith("cache off")
                  else "")
        lines.append("| %s | %.1fk | %s | %s |" % (
            name, n / 1000,
            "" if location == "plain"
            else "%.1fk" % ((n - plain[token]) / 1000),
            beyond))
    return lines


def main():
    import argparse
    import gateway
    ap = argparse.ArgumentParser(description="instructions per request")
    ap.add_argument("--module", help="the module .so to load instead")
    args = ap.parse_args()
    keydir = stack.make_tmpdir("omni-bench-keys-")
    redis = stack.Redis().start()
    try:
        keys, tokens = gateway.make_keys(keydir)
        print("\n".join(run(keys, tokens, redis, args.module)))
    finally:
        redis.destroy()
        shutil.rmtree(keydir, ignore_errors=True)


if __name__ == "__main__":
    main()
