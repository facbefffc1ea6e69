"""FLOWQUEUE_API_TOKEN: every route but /healthz, login/logout and trigger resume needs it;
SSE routes also take the dashboard's login cookie. Checked for every route in the OpenAPI
schema, and with tokens that are almost right (each test here fails if the comparison is
loosened to a prefix, suffix or substring match)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.api_harness import ApiProcess

pytestmark = pytest.mark.e2e
TOKEN = "s3cret-token-0123456789-abcdefghij-KLMNOP"
PUBLIC = {("GET", "/healthz"), ("POST", "/api/_flows/triggers/{trigger_id}")}
PUBLIC |= {("POST", "/api/_login"), ("POST", "/api/_logout")}
PUBLIC |= {("POST", "/api/_webhooks/{name}")}  # the signature is the auth
PUBLIC |= {("GET", "/api/_about")}  # says whether to log in; Flower's address only with auth
STREAM = "/api/_flows/nap/runs/0190a4e2-0000-7000-8000-000000000000/stream"  # no such run
FILL = {
    "flow": "nap",
    "run_id": "0190a4e2-0000-7000-8000-000000000000",
    "trigger_id": "trg_x",
    "name": "no-such-name",
}


@pytest.fixture(scope="module")
def secured(cluster, tmp_path_factory) -> Iterator[ApiProcess]:
    log = tmp_path_factory.mktemp("api-auth") / "api.log"
    # Logins here are not about the rate limit (tests/test_api_session.py is).
    process = ApiProcess(
        cluster.env, log, FLOWQUEUE_API_TOKEN=TOKEN, FLOWQUEUE_API_LOGIN_RATE_LIMIT="1000/minute"
    )
    yield process
    process.stop()


def routes(api: ApiProcess) -> list[tuple[str, str]]:
    with api.client() as client:
        schema = client.get("/openapi.json")
    assert schema.status_code == 401  # the schema and /docs are protected too
    with api.client() as client:
        assert client.get("/docs").status_code == 401
    with api.client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        paths = client.get("/openapi.json").json()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


def call(client, method: str, path: str):
    url = path.format(**FILL)
    return client.request(method, url, json={} if method == "POST" else None)


def test_every_route_needs_the_token(secured):
    all_routes = routes(secured)
    assert len(all_routes) >= 14
    with secured.client() as anonymous:
        for method, path in all_routes:
            response = call(anonymous, method, path)
            if (method, path) in PUBLIC:
                assert response.status_code != 401, (method, path)
            else:
                assert response.status_code == 401, (method, path, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.headers["www-authenticate"].startswith("Bearer")
    with secured.client(headers={"Authorization": "Bearer wrong"}) as wrong_token:
        assert wrong_token.get("/api/_flows").status_code == 401
    with secured.client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        for method, path in all_routes:
            if path.endswith("/stream"):
                continue  # streams stay open; checked below
            assert call(client, method, path).status_code != 401, (method, path)
        missing = client.get(f"/api/_flows/nap/runs/{FILL['run_id']}/stream")
        assert missing.status_code == 404
        assert client.get("/healthz").status_code == 200


def test_the_login_cookie_opens_what_the_token_does(secured):
    with secured.client() as browser:
        assert browser.post("/api/_login", json={"token": "nope"}).status_code == 401
        assert browser.get("/api/_flows/nap/runs/x/stream").status_code == 401
        assert browser.post("/api/_login", json={"token": TOKEN}).status_code == 204
        # The cookie opens the streams (404: no such run), the docs and the dashboard's
        # reads; a change needs the dashboard's header as well.
        assert browser.get(f"/api/_flows/nap/runs/{FILL['run_id']}/stream").status_code == 404
        assert browser.get("/docs").status_code == 200
        assert browser.get("/api/_flows").status_code == 200
        cancel = f"/api/_flows/nap/runs/{FILL['run_id']}/cancel"
        assert browser.post(cancel, json={}).status_code == 401
        dashboard = {"X-Requested-With": "flowqueue"}
        assert browser.post(cancel, json={}, headers=dashboard).status_code == 404


ALMOST = [
    "",
    TOKEN[:1],
    TOKEN[:-1],
    TOKEN[1:],
    TOKEN + "x",
    "x" + TOKEN,
    TOKEN.upper(),
    f"{TOKEN} {TOKEN}",
]


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "bearer",
        TOKEN,  # no scheme
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        *(f"Bearer {almost}" for almost in ALMOST[1:]),
    ],
)
def test_a_token_that_is_almost_right_gets_401(secured, authorization):
    with secured.client(headers={"Authorization": authorization}) as client:
        for path in ("/api/_flows", "/api/_workers", STREAM, "/openapi.json"):
            response = client.get(path)
            assert response.status_code == 401, (authorization, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
    with secured.client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.get("/api/_flows").status_code == 200  # the control


def raw_status(api: ApiProcess, request: bytes) -> int:
    """The status of a request sent byte for byte (httpx refuses a header value with
    trailing whitespace, which is what an empty token after 'Bearer ' is)."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as sock:
        sock.sendall(request)
        head = sock.makefile("rb").readline()
    return int(head.split()[1])


@pytest.mark.parametrize("value", [b"Bearer ", b"Bearer  ", b"Bearer \t", b"Bearer"])
def test_an_empty_bearer_token_gets_401(secured, value):
    request = b"GET /api/_flows HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n" % value
    assert raw_status(secured, request + b"Connection: close\r\n\r\n") == 401
    good = request.replace(value, f"Bearer {TOKEN}".encode())
    assert raw_status(secured, good + b"Connection: close\r\n\r\n") == 200  # the control


@pytest.mark.parametrize("token", ALMOST)
def test_login_with_a_token_that_is_almost_right_gets_401(secured, token):
    with secured.client() as browser:
        response = browser.post("/api/_login", json={"token": token})
        assert response.status_code == 401, (token, response.text)
        assert "set-cookie" not in response.headers
        assert browser.get(STREAM).status_code == 401


@pytest.mark.parametrize("name", ["flowqueue_session", "flowqueue_token"])
def test_a_cookie_holding_the_raw_token_gets_401(secured, name):
    """The cookie holds a signed session; the token itself is no session (nor is the
    cookie of earlier versions, which held the token)."""
    with secured.client(cookies={name: TOKEN}) as browser:
        assert browser.get(STREAM).status_code == 401
        assert browser.get("/docs").status_code == 401
        assert browser.get("/api/_flows").status_code == 401
