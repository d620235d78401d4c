"""Hearth's web console under ``/ui``: server-rendered pages (Jinja2 through Litestar's
template support) over the same services and the same permission table as the API.

``routers(settings)`` gives ``api.app`` two routers: the pages (session cookie
-> person, CSRF on every form, the API's guard ``authorize``, HTML error
pages, security headers; none of it in the OpenAPI document) and the static
files (one stylesheet, one small script). ``template_config()`` is the app's
template engine. The pages work without JavaScript; the script only makes a
running run's event log live (``EventSource``) and confirms destructive
buttons.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.auth import authorize
from api.deps import DEPENDENCIES
from api.ui import account, audit, fleet, pulls, session
from api.ui.web import EXCEPTION_HANDLERS, age, badge_class
from engine.settings import Settings

HERE = Path(__file__).parent


def _engine_callback(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["age"] = age
    engine.engine.filters["badge"] = badge_class
    engine.engine.filters["short"] = lambda rev: (rev or "")[:10] or "—"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine,
                          engine_callback=_engine_callback)


def routers(settings: Settings) -> list[Router]:
    pages = Router(
        "/", route_handlers=[*fleet.ROUTES, *pulls.ROUTES, *audit.ROUTES, *account.ROUTES,
                             *session.ROUTES],
        guards=[authorize], dependencies=DEPENDENCIES, include_in_schema=False,
        exception_handlers=EXCEPTION_HANDLERS,
        # outermost first: headers on everything, then who is calling, then CSRF
        middleware=[session.security_headers, session.session_middleware,
                    session.csrf_middleware(settings.secret_key)])
    static = create_static_files_router(
        path="/ui/static", directories=[HERE / "static"], include_in_schema=False,
        middleware=[session.security_headers], cache_control=None)
    return [pages, static]
