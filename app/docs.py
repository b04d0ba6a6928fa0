"""The API documentation pages: Swagger UI at /schema and /schema/swagger, its scripts, styles and icon served by
the service itself, so that the pages work on a machine without network access.

The files are swagger-ui-dist at the version the Makefile pins (`make docs-assets` puts them in vendor/swagger-ui;
`make run` and `make test` do it first). Swagger UI 5 is the first to render OpenAPI 3.1, the version Litestar
writes. Any other path under /schema answers the v2 404 envelope, as every unknown path does.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response, Router
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin, SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_404_NOT_FOUND

from app.config import PROJECT_ROOT
from app.errors import handle_http_exception

log = logging.getLogger("app.docs")

DOCS_PATH = "/schema"
ASSETS_PATH = f"{DOCS_PATH}/assets"
# The pages a reader opens: Swagger UI at the root and, for links made when the root was another UI, at /swagger.
DOCS_PAGES = (DOCS_PATH, f"{DOCS_PATH}/swagger")
SWAGGER_UI_DIR = PROJECT_ROOT / "vendor" / "swagger-ui"
SWAGGER_UI_ASSETS = ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png")


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI with every URL on this service (Litestar's defaults point at a CDN, the favicon too)."""
    return [
        SwaggerRenderPlugin(
            path=["/", "/swagger"],
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
        )
    ]


def docs_router() -> Router:
    """The router Litestar adds the documentation pages and /schema/openapi.json to, serving the Swagger UI files."""
    missing = [name for name in SWAGGER_UI_ASSETS if not (SWAGGER_UI_DIR / name).is_file()]
    if missing:
        log.warning(
            "the API documentation pages will be blank: %s is missing %s; run `make docs-assets`",
            SWAGGER_UI_DIR,
            ", ".join(missing),
        )
    assets = create_static_files_router(
        path=ASSETS_PATH.removeprefix(DOCS_PATH), directories=[SWAGGER_UI_DIR], name="docs-assets"
    )
    return Router(
        DOCS_PATH,
        route_handlers=[assets],
        include_in_schema=False,
        after_request=refuse_html_not_found,
        exception_handlers={NotFoundException: plain_not_found},
    )


def refuse_html_not_found(response: Response[Any]) -> Response[Any]:
    """Litestar answers an unknown page under /schema with an HTML 404 page of its own: raise instead, so that it is
    answered in the v2 envelope like any other unknown path."""
    if response.status_code == HTTP_404_NOT_FOUND:
        raise NotFoundException()
    return response


def plain_not_found(request: Request[Any, Any, Any], _: NotFoundException) -> Response[bytes]:
    """The v2 404 with the usual "Not found", not the static files' message, which echoes the requested path."""
    return handle_http_exception(request, NotFoundException())
