"""The dashboard's login session, on real ``flowqueue api`` processes: a signed, expiring
cookie (never the token), shared by every API process with the same token, a logout, a
login rate limit per client counted across processes, and the token checks at start.

Each test logs in from its own client address (``X-Forwarded-For``, which uvicorn takes
from the local proxy it trusts by default), so the rate limit of one test does not spill
into another.
"""

from __future__ import annotations

import base64
import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from flowqueue.api.auth import COOKIE, session_key
from flowqueue.backend.redis.embedded import free_port
from tests.api_harness import ApiProcess
from tests.worker_harness import ROOT

pytestmark = pytest.mark.e2e
TOKEN = "session-test-token-0123456789abcdefghijklmn"
STREAM = "/api/_flows/nap/runs/0190a4e2-0000-7000-8000-000000000000/stream"  # no such run
LIMIT = 3
_addresses = (f"10.77.0.{n}" for n in itertools.count(1))


@pytest.fixture(scope="module")
def env(redis_server) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWQUEUE_REDIS_URL": redis_server.url,
        "FLOWQUEUE_KEY_PREFIX": f"s{uuid.uuid4().hex[:10]}",
        "FLOWQUEUE_WORKERS": "workers,tests.flows",
        "FLOWQUEUE_API_TOKEN": TOKEN,
        "FLOWQUEUE_API_LOGIN_RATE_LIMIT": f"{LIMIT}/minute",
    }


@pytest.fixture(scope="module")
def pair(env, tmp_path_factory) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    """Two API processes with the same token and the same Redis (no session secret)."""
    logs = tmp_path_factory.mktemp("api-session")
    one = ApiProcess(env, logs / "one.log")
    two = ApiProcess(env, logs / "two.log")
    yield one, two
    one.stop()
    two.stop()


def client(api: ApiProcess, address: str | None = None, **headers: str) -> httpx.Client:
    headers["X-Forwarded-For"] = address or next(_addresses)
    return api.client(headers=headers)


def login(api: ApiProcess, browser: httpx.Client) -> SimpleCookie:
    response = browser.post("/api/_login", json={"token": TOKEN})
    assert response.status_code == 204, response.text
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 1
    jar = SimpleCookie()
    jar.load(cookies[0])
    return jar


def stream_status(api: ApiProcess, session: str, address: str | None = None) -> int:
    """404 (no such run) when the session is accepted, 401 when it is not."""
    with client(api, address) as browser:
        return browser.get(STREAM, headers={"Cookie": f"{COOKIE}={session}"}).status_code


def test_the_cookie_is_a_signed_expiring_session_not_the_token(pair):
    one, _ = pair
    with client(one) as browser:
        morsel = login(one, browser)[COOKIE]
    value = morsel.value
    assert value != TOKEN
    assert TOKEN not in value
    payload = value.split(".")[0]
    assert TOKEN.encode() not in base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert morsel["max-age"] == str(12 * 3600)
    assert morsel["expires"]
    assert morsel["httponly"] is True
    assert morsel["samesite"].lower() == "strict"
    assert morsel["path"] == "/"
    assert not morsel["secure"]  # plain http here; see the https test
    assert stream_status(one, value) == 404
    with client(one) as other:  # the session opens what the token does (the dashboard)
        other.cookies.set(COOKIE, value)
        assert other.get("/docs").status_code == 200
        assert other.get("/api/_flows").status_code == 200
        # A change needs the dashboard's header too: no other site's form can send it.
        start = "/api/_flows/no-such-flow/start"
        assert other.post(start, json={}).status_code == 401
        sent = other.post(start, json={}, headers={"X-Requested-With": "flowqueue"})
        assert sent.status_code == 404
    with client(one) as anonymous:
        assert anonymous.get("/api/_flows").status_code == 401


def test_the_cookie_is_secure_when_served_over_https(pair):
    one, _ = pair
    with client(one, **{"X-Forwarded-Proto": "https"}) as browser:
        morsel = login(one, browser)[COOKIE]
        assert morsel["secure"] is True
        assert morsel["httponly"] is True
        cleared = browser.post("/api/_logout").headers["set-cookie"]
        assert "secure" in cleared.lower()


def test_processes_with_the_same_token_accept_each_others_sessions(pair):
    one, two = pair
    with client(one) as browser:
        from_one = login(one, browser)[COOKIE].value
    with client(two) as browser:
        from_two = login(two, browser)[COOKIE].value
    assert from_one != from_two  # each login is its own session
    assert stream_status(two, from_one) == 404
    assert stream_status(one, from_two) == 404


def forge(key: bytes, payload: object, salt: str = "flowqueue.session") -> str:
    return URLSafeTimedSerializer(key, salt=salt).dumps(payload)


