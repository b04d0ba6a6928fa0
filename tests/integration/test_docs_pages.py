"""The documentation pages over HTTP: they name no URL outside the service, the service serves the Swagger UI files
they name, and any other path under /schema is the v2 404 envelope (tests/e2e/test_docs_offline.py renders them)."""

from __future__ import annotations

import re

import httpx
import pytest

from app.docs import ASSETS_PATH, DOCS_PAGES

# An attribute or CSS url() naming another host: scheme://, or a scheme-relative //.
EXTERNAL_REFERENCE = re.compile(
    r"""(?:\b(?:src|href|action)\s*=\s*["']?|url\(\s*["']?)(?:[a-z][a-z0-9+.-]*:)?//""", re.I
)
NOT_FOUND = {"error": True, "code": "NOT_FOUND", "message": "Not found", "status": 404}


@pytest.mark.parametrize("page", DOCS_PAGES)
async def test_docs_page_references_only_this_service(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert EXTERNAL_REFERENCE.findall(response.text) == []
    named = set(re.findall(r"""\b(?:src|href)\s*=\s*["']([^"']+)""", response.text))
    assert named == {
        f"{ASSETS_PATH}/swagger-ui-bundle.js",
        f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        f"{ASSETS_PATH}/swagger-ui.css",
        f"{ASSETS_PATH}/favicon-32x32.png",
    }
    for asset in named:
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 100, asset


def test_the_check_for_external_references_finds_them() -> None:
    page = """<link href='https://cdn.example/x.css'><script src="//cdn.example/x.js"></script>
    <style>@font-face { src: url( "http://fonts.example/f.woff2") }</style><a href=/local>"""
    assert len(EXTERNAL_REFERENCE.findall(page)) == 3


async def test_swagger_ui_files_have_their_content_types(client: httpx.AsyncClient) -> None:
    types = {
        "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
        "swagger-ui.css": "text/css; charset=utf-8",
        "favicon-32x32.png": "image/png",
    }
    for name, content_type in types.items():
        response = await client.get(f"{ASSETS_PATH}/{name}")
        assert (response.status_code, response.headers["content-type"]) == (200, content_type)


@pytest.mark.parametrize(
    "path",
    [
        "/schema/nope",
        "/schema/nope.html",
        "/schema/nope.json",
        "/schema/openapi.yaml",
        "/schema/scalar",
        "/schema/redoc",
        "/schema/a/b",
        "/schema/assets",
        "/schema/assets/",
        "/schema/assets/nope.js",
        "/schema/assets/%2e%2e/%2e%2e/README.md",
    ],
)
async def test_unknown_docs_path_is_the_v2_not_found_envelope(client: httpx.AsyncClient, path: str) -> None:
    elsewhere = await client.get("/no-such-page")
    response = await client.get(path)
    assert (response.status_code, response.headers["content-type"], response.json()) == (
        404,
        "application/json",
        NOT_FOUND,
    )
    assert response.json() == elsewhere.json()
