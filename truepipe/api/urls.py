"""URLs under /api/v1/. Whatever ninja routes answers; the rest still gets the API's error envelope."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path, re_path

from truepipe.api.errors import error_response
from truepipe.api.v1 import api


def _enveloped(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Turn ninja's few plain-text 4xx answers (405, the root's 404) into the JSON envelope."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except Http404:  # ninja's root view raises it
            return unknown_address(request)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith(
            "application/json"
        ):
            allowed = response.get("Allow", "")
            envelope = error_response(405, f"{request.method} is not allowed here; use {allowed}.")
            envelope["Allow"] = allowed
            return envelope
        return response

    return wrapper


def unknown_address(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    return error_response(404, f"There is no API endpoint at {request.path}.")


def _wrap(patterns: list[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = _enveloped(pattern.callback)
        else:
            _wrap(pattern.url_patterns)
    return patterns


_patterns, _app_name, _namespace = api.urls
urlpatterns = [
    path("", ([*_wrap(_patterns), re_path(r"^.*$", unknown_address)], _app_name, _namespace)),
]
