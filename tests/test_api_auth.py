"""FLOWQUEUE_API_TOKEN: every route but /healthz and trigger resume needs it; SSE routes
also take the dashboard's login cookie. Checked for every route in the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api_harness import ApiProcess

pytestmark = pytest.mark.e2e
TOKEN = "s3cret-token"
PUBLIC = {("GET", "/healthz"), ("POST", "/api/_flows/triggers/{trigger_id}")}
PUBLIC |= {("POST", "/api/_login")}
FILL = {"flow": "nap", "run_id": "0190a4e2-0000-7000-8000-000000000000", "trigger_id": "trg_x"}


@pytest.fixture(scope="module")
def secured(cluster, tmp_path_factory) -> Iterator[ApiProcess]:
    log = tmp_path_factory.mktemp("api-auth") / "api.log"
    process = ApiProcess(cluster.env, log, FLOWQUEUE_API_TOKEN=TOKEN)
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


def test_sse_accepts_the_login_cookie(secured):
    with secured.client() as browser:
        assert browser.post("/api/_login", json={"token": "nope"}).status_code == 401
        assert browser.get("/api/_flows/nap/runs/x/stream").status_code == 401
        assert browser.post("/api/_login", json={"token": TOKEN}).status_code == 204
        # The cookie opens the streams (404: no such run) and the docs, not the other routes.
        assert browser.get(f"/api/_flows/nap/runs/{FILL['run_id']}/stream").status_code == 404
        assert browser.get("/docs").status_code == 200
        assert browser.get("/api/_flows").status_code == 401
