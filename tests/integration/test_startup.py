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
