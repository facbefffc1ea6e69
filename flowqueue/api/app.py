"""``create_api``: the FastAPI app of one API process (run any number of them)."""

from __future__ import annotations

import gc
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from flowqueue.api import (
    routes_events,
    routes_flows,
    routes_ops,
    routes_runs,
    routes_triggers,
    routes_webhooks,
)
from flowqueue.api.auth import Auth, require_token
from flowqueue.api.body import JSON_VALUE_SCHEMA
from flowqueue.api.context import ApiContext
from flowqueue.api.problems import Problem, install_handlers
from flowqueue.errors import ConfigurationError
from flowqueue.runtime.app import default_app
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings

# What a browser sends as Origin: scheme, host (or [IPv6]) and an optional port.
ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(:[0-9]{1,5})?")
PROBLEM_SCHEMA = Problem.model_json_schema()


def create_api(app: Any | None = None) -> FastAPI:
    """The HTTP API over a Celery app with flowqueue installed (default:
    ``flowqueue.app``, configured by ``FLOWQUEUE_*`` variables)."""
    fq = flowqueue_of(default_app() if app is None else app)
    fq.flows  # import the flows now: a broken workers package fails at start  # noqa: B018

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        api.state.flowqueue = ctx = ApiContext.open(fq)
        # What is loaded by now lives as long as the process: out of the collector's
        # reach, a full collection does not walk it (the live streams' tail latency).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await ctx.store.aclose()

    api = FastAPI(
        title="flowqueue",
        summary="Event-sourced flows on Celery: runs, live streams, triggers, workers.",
        version=version("flowqueue"),
        lifespan=lifespan,
        openapi_url=None,  # served below, behind the token (or the login cookie)
        docs_url=None,
        redoc_url=None,
    )
    api.state.auth = Auth.from_settings(fq.settings)  # ConfigurationError now, not later
    routes_webhooks.check_webhooks(fq.flows, fq.settings)  # after: a fatal error comes alone
    _add_cors(api, fq.settings)
    install_handlers(api)
    modules = (
        routes_ops,
        routes_flows,
        routes_runs,
        routes_events,
        routes_webhooks,
        routes_triggers,
    )
    for module in modules:
        for router in module.ROUTERS:
            api.include_router(router)
    _add_problem_schema(api)
    _add_docs(api)
    _add_dashboard(api)
    return api


DOCS_DIR = Path(__file__).with_name("docs")
# Swagger UI is served from this package (docs/assets) and the page has no inline script or
# style, so only our own files run and load, nothing is sent elsewhere and nobody frames it
# (tests/test_docs_browser.py renders it and calls a route under this policy). data: images:
# Swagger UI's icons.
DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _add_docs(api: FastAPI) -> None:
    docs = APIRouter(dependencies=[Depends(require_token)], include_in_schema=False)
    page = (DOCS_DIR / "index.html").read_bytes()

    @docs.get("/openapi.json")
    async def openapi_json() -> JSONResponse:
        return JSONResponse(api.openapi())

    @docs.get("/docs")
    async def swagger() -> HTMLResponse:
        return HTMLResponse(page, headers=DOCS_HEADERS)

    api.include_router(docs)
    # Public: upstream Swagger UI files and our init script, nothing about this deployment
    # (the schema itself stays behind the token); browsers can cache them (ETag).
    api.mount("/docs/assets", StaticFiles(directory=DOCS_DIR / "assets"), name="docs-assets")


DASHBOARD_DIR = Path(__file__).with_name("dashboard")
# The dashboard's page is a shell: public (it shows the login form when a token is set),
# no data in it; every number comes from the API, behind the token or the login cookie.
# Only its own files run, nothing is sent elsewhere (no CDN), nobody frames it.
DASHBOARD_HEADERS = DOCS_HEADERS | {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'",
}


def _add_dashboard(api: FastAPI) -> None:
    page = (DASHBOARD_DIR / "index.html").read_bytes()

    @api.get("/", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(page, headers=DASHBOARD_HEADERS)

    api.mount(
        "/dashboard/assets",
        StaticFiles(directory=DASHBOARD_DIR / "assets"),
        name="dashboard-assets",
    )


def _add_cors(api: FastAPI, settings: Settings) -> None:
    """CORS only for the configured origins (none by default: no CORS headers at all)."""
    origins = settings.api_cors_origins
    if not origins:
        return
    for origin in origins:
        if not ORIGIN.fullmatch(origin):
            raise ConfigurationError(
                f"FLOWQUEUE_API_CORS_ORIGINS has {origin!r}; list origins as "
                "scheme://host[:port] with no path or trailing slash, e.g. "
                "'https://dash.example.com' ('*' is refused: credentials are allowed)."
            )
    api.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=True,  # the session cookie, for a dashboard on a sibling origin
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        expose_headers=["Location", "Retry-After"],
    )


def _add_problem_schema(api: FastAPI) -> None:
    """Error responses refer to ``#/components/schemas/Problem`` and JSON bodies to
    ``JsonValue``; make sure both exist."""
    build = api.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # FastAPI's: built on the first call, then cached
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(Problem=PROBLEM_SCHEMA, JsonValue=JSON_VALUE_SCHEMA)
        return schema

    api.openapi = openapi  # type: ignore[method-assign]
