"""Bad requests get a clear JSON 4xx, from the worker or from nginx."""

import json
import uuid

import pytest

ADMIN = {"X-User-Role": "admin", "Content-Type": "application/json"}
PUT_PATH = "/api/v1/config/test_key"


def _assert_error(status, body, expected_status, code):
    assert status == expected_status, body
    doc = json.loads(body)
    assert doc["error"] == code
    assert isinstance(doc.get("message"), str) and doc["message"]
    return doc


def test_unknown_api_path_gets_404_json_from_the_worker(gateway):
    r = gateway.request("GET", "/api/v1/does-not-exist",
                        headers=gateway.bearer())
    _assert_error(r.status_code, r.content, 404, "not_found")
    # the worker answered (nginx's own 404 carries no request id)
    assert "X-Request-Id" in r.headers


def test_wrong_method_gets_405_json_with_allow_listing_get_and_put(gateway):
    r = gateway.request("DELETE", "/api/v1/config/refresh_interval",
                        headers=gateway.bearer())
    _assert_error(r.status_code, r.content, 405, "method_not_allowed")
    allowed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert {"GET", "PUT"} <= allowed


def test_body_over_nginx_limit_gets_413_json(gateway):
    r = gateway.request("PUT", PUT_PATH, data=b"x" * (2 * 1024 * 1024),
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"


def test_body_over_worker_limit_gets_413_directly(worker):
    size = 2 * 1024 * 1024      # OMNI_MAX_BODY_BYTES defaults to 1 MiB
    head = ("PUT %s HTTP/1.1\r\nHost: localhost\r\nX-User-Role: admin\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (PUT_PATH, size)).encode()
    r = worker.raw(head, b"x" * size)
    assert r.status == 413


def test_malformed_json_gets_400_invalid_json(worker):
    r = worker.request("PUT", PUT_PATH, ADMIN, '{"interval": 5,')
    _assert_error(r.status, r.body, 400, "invalid_json")


def test_json_nested_100_deep_gets_400_naming_nesting(worker):
    body = '{"a":' * 100 + "1" + "}" * 100
    r = worker.request("PUT", PUT_PATH, ADMIN, body)
    doc = _assert_error(r.status, r.body, 400, "invalid_json")
    message = doc["message"].lower()
    assert "nest" in message or "depth" in message


@pytest.mark.parametrize("body", ["[1, 2, 3]", '"text"', "42", "null"])
def test_json_value_that_is_not_an_object_gets_422(worker, body):
    r = worker.request("PUT", PUT_PATH, ADMIN, body)
    _assert_error(r.status, r.body, 422, "invalid_value")


def test_put_without_role_gets_403_forbidden(worker):
    r = worker.request("PUT", PUT_PATH, {"Content-Type": "application/json"},
                       '{"v": 1}')
    _assert_error(r.status, r.body, 403, "forbidden")


def test_put_with_non_admin_role_gets_403_forbidden(worker):
    r = worker.request("PUT", PUT_PATH, {"X-User-Role": "viewer",
                                         "Content-Type": "application/json"},
                       '{"v": 1}')
    _assert_error(r.status, r.body, 403, "forbidden")


def test_forged_admin_role_never_reaches_the_worker_through_nginx(gateway):
    """Asking for an admin API key is decided by the worker from
    X-User-Role: forged copies of that header must not get one."""
    conn = gateway.connection()
    try:
        body = b'{"name": "forged", "role": "admin"}'
        conn.putrequest("POST", "/api/v1/api-keys")
        # a real user's token: the forged copies must not make it admin
        conn.putheader("Authorization", gateway.bearer(
            role="user", sub=str(uuid.uuid4()))["Authorization"])
        conn.putheader("x-USER-role", "admin")
        conn.putheader("X-User-Role", "admin")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        doc = _assert_error(r.status, r.read(), 403, "insufficient_role")
        # the worker's refusal, not the gateway's
        assert doc["message"].startswith("role:"), doc
    finally:
        conn.close()
