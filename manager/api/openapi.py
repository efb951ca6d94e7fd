"""OpenAPI 3.1 document generated from the route table and its pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter

from manager.api.framework import Route
from manager.api.permissions import Permission
from manager.api.schemas.common import ErrorBody

_REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def build_openapi(routes: list[Route], *, version: str) -> dict[str, Any]:
    """All models are rendered in one pydantic pass, which gives two models that share a class
    name (say, two `TokenOut`s in different modules) distinct component names."""
    paths: dict[str, dict[str, Any]] = {}
    inputs: list[tuple[str, Any, TypeAdapter[Any]]] = [
        ("error", "serialization", TypeAdapter(ErrorBody))
    ]
    for i, route in enumerate(routes):
        if route.body is not None:
            inputs.append((f"body{i}", "validation", TypeAdapter(route.body)))
        if route.query is not None:
            inputs.append((f"query{i}", "validation", TypeAdapter(route.query)))
        if route.response not in (None, "text"):
            inputs.append((f"response{i}", "serialization", TypeAdapter(route.response)))
    rendered, definitions = TypeAdapter.json_schemas(inputs, ref_template=_REF)
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))

    def ref(key: str, mode: str) -> dict[str, Any]:
        return dict(rendered[(key, mode)])  # type: ignore[index]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            return dict(schemas[schema["$ref"].rsplit("/", 1)[1]])
        return schema

    error = ref("error", "serialization")
    for i, route in enumerate(routes):
        path = _PARAM.sub(r"{\1}", route.path)
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__ + "_" + route.method.lower(),
            "tags": list(route.tags) or ["api"],
            "responses": {},
            "x-permission": route.permission.value,
        }
        params = [
            {"name": n, "in": "path", "required": True, "schema": _path_schema(n)}
            for n in _PARAM.findall(route.path)
        ]
        if route.query is not None:
            qschema = resolve(ref(f"query{i}", "validation"))
            required = set(qschema.get("required", []))
            for name, prop in qschema.get("properties", {}).items():
                params.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(f"body{i}", "validation")}},
            }
        if route.response is None:
            op["responses"][str(route.status if route.status != 200 else 204)] = {
                "description": "Done"
            }
        elif route.response == "text":
            op["responses"][str(route.status)] = {
                "description": "OK",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        else:
            op["responses"][str(route.status)] = {
                "description": "OK",
                "content": {"application/json": {"schema": ref(f"response{i}", "serialization")}},
            }
        for status in _error_statuses(route):
            op["responses"][status] = {
                "description": "Error",
                "content": {"application/json": {"schema": error}},
            }
        if route.permission not in (Permission.PUBLIC, Permission.CLUSTER):
            op["security"] = [{"bearer": []}, {"cookie": []}]
        paths.setdefault(path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Berth API", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "berth_session"},
            },
        },
    }


def _error_statuses(route: Route) -> list[str]:
    statuses = ["400", "404", "422"]
    if route.permission is not Permission.PUBLIC:
        statuses += ["401", "403"]
    if route.body is not None:
        statuses += ["409", "413"]
    return statuses


def _path_schema(name: str) -> dict[str, str]:
    if name.endswith("_id"):
        return {"type": "string", "format": "uuid"}
    return {"type": "string"}
