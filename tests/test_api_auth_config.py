"""Auth settings and session logic in-process: which tokens start the API, how session
keys follow the token and FLOWQUEUE_SESSION_SECRET, expiry, and CORS (off unless
origins are configured). The HTTP behaviour is tested on real processes in
tests/test_api_session.py and tests/test_api_auth.py."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import pytest

from flowqueue import create_app
from flowqueue.api import create_api
from flowqueue.api.auth import CLOCK_SKEW_SECONDS, Auth, session_key
from flowqueue.errors import ConfigurationError
from flowqueue.settings import Settings

TOKEN = "config-test-token-0123456789abcdefghijkl"
SECRET = "config-test-secret-0123456789abcdefghijk"


def settings(**overrides: Any) -> Settings:
    return Settings(redis_url="memory://", workers="workers,tests.flows", **overrides)


def api_with(**overrides: Any) -> Any:
    return create_api(create_app(settings(**overrides)))


# -- which tokens start the API ------------------------------------------------------------


@pytest.mark.parametrize("token", ["x", "s3cret-token", "a" * 31])
def test_a_short_token_is_refused_with_how_to_make_one(token):
    with pytest.raises(ConfigurationError, match=r"secrets\.token_urlsafe\(32\)") as info:
        api_with(api_token=token)
    assert f"is {len(token)} characters long" in str(info.value)
    assert "FLOWQUEUE_API_ALLOW_SHORT_TOKEN=true" in str(info.value)


def test_a_32_character_token_is_accepted():
    api_with(api_token="a" * 32)


def test_a_short_token_starts_with_a_warning_when_allowed(caplog):
    with caplog.at_level(logging.WARNING, logger="flowqueue.api"):
        api_with(api_token="short", api_allow_short_token=True)
    assert "FLOWQUEUE_API_TOKEN has only 5 characters" in caplog.text


def test_a_short_session_secret_is_refused():
    with pytest.raises(ConfigurationError, match="FLOWQUEUE_SESSION_SECRET is 5 characters"):
        api_with(api_token=TOKEN, session_secret="short")


def test_a_token_with_surrounding_whitespace_is_refused():
    # A bearer header's value is trimmed, so such a token could never be sent.
    with pytest.raises(ConfigurationError, match="whitespace"):
        api_with(api_token=f"{TOKEN} ")


def test_a_bad_login_rate_limit_is_refused():
    with pytest.raises(ConfigurationError, match="FLOWQUEUE_API_LOGIN_RATE_LIMIT"):
        api_with(api_token=TOKEN, api_login_rate_limit="lots")


@pytest.mark.parametrize("environ", [{}, {"FLOWQUEUE_API_TOKEN": ""}])
def test_auth_off_is_a_warning_naming_the_variable(environ, monkeypatch, caplog):
    monkeypatch.delenv("FLOWQUEUE_API_TOKEN", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="flowqueue.api"):
        create_api(create_app(settings()))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("FLOWQUEUE_API_TOKEN is not set" in r.getMessage() for r in warnings)


# -- session keys and expiry ---------------------------------------------------------------


def auth(**overrides: Any) -> Auth:
    return Auth.from_settings(settings(**{"api_token": TOKEN, **overrides}))


def test_the_session_key_is_derived_and_is_not_the_token():
    key = session_key(TOKEN, None)
    assert key == session_key(TOKEN, None)  # every process derives the same key
    assert TOKEN.encode() not in key
    assert key != session_key(TOKEN + "x", None)
    assert key != session_key(TOKEN, SECRET)


def test_sessions_follow_the_token_and_the_secret():
    session = auth().new_session()
    assert auth().session_ok(session)  # another process, same settings
    assert not auth(api_token=TOKEN[::-1]).session_ok(session)  # token rotated
    assert not auth(session_secret=SECRET).session_ok(session)  # secret added
    with_secret = auth(session_secret=SECRET).new_session()
    assert auth(session_secret=SECRET).session_ok(with_secret)
    assert not auth(session_secret=SECRET[::-1]).session_ok(with_secret)  # secret rotated
    assert not auth(api_token=TOKEN[::-1], session_secret=SECRET).session_ok(with_secret)
    assert not auth().session_ok(with_secret)


def test_a_session_expires_after_its_ttl():
    keeper = auth(session_ttl_seconds=60)
    session = keeper.new_session()
    now = time.time()
    assert keeper.session_ok(session, now=now)
    assert keeper.session_ok(session, now=now + 55)
    assert not keeper.session_ok(session, now=now + 65)
    assert not keeper.session_ok(session, now=now + 365 * 86_400)


def test_a_session_from_a_clock_slightly_ahead_is_accepted_but_not_one_far_ahead():
    keeper = auth()
    session = keeper.new_session()
    now = time.time()
    assert keeper.session_ok(session, now=now - CLOCK_SKEW_SECONDS / 2)
    assert not keeper.session_ok(session, now=now - CLOCK_SKEW_SECONDS - 5)


def test_two_sessions_differ_and_neither_holds_the_token():
    keeper = auth()
    one, two = keeper.new_session(), keeper.new_session()
    assert one != two
    assert TOKEN not in one
    assert TOKEN not in two


# -- CORS ----------------------------------------------------------------------------------


def ask(api: Any, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    async def go() -> httpx.Response:
        async with api.router.lifespan_context(api):
            transport = httpx.ASGITransport(api)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.request(method, path, headers=headers)

    return asyncio.run(go())


PREFLIGHT = {
    "Origin": "https://dash.example.com",
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "authorization",
}


def test_cors_is_off_by_default():
    api = api_with(api_token=TOKEN)
    preflight = ask(api, "OPTIONS", "/api/_flows", PREFLIGHT)
    assert not any(h.startswith("access-control-") for h in preflight.headers)
    simple = ask(api, "GET", "/healthz", {"Origin": "https://dash.example.com"})
    assert simple.status_code == 200
    assert not any(h.startswith("access-control-") for h in simple.headers)


def test_cors_allows_only_the_configured_origins_with_credentials():
    api = api_with(api_token=TOKEN, api_cors_origins=["https://dash.example.com"])
    preflight = ask(api, "OPTIONS", "/api/_flows", PREFLIGHT)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://dash.example.com"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    simple = ask(api, "GET", "/healthz", {"Origin": "https://dash.example.com"})
    assert simple.headers["access-control-allow-origin"] == "https://dash.example.com"
    stranger = ask(api, "GET", "/healthz", {"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in stranger.headers
    refused = ask(api, "OPTIONS", "/api/_flows", {**PREFLIGHT, "Origin": "https://evil.example"})
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_cors_origins_come_comma_separated_or_as_json(monkeypatch):
    monkeypatch.setenv("FLOWQUEUE_API_CORS_ORIGINS", "https://a.example, http://localhost:3000")
    assert Settings().api_cors_origins == ["https://a.example", "http://localhost:3000"]
    monkeypatch.setenv("FLOWQUEUE_API_CORS_ORIGINS", '["https://a.example"]')
    assert Settings().api_cors_origins == ["https://a.example"]
    monkeypatch.setenv("FLOWQUEUE_API_CORS_ORIGINS", "")
    assert Settings().api_cors_origins == []


@pytest.mark.parametrize(
    "origin", ["*", "https://dash.example.com/", "dash.example.com", "https://a.example/x"]
)
def test_a_bad_cors_origin_is_refused_at_start(origin):
    with pytest.raises(ConfigurationError, match="FLOWQUEUE_API_CORS_ORIGINS"):
        api_with(api_token=TOKEN, api_cors_origins=[origin])
