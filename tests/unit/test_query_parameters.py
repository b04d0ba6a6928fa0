"""The unknown-query-parameter check knows a route's query parameters wherever they are declared."""

from __future__ import annotations

from typing import Annotated

from litestar import Litestar, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.testing import TestClient

from app.errors import EXCEPTION_HANDLERS
from app.query_parameters import QUERY_PREFIXES, UnknownQueryParametersMiddleware


def paging(per_page: FromQuery[int] = 10) -> int:
    """A dependency's own query parameter is the route's too."""
    return per_page


@get(
    "/items/{item_id:int}",
    dependencies={"paging": Provide(paging, sync_to_thread=False)},
    opt={QUERY_PREFIXES: ("f.",)},
)
async def items(
    item_id: FromPath[int],
    paging: NamedDependency[int],
    plain: FromQuery[int] = 1,
    aliased: Annotated[int, QueryParameter(name="publicName")] = 3,
    header: Annotated[str | None, HeaderParameter(name="x-thing")] = None,
) -> dict[str, int]:
    return {"item_id": item_id, "paging": paging, "plain": plain, "aliased": aliased}


def client() -> TestClient[Litestar]:
    app = Litestar([items], middleware=[UnknownQueryParametersMiddleware], exception_handlers=EXCEPTION_HANDLERS)
    return TestClient(app)


def test_every_declared_query_parameter_and_prefix_is_accepted() -> None:
    with client() as http:
        response = http.get("/items/7?per_page=5&plain=6&publicName=9&f.anything=1")
    assert response.status_code == 200, response.text
    assert response.json() == {"item_id": 7, "paging": 5, "plain": 6, "aliased": 9}


def test_path_header_dependency_and_private_names_are_not_query_parameters() -> None:
    with client() as http:
        response = http.get("/items/7?item_id=1&x-thing=a&aliased=2&paging=3")
    assert response.status_code == 400
    accepted = "unknown query parameter; this route accepts: per_page, plain, publicName, f.<name>"
    assert response.json()["validationResult"]["reason"] == {
        "item_id": accepted,
        "x-thing": accepted,
        "aliased": accepted,
        "paging": accepted,
    }
