"""``create_api``: the FastAPI app of one API process (run any number of them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from flowqueue.api import routes_events, routes_flows, routes_ops
from flowqueue.api.auth import require_token_or_cookie
from flowqueue.api.context import ApiContext
from flowqueue.api.problems import Problem, install_handlers
from flowqueue.extension import flowqueue_of


def create_api(app: Any | None = None) -> FastAPI:
    """The HTTP API over a Celery app with flowqueue installed (default:
    ``flowqueue.app``, configured by ``FLOWQUEUE_*`` variables)."""
    if app is None:
        from flowqueue.celery_app import default_app

        app = default_app()
    fq = flowqueue_of(app)
    fq.registry  # import the flows now: a broken workers package fails at start  # noqa: B018

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        ctx = ApiContext.open(fq)
        api.state.flowqueue = ctx
        try:
            yield
        finally:
            await ctx.aclose()

    api = FastAPI(
        title="flowqueue",
        summary="Event-sourced flows on Celery: runs, live streams, triggers, workers.",
        version=_version(),
        lifespan=lifespan,
        openapi_url=None,  # served below, behind the token (or the login cookie)
        docs_url=None,
        redoc_url=None,
    )
    install_handlers(api)
    for module in (routes_ops, routes_flows, routes_events):
        for router in module.ROUTERS:
            api.include_router(router)
    _add_problem_schema(api)
    _add_docs(api)
    return api


def _add_docs(api: FastAPI) -> None:
    docs = APIRouter(dependencies=[Depends(require_token_or_cookie)], include_in_schema=False)

    @docs.get("/openapi.json")
    async def openapi_json() -> JSONResponse:
        return JSONResponse(api.openapi())

    @docs.get("/docs")
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="flowqueue API")

    api.include_router(docs)


def _add_problem_schema(api: FastAPI) -> None:
    """Error responses refer to ``#/components/schemas/Problem``; make sure it exists."""
    build = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = build()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.setdefault("Problem", Problem.model_json_schema())
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def _version() -> str:
    from flowqueue import __version__

    return __version__