def test_a_forged_or_tampered_session_is_refused(pair):
    one, two = pair
    with client(one) as browser:
        good = login(one, browser)[COOKIE].value
    payload, stamp, signature = good.split(".")
    right_key = session_key(TOKEN, None)
    other_payload = base64.urlsafe_b64encode(b'{"sid":"mine"}').rstrip(b"=").decode()
    # The first character: the last one of base64 text may carry only padding bits.
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    refused = [
        f"{payload}.{stamp}.{flipped}",  # signature changed
        f"{other_payload}.{stamp}.{signature}",  # payload changed
        f"{payload}.{stamp}",  # signature dropped
        f"{payload}.{stamp}.{signature}x",
        forge(session_key(TOKEN + "x", None), {"sid": "x"}),  # another token's key
        forge(session_key(TOKEN, "a-session-secret-of-more-than-32-chars"), {"sid": "x"}),
        forge(TOKEN.encode(), {"sid": "x"}),  # the token as the key
        forge(right_key, {"sid": "x"}, salt="itsdangerous"),  # another purpose's salt
        "",
        "garbage",
    ]
    for value in refused:
        assert stream_status(one, value) == 401, value
        assert stream_status(two, value) == 401, value
    # The control: a session signed with the key every process derives from the token
    # is accepted, so the refusals above are about the signature, not the format.
    assert stream_status(two, forge(right_key, {"sid": "x"})) == 404


def test_logout_clears_the_cookie(pair):
    one, _ = pair
    with client(one) as browser:
        login(one, browser)
        assert browser.get(STREAM).status_code == 404  # the client's jar sends the cookie
        response = browser.post("/api/_logout")
        assert response.status_code == 204
        cleared = SimpleCookie()
        cleared.load(response.headers["set-cookie"])
        assert cleared[COOKIE].value == ""
        assert cleared[COOKIE]["max-age"] == "0"
        assert cleared[COOKIE]["path"] == "/"
        assert browser.get(STREAM).status_code == 401


def test_login_is_rate_limited_per_client_across_processes(pair):
    one, two = pair
    address = next(_addresses)
    with client(one, address) as on_one, client(two, address) as on_two:
        # Wrong and right attempts both count, on either process (the count is in Redis).
        assert on_one.post("/api/_login", json={"token": "wrong"}).status_code == 401
        assert on_two.post("/api/_login", json={"token": "wrong"}).status_code == 401
        assert on_one.post("/api/_login", json={"token": TOKEN}).status_code == 204
        for browser in (on_two, on_one):
            refused = browser.post("/api/_login", json={"token": TOKEN})
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["status"] == 429
            assert 1 <= int(refused.headers["retry-after"]) <= 60
            assert "set-cookie" not in refused.headers
    with client(two) as elsewhere:  # another client is not affected
        assert elsewhere.post("/api/_login", json={"token": TOKEN}).status_code == 204


def test_an_expired_session_is_refused(env, tmp_path):
    api = ApiProcess(env, tmp_path / "api.log", FLOWQUEUE_SESSION_TTL_SECONDS="3")
    try:
        with client(api) as browser:
            morsel = login(api, browser)[COOKIE]
        assert morsel["max-age"] == "3"
        assert stream_status(api, morsel.value) == 404
        time.sleep(5)  # the browser drops it after Max-Age; the server refuses it too
        assert stream_status(api, morsel.value) == 401
    finally:
        api.stop()


def run_api(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    flowqueue = str(Path(sys.executable).parent / "flowqueue")
    return subprocess.run(
        [flowqueue, "api", "--port", str(free_port())],
        cwd=ROOT,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("token", ["x", "a" * 31, " " + "a" * 40])
def test_a_short_token_stops_the_api_with_one_line(env, token):
    result = run_api(env, FLOWQUEUE_API_TOKEN=token)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "FLOWQUEUE_API_TOKEN" in lines[0]
    if token.strip() == token:
        assert "secrets.token_urlsafe(32)" in lines[0]
        assert "FLOWQUEUE_API_ALLOW_SHORT_TOKEN" in lines[0]


def test_a_short_token_is_served_when_explicitly_allowed(env, tmp_path):
    extra = {"FLOWQUEUE_API_TOKEN": "short", "FLOWQUEUE_API_ALLOW_SHORT_TOKEN": "true"}
    api = ApiProcess(env, tmp_path / "api.log", **extra)
    try:
        with api.client(headers={"Authorization": "Bearer short"}) as client:
            assert client.get("/api/_flows").status_code == 200
        with api.client(headers={"Authorization": "Bearer shor"}) as client:
            assert client.get("/api/_flows").status_code == 401
    finally:
        api.stop()
    assert "FLOWQUEUE_API_TOKEN has only 5 characters" in api.log_path.read_text()


def test_auth_off_is_logged_at_start(env, tmp_path):
    # An empty variable counts as unset (env_ignore_empty): auth is off, and says so.
    api = ApiProcess(env, tmp_path / "api.log", FLOWQUEUE_API_TOKEN="")
    try:
        with api.client() as anonymous:
            assert anonymous.get("/api/_flows").status_code == 200
    finally:
        api.stop()
    log = api.log_path.read_text()
    assert "FLOWQUEUE_API_TOKEN is not set (or empty): authentication is OFF" in log
