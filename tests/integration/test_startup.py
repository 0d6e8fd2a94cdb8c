"""The worker refuses to start without its required settings."""

import shutil

import pytest

import stack


@pytest.mark.parametrize("missing", ["OMNI_DATABASE_URL", "OMNI_REDIS_ADDR"])
def test_worker_without_a_required_setting_exits_nonzero_naming_it(missing):
    scratch = stack.make_tmpdir("omni-test-startup-")
    try:
        settings = {
            "OMNI_LISTEN": "unix:%s" % (scratch / "worker.sock"),
            "OMNI_DATABASE_URL": "postgresql://omni:x@127.0.0.1:1/omni",
            "OMNI_REDIS_ADDR": "127.0.0.1:1",
            "OMNI_WORKERS": "1",
        }
        settings[missing] = None
        code, out, err = stack.run_worker(settings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert code != 0
    assert missing in err


@pytest.mark.parametrize("host", ["0.0.0.0", "", "[::]", "10.0.0.1"])
def test_worker_on_tcp_beyond_loopback_without_a_secret_refuses_to_start(
        host):
    code, out, err = stack.run_worker({
        "OMNI_LISTEN": "%s:%d" % (host, stack.free_port()),
        "OMNI_DATABASE_URL": "postgresql://omni:x@127.0.0.1:1/omni",
        "OMNI_REDIS_ADDR": "127.0.0.1:1",
        "OMNI_WORKERS": "1",
        "OMNI_GATEWAY_SECRET": None,
        "OMNI_GATEWAY_SECRET_FILE": None,
    })
    assert code != 0
    assert "OMNI_GATEWAY_SECRET" in err, err


@pytest.mark.parametrize("setting,value,named", [
    ("OMNI_GATEWAY_SECRET", "too-short", "OMNI_GATEWAY_SECRET"),
    ("OMNI_GATEWAY_SECRET_FILE", "/nonexistent/omni-secret",
     "/nonexistent/omni-secret"),
    ("OMNI_GATEWAY_USER", "no-such-user-omni", "OMNI_GATEWAY_USER"),
    ("OMNI_REDIS_TIMEOUT_MS", "0", "OMNI_REDIS_TIMEOUT_MS"),
])
def test_bad_gateway_or_redis_setting_refuses_to_start_naming_it(
        setting, value, named):
    code, out, err = stack.run_worker({
        "OMNI_LISTEN": "127.0.0.1:%d" % stack.free_port(),
        "OMNI_DATABASE_URL": "postgresql://omni:x@127.0.0.1:1/omni",
        "OMNI_REDIS_ADDR": "127.0.0.1:1",
        "OMNI_WORKERS": "1",
        setting: value,
    })
    assert code != 0
    assert named in err, err
