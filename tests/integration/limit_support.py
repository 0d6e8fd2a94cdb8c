"""The two forms the module sends omni_limit_batch.lua in
(ngx_http_omni_limit.c), composed here as the module composes them, so
that tests can load either into a Redis: the function library FCALL
calls (Redis 7 and later) and the script EVALSHA runs."""

import hashlib


def function_name(run):
    """omni_limit_<the first 16 hex digits of the file's SHA-1>."""
    return "omni_limit_" + hashlib.sha1(run).hexdigest()[:16]


def function_library(run):
    name = function_name(run).encode()
    return (b"#!lua name=" + name + b"\n" + run
            + b"\nredis.register_function('" + name + b"', run)\n")


def script(run):
    return run + b"\nreturn run(KEYS, ARGV)\n"
