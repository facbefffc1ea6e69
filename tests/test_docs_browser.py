"""``/docs`` in a real headless Chromium with no network: Swagger UI comes from the
package, renders the schema under the page's Content-Security-Policy, and nothing leaves
127.0.0.1.

Needs Debian's ``chromium`` at /usr/bin/chromium (``.ci/run`` installs it); Playwright's
own browser downloads are never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.api_harness import ApiProcess
from tests.worker_harness import Cluster

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="NO BROWSER: /usr/bin/chromium is missing, so /docs was NOT tested in a "
        "browser; install it with `apt-get install -y chromium` (.ci/run does).",
    ),
]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "docs-browser-test-token-0123456789abcdef"
CSP_MARK = "Content Security Policy"
# Collects CSP violations inside the page (injected by the browser, not the page).
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture(scope="module")
def secured(redis_server, tmp_path_factory) -> Iterator[ApiProcess]:
    cluster = Cluster(redis_server.url, tmp_path_factory.mktemp("docs"))
    process = ApiProcess(cluster.env, cluster.log_dir / "api.log", FLOWQUEUE_API_TOKEN=TOKEN)
    yield process
    process.stop()
    cluster.close()


def test_docs_render_offline_under_the_csp(secured):
    from playwright.sync_api import Route, sync_playwright

    left: list[str] = []  # requests that tried to leave the machine
    console: list[str] = []
    errors: list[str] = []

    def local_only(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme == "data" or url.hostname == "127.0.0.1":
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {TOKEN}"})
            context.route("**/*", local_only)
            page = context.new_page()
            page.add_init_script(WATCH_CSP)
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: errors.append(str(e)))

            response = page.goto(f"{secured.url}/docs")
            assert response is not None
            assert response.status == 200
            csp = response.headers["content-security-policy"]
            assert "script-src 'self';" in csp
            assert "style-src 'self';" in csp
            assert "frame-ancestors 'none'" in csp

            title = page.locator(".swagger-ui .info .title")
            title.wait_for(timeout=30_000)
            assert "flowqueue" in title.inner_text()
            flows = page.locator(".opblock-summary-path[data-path='/api/_flows']")
            flows.first.wait_for(timeout=30_000)
            assert page.locator(".opblock").count() >= 10  # every operation is listed
            # Try a route from the page: its fetch is allowed (connect-src 'self').
            flows.first.click()
            page.locator("button.try-out__btn").first.click()
            page.locator("button.execute").first.click()
            answer = page.locator(".live-responses-table tr.response .response-col_status").first
            answer.wait_for(timeout=30_000)
            assert answer.inner_text().strip() == "200"
            assert "example-flow" in page.locator(".live-responses-table").first.inner_text()
            page.wait_for_load_state("networkidle")

            assert left == []
            assert errors == []
            assert [line for line in console if line.startswith("error")] == []
            assert page.evaluate("window.__csp") == []

            # The policy is enforced: an inline script is refused, and would be seen above.
            page.evaluate(
                """() => { const s = document.createElement("script");
                s.textContent = "window.__ran = true"; document.body.append(s); }"""
            )
            page.wait_for_function("window.__csp.length > 0", timeout=10_000)
            assert page.evaluate("window.__ran === undefined")
            assert any(CSP_MARK in line for line in console)
        finally:
            browser.close()


def test_docs_need_the_token_and_the_assets_do_not(secured):
    with httpx.Client(base_url=secured.url, timeout=30) as anonymous:
        assert anonymous.get("/docs").status_code == 401
        assert anonymous.get("/openapi.json").status_code == 401
        bundle = anonymous.get("/docs/assets/swagger-ui/swagger-ui-bundle.js")
        assert bundle.status_code == 200
        assert "SwaggerUIBundle" in bundle.text
        assert anonymous.get("/docs/assets/init.js").status_code == 200
        assert anonymous.get("/docs/assets/../index.html").status_code == 404
        cached = anonymous.get(
            "/docs/assets/swagger-ui/swagger-ui.css",
            headers={"If-None-Match": bundle.headers["etag"]},
        )
        assert cached.status_code == 200  # another file's ETag does not match
        again = anonymous.get(
            "/docs/assets/swagger-ui/swagger-ui-bundle.js",
            headers={"If-None-Match": bundle.headers["etag"]},
        )
        assert again.status_code == 304  # browsers revalidate instead of downloading again
