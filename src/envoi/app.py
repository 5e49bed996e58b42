"""The ASGI application: REST API, error rendering, and (unless told not to) the delivery worker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from envoi import __version__
from envoi.access.admin_api import router as access_router
from envoi.access.cache import AccessCache, hear_access_changes
from envoi.body_limit import CODE as TOO_LARGE
from envoi.body_limit import BodyLimit
from envoi.bounces.api import router as bounces_router
from envoi.bounces.listener import start_bounces
from envoi.campaigns.api import router as deliveries_router
from envoi.campaigns.profiles_api import router as profiles_router
from envoi.channels.api import router as outbox_router
from envoi.console.routes import STATIC_DIR as CONSOLE_STATIC_DIR
from envoi.console.routes import router as console_router
from envoi.db.listen import Listener
from envoi.db.outage import outages, store_unavailable
from envoi.delivery.api import router as quarantine_router
from envoi.delivery.listen import ring_on_new_events
from envoi.delivery.worker import Worker
from envoi.errors import EnvoiError, RetryLater, input_problems, invalid
from envoi.events.api import OPENAPI_SCHEMAS
from envoi.events.api import router as events_router
from envoi.notifications.api import router as notifications_router
from envoi.notifications.failures import watch_failure_rates
from envoi.notifications.hub import follow_notifications, hear_notifications
from envoi.nul_guard import NulGuard
from envoi.observability.api import router as metrics_router
from envoi.observability.health import router as health_router
from envoi.openapi import document_errors
from envoi.providers.api import receipts_router
from envoi.providers.api import router as providers_router
from envoi.providers.dkim_api import router as dkim_router
from envoi.providers.routing import hear_provider_changes
from envoi.reports.api import router as reports_router
from envoi.reports.watch import watch_queue
from envoi.runtime import Runtime
from envoi.settings import Settings
from envoi.soap.api import router as soap_router
from envoi.templates.api import router as templates_router
from envoi.templates.layouts_api import router as layouts_router
from envoi.templates.testing_api import router as template_testing_router
from envoi.tracking.api import router as tracking_router
from envoi.webhooks.api import router as webhooks_router
from envoi.webhooks.sender import WebhookSender
from envoi.workflows.api import router as workflows_router
from envoi.workflows.scheduler import Scheduler

log = structlog.get_logger(__name__)


def create_app(settings: Settings, *, run_worker: bool = True, runtime: Runtime | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = app.state.runtime = runtime or Runtime.create(settings)
        bounce_listener = await start_bounces(settings, rt.sessionmaker)  # when ENVOI_BOUNCE_LISTEN_PORT is set
        # Everything loaded so far lives for the whole process: keep it out of the collector's scans, and
        # collect young objects less often, so a collection never stalls deliveries for tens of milliseconds.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 50, 100)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        app.state.stop_soon = lambda: loop.call_soon_threadsafe(stop.set)  # envoi.server calls it at SIGTERM
        app.state.stopping = stop  # /readyz answers 503 once it is set
        worker_task = listener_task = alerts_task = scheduler_task = webhooks_task = watch_task = None
        rt.notifications.start()
        notifications_task = asyncio.create_task(
            follow_notifications(
                rt.notifications,
                settings.resolved_database_url(),
                rt.sessionmaker,
                settings.notification_poll_seconds,
                stop,
            )
        )
        if run_worker:
            worker = Worker(settings, rt.sessionmaker, rt.channels, rt.outbound, rt.wakeup)
            worker_task = asyncio.create_task(worker.run(stop))
            alerts_task = asyncio.create_task(watch_failure_rates(settings, rt.sessionmaker, stop))
            watch_task = asyncio.create_task(watch_queue(settings, rt.sessionmaker, stop))
            webhooks_task = asyncio.create_task(WebhookSender(settings, rt.sessionmaker).run(stop))
            if settings.scheduler:  # on PostgreSQL, only the process holding the leader lock runs it
                scheduler_task = asyncio.create_task(Scheduler(settings, rt.sessionmaker).run(stop))
        if not settings.is_sqlite:  # one LISTEN connection for all this process hears from the others
            listener = Listener(settings.resolved_direct_url())
            hear_notifications(listener, rt.notifications)
            hear_access_changes(listener, app.state.key_cache)
            hear_provider_changes(listener, rt.providers)
            if run_worker:
                ring_on_new_events(listener, rt.wakeup)
            listener_task = asyncio.create_task(listener.run(stop))
        try:
            yield
        finally:
            stop.set()
            if bounce_listener is not None:
                bounce_listener.close()  # a report cut short was not answered 250: its server sends it again
            rt.notifications.close()  # open streams end (envoi.server ends them earlier, at the signal)
            if listener_task is not None:
                listener_task.cancel()
            # The worker finishes the batch in hand: what it sent is recorded before we exit.
            tasks = (
                worker_task, listener_task, alerts_task, watch_task, scheduler_task, webhooks_task, notifications_task
            )  # fmt: skip
            await asyncio.gather(*(t for t in tasks if t), return_exceptions=True)
            if runtime is None:
                await rt.aclose()

    app = FastAPI(
        title="Envoi",
        version=__version__,
        summary="Transactional messaging: push events, Envoi renders the published template and delivers it.",
        lifespan=lifespan,
    )
    app.add_middleware(NulGuard)  # added first, so it runs inside BodyLimit and reads only what the limit lets in
    app.add_middleware(BodyLimit, max_bytes=settings.request_max_bytes)
    app.state.key_cache = AccessCache()  # who each credential is, forgotten at every change
    if runtime is not None:
        app.state.runtime = runtime
    for router in (
        events_router,
        notifications_router,
        templates_router,
        template_testing_router,
        layouts_router,
        outbox_router,
        quarantine_router,
        bounces_router,
        providers_router,
        dkim_router,
        workflows_router,
        profiles_router,
        deliveries_router,
        tracking_router,
        webhooks_router,
        reports_router,
        access_router,
        receipts_router,
        soap_router,
        metrics_router,
        health_router,
        console_router,
    ):
        app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=CONSOLE_STATIC_DIR), name="console-static")
    _install_error_handlers(app)
    _add_openapi_schemas(app, OPENAPI_SCHEMAS)

    @app.get("/", include_in_schema=False, response_model=None)
    async def index(request: Request) -> dict[str, Any] | Response:
        """A browser goes to the console; API clients get where things are, as JSON."""
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/console/", status_code=303)
        return {"name": "Envoi", "version": __version__, "docs": "/docs", "api": "/api/v1", "console": "/console/"}

    return app


def _add_openapi_schemas(app: FastAPI, schemas: dict[str, dict[str, Any]]) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            document.setdefault("components", {}).setdefault("schemas", {}).update(schemas)
            document_errors(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _error(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": body}, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(EnvoiError)
    async def envoi_error(_request: Request, error: EnvoiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        if isinstance(error, RetryLater):
            headers = {"Retry-After": str(error.retry_after)}
        return _error(error.status_code, error.to_dict(), headers)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, error: SQLAlchemyError) -> JSONResponse:
        """The database is away (any route, the key check included): 503 and when to retry. Otherwise a bug."""
        unavailable = store_unavailable(error)
        if unavailable is None:
            raise error
        outages.refused(request.url.path, unavailable)
        return await envoi_error(request, unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: TOO_LARGE}
        code = codes.get(error.status_code, "bad_request")
        return _error(error.status_code, {"code": code, "message": str(error.detail)}, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        failure = invalid(input_problems(error.errors()), prefix=True)
        return _error(failure.status_code, failure.to_dict())
