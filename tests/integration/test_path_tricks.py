"""nginx picks a location (and its auth rules) from the normalised path
but forwards the raw one; the worker answers 400 invalid_path to any path
the two could read differently, before routing. Requests are sent as
written (http.client, like curl --path-as-is)."""

import json
import uuid

import pytest

TRICKS = [
    "/api/v1/../v1/users",
    "/api/v1/config/../../v1/users",
    "/api//v1/config",
    "/api/v1/./config",
    "/api/v1/%2e%2e/v1/config",
    "/api/v1/%2E%2E/v1/users",
    "/api/v1/config%2Frefresh_interval",
    "/api/v1/config/refresh_interval%2f..",
    "/api/v1/config/a%5Cb",
    "/api/v1/config/a%5c..%5cb",
]


def _send(gateway, method, path, headers, body=None):
    """One request through the gateway exactly as written: (status,
    headers, JSON body)."""
    conn = gateway.connection()
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.headers, json.loads(r.read())
    finally:
        conn.close()


def _invalid_path(status, doc):
    assert status == 400, doc
    assert doc["error"] == "invalid_path", doc
    assert "path" in doc["message"], doc


@pytest.mark.parametrize("path", TRICKS + ["//api/v1/config",
                                           "/api/v1/config/a\\b",
                                           "/health/."])
def test_path_trick_straight_to_the_worker_gets_400(worker, path):
    r = worker.request("GET", path, headers={"X-User-Role": "admin"})
    _invalid_path(r.status, r.json())


@pytest.mark.parametrize("path", TRICKS)
def test_path_trick_through_the_gateway_gets_400_from_the_worker(gateway,
                                                                 path):
    status, headers, doc = _send(gateway, "GET", path,
                                 gateway.bearer(role="admin"))
    _invalid_path(status, doc)
    # the worker's answer (it sets X-Request-Id), not nginx's
    assert headers["X-Request-Id"], headers


def test_dot_segment_cannot_take_a_user_past_the_admin_location(gateway):
    """nginx reads /api/v1/users/%2e%2e as /api/v1/ (location /api/, no
    admin rule); the worker would route it to PATCH /api/v1/users/{id}."""
    status, _, doc = _send(gateway, "PATCH", "/api/v1/users/%2e%2e",
                           dict(gateway.bearer(role="user",
                                               sub=str(uuid.uuid4())),
                                **{"Content-Type": "application/json"}),
                           b'{"role": "admin"}')
    _invalid_path(status, doc)


@pytest.mark.parametrize("path", [
    "/api/v1/config/refresh_interval",
    "/api/v1/config?limit=5&next=../%2F%2e%5c//x",
    "/.well-known/jwks.json",
])
def test_plain_paths_are_still_served(gateway, path):
    status, _, doc = _send(gateway, "GET", path,
                           gateway.bearer(role="admin"))
    assert status == 200, doc
