"""The OpenAPI description (monitor/openapi.py) matches the routes the API serves."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp.test_utils import TestClient

from monitor.openapi import spec
from tests.monitor.test_api import api

_ = api


def _served(client: TestClient) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    app = client.app
    assert app is not None
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        routes.add((route.method.lower(), str(path)))
    return routes


async def test_every_route_is_described_and_every_description_is_served(
    api: tuple[TestClient, int, Path],
) -> None:
    client, _, _ = api
    described = {(m, p) for p, ops in spec()["paths"].items() for m in ops}
    assert described == _served(client)


async def test_the_description_is_served_and_well_formed(
    api: tuple[TestClient, int, Path],
) -> None:
    client, _, _ = api
    r = await client.get("/api/v1/openapi.json")
    assert r.status == 200
    doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    components = doc["components"]
    refs = re.findall(
        r'"\$ref": "#/components/(\w+)/(\w+)"', r.text if False else str(doc).replace("'", '"')
    )
    for kind, name in refs:
        assert name in components[kind], f"dangling $ref {kind}/{name}"
    for path, ops in doc["paths"].items():
        for op in ops.values():
            params = [components["parameters"][p["$ref"].rsplit("/", 1)[1]]
                      for p in op.get("parameters", [])]  # fmt: skip
            in_path = set(re.findall(r"{(\w+)}", path))
            assert in_path == {p["name"] for p in params if p["in"] == "path"}, path
            assert op.get("responses"), path
