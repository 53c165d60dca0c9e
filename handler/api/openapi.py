"""The OpenAPI schema (``/openapi.json``, ``/docs``) in the loaded model's words: its backbone and class names.

FastAPI builds the schema on first request, after the model is loaded; the ``classes`` option (a query
parameter of ``/segment``, a field of ``POST /jobs``) then lists the names the model knows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from handler.api.deps import resolve
from handler.core.errors import ModelFileError
from handler.engine import get_segmenter


def _describe_classes(node: Any, text: str) -> None:
    """Set the description of every ``classes`` parameter and property under ``node``."""
    if isinstance(node, dict):
        if node.get("name") == "classes" and node.get("in") == "query":
            node["description"] = text
            node.get("schema", {}).pop("description", None)
        properties = node.get("properties")
        if isinstance(properties, dict) and isinstance(properties.get("classes"), dict):
            properties["classes"]["description"] = text
        for value in node.values():
            _describe_classes(value, text)
    elif isinstance(node, list):
        for value in node:
            _describe_classes(value, text)


def model_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """``app.openapi``: FastAPI's schema with the model's backbone and class names filled in (cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        try:
            segmenter = resolve(app, get_segmenter)
        except ModelFileError:
            return schema  # not cached: the next request tries again once the model can load
        names = ", ".join(segmenter.class_names)
        schema["info"]["description"] = (
            f"Instance segmentation (PointRend {segmenter.backbone}, {len(segmenter.class_names)} classes). "
            + app.description
        )
        _describe_classes(schema, f"keep only these of the model's class names, comma-separated: {names}")
        app.openapi_schema = schema
        return schema

    return openapi
