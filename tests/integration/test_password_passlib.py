"""worker/src/services/auth/password.c against an independent
implementation, Debian's python3-passlib: a hash the worker writes verifies
in passlib, and a hash passlib writes verifies in the worker (SPEC 6:
passwords are stored in the passlib format). The C side is a small CLI compiled here from password.c
alone, so no database, Redis or nginx is involved."""

import subprocess

import pytest
from passlib.hash import pbkdf2_sha256

import stack

CLI_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "services/auth/password.h"

/* stdin: the password, every byte of it. "hash ROUNDS" prints the hash;
 * "verify HASH" prints omni_password_verify()'s answer (1, 0 or -1). */
int main(int argc, char **argv)
{
    static char pw[65536];
    char h[OMNI_PASSWORD_HASH_MAX];
    size_t n = fread(pw, 1, sizeof(pw), stdin);

    if (argc == 3 && strcmp(argv[1], "hash") == 0) {
        if (omni_password_hash(pw, n, (unsigned) strtoul(argv[2], NULL, 10),
                h, sizeof(h)) != 0)
            return 2;
        printf("%s\n", h);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "verify") == 0) {
        printf("%d\n", omni_password_verify(pw, n, argv[2]));
        return 0;
    }
    return 64;
}
"""

PASSWORDS = [
    "correct horse battery staple",
    "p\u00e4ssw\u00f6rd \u20ac \U0001f600",
    "",
    "x" * 1024,
    "with\x00nul",
]


@pytest.fixture(scope="module")
def password_cli(tmp_path_factory):
    d = tmp_path_factory.mktemp("password")
    (d / "cli.c").write_text(CLI_SOURCE)
    openssl = subprocess.run(["pkg-config", "--cflags", "--libs", "openssl"],
                             capture_output=True, text=True, check=True)
    res = subprocess.run(
        ["gcc", "-std=gnu11", "-O1", "-Wall", "-Wextra", "-Werror",
         "-I", str(stack.REPO / "worker" / "src"),
         "-o", str(d / "cli"), str(d / "cli.c"),
         str(stack.REPO / "worker" / "src" / "services" / "auth"
             / "password.c")]
        + openssl.stdout.split(),
        capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return d / "cli"


def c_hash(cli, password, rounds):
    res = subprocess.run([str(cli), "hash", str(rounds)],
                         input=password.encode(), capture_output=True,
                         check=True)
    return res.stdout.decode().strip()


def c_verify(cli, password, stored):
    res = subprocess.run([str(cli), "verify", stored],
                         input=password.encode(), capture_output=True,
                         check=True)
    return int(res.stdout)


@pytest.mark.parametrize("password", PASSWORDS)
def test_worker_hash_verifies_in_passlib(password_cli, password):
    stored = c_hash(password_cli, password, 29000)
    assert pbkdf2_sha256.verify(password, stored)
    assert not pbkdf2_sha256.verify(password + "!", stored)


def test_worker_hash_parses_in_passlib_with_its_rounds_and_salt(password_cli):
    stored = c_hash(password_cli, "pw", 31337)
    parsed = pbkdf2_sha256.from_string(stored)
    assert parsed.rounds == 31337
    assert len(parsed.salt) == 16
    assert pbkdf2_sha256.verify("pw", stored)


@pytest.mark.parametrize("password", PASSWORDS)
def test_passlib_hash_verifies_in_worker(password_cli, password):
    stored = pbkdf2_sha256.hash(password)
    assert c_verify(password_cli, password, stored) == 1
    assert c_verify(password_cli, password + "!", stored) == 0


@pytest.mark.parametrize("salt_size,rounds", [(0, 1), (1, 1000), (17, 29000),
                                              (64, 29001), (1024, 2)])
def test_passlib_hash_with_other_salt_and_rounds_verifies_in_worker(
        password_cli, salt_size, rounds):
    stored = pbkdf2_sha256.using(salt_size=salt_size, rounds=rounds).hash("pw")
    assert c_verify(password_cli, "pw", stored) == 1
    assert c_verify(password_cli, "pW", stored) == 0


def test_worker_refuses_to_hash_below_29000_rounds(password_cli):
    res = subprocess.run([str(password_cli), "hash", "28999"], input=b"pw",
                         capture_output=True)
    assert res.returncode == 2
    assert res.stdout == b""
