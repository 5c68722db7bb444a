"""One error shape for every 4xx the API returns, and the handlers that produce it.

    {"error": {"status": 400, "code": "invalid", "message": "A sentence.", "fields": {"name": "Required."}}}

Service errors (truepipe.core.errors) carry status, code, message and fields
already; everything else a request can trigger (bad JSON, a wrong type in a
query string, an id too large for the database) is translated here so a
client never sees a traceback or Django's HTML error pages.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import (
    ObjectDoesNotExist,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from truepipe.core.errors import ServiceError

logger = logging.getLogger(__name__)

# The status codes the API uses, and the code word a client can switch on.
CODES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    428: "precondition_required",
    429: "throttled",
}


class ApiError(Exception):
    """An error raised by the API layer itself (as opposed to the service layer)."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, fields: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "invalid")
        self.message = message
        self.fields = fields or {}


def envelope(status: int, code: str, message: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "fields": fields or {}}}


def error_response(
    status: int, message: str, *, code: str | None = None, fields: dict[str, str] | None = None
) -> JsonResponse:
    return JsonResponse(
        envelope(status, code or CODES.get(status, "invalid"), message, fields), status=status
    )


def _field_name(loc: tuple | list) -> str:
    # ("body", "payload", "amount") -> "amount"; ("query", "limit") -> "limit"; list items -> "emails.2".
    parts = [str(part) for part in loc[1:] if part not in ("payload", "filters", "body")]
    return ".".join(parts) or str(loc[0])


def _readable(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "missing":
        return "Required."
    if kind == "extra_forbidden":
        return "Unknown field."
    message = str(error.get("msg", "Invalid value."))
    message = message.removeprefix("Value error, ")
    return message if message.endswith(".") else message + "."


def validation_fields(errors: list[dict[str, Any]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in errors:
        loc = error.get("loc") or ("body",)
        if error.get("type") == "extra_forbidden" and loc[0] == "query":
            fields.setdefault(_field_name(loc), "Unknown parameter.")
            continue
        fields.setdefault(_field_name(loc), _readable(error))
    return fields


def _validation_message(fields: dict[str, str]) -> str:
    name, reason = next(iter(fields.items()))
    more = f" (and {len(fields) - 1} more)" if len(fields) > 1 else ""
    return f"{name.replace('_', ' ').capitalize()}: {reason}{more}"


def install(api: NinjaAPI) -> None:
    """Register the handlers on `api`. Lookups follow the exception's MRO, most specific first."""

    def respond(request: HttpRequest, status: int, code: str, message: str, fields=None) -> HttpResponse:
        return api.create_response(request, envelope(status, code, message, fields), status=status)

    @api.exception_handler(ServiceError)
    def service_error(request: HttpRequest, exc: ServiceError) -> HttpResponse:
        return respond(request, exc.status, exc.code, exc.message, exc.fields)

    @api.exception_handler(ApiError)
    def api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
        return respond(request, exc.status, exc.code, exc.message, exc.fields)

    @api.exception_handler(NinjaValidationError)
    def validation_error(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        fields = validation_fields(exc.errors)
        return respond(request, 400, "invalid", _validation_message(fields), fields)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return respond(
            request,
            401,
            "unauthenticated",
            "Log in, or send an API token as 'Authorization: Bearer tp_…'.",
        )

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        cause = exc.__cause__
        if isinstance(cause, ApiError):  # raised by our body parser, wrapped by ninja
            return api_error(request, cause)
        if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
            return respond(request, 400, "malformed_json", "The request body is not valid JSON.")
        status = exc.status_code if 400 <= exc.status_code < 500 else 400
        message = str(exc)
        return respond(
            request, status, CODES.get(status, "invalid"), message if message.endswith(".") else message + "."
        )

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Exception) -> HttpResponse:
        return respond(request, 404, "not_found", "There is nothing at this address you can see.")

    @api.exception_handler(ObjectDoesNotExist)
    def does_not_exist(request: HttpRequest, exc: Exception) -> HttpResponse:
        return respond(request, 404, "not_found", "That record does not exist or you cannot see it.")

    @api.exception_handler(PermissionDenied)
    def forbidden(request: HttpRequest, exc: Exception) -> HttpResponse:
        return respond(request, 403, "forbidden", "You may not do that.")

    @api.exception_handler(RequestDataTooBig)
    def too_large(request: HttpRequest, exc: Exception) -> HttpResponse:
        return respond(request, 413, "too_large", "The request body is too large.")

    @api.exception_handler(SuspiciousOperation)
    def suspicious(request: HttpRequest, exc: Exception) -> HttpResponse:
        return respond(request, 400, "invalid", "The request is malformed.")

    @api.exception_handler(DjangoValidationError)
    def django_invalid(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
        messages = "; ".join(exc.messages) or "Invalid value."
        return respond(request, 400, "invalid", messages)

    @api.exception_handler(DataError)
    @api.exception_handler(OverflowError)
    def out_of_range(request: HttpRequest, exc: Exception) -> HttpResponse:
        # Input that passed validation but that the database cannot store or compare
        # (a number beyond 64 bits, say): the client's fault, so a 400, not a 500.
        return respond(request, 400, "invalid", "A value in the request is out of range.")

    @api.exception_handler(Exception)
    def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        # A bug on our side. Logged in full; the client gets the same envelope, never a traceback.
        logger.exception("Unhandled error in %s %s", request.method, request.path)
        return respond(request, 500, "server_error", "Something went wrong on our side; it has been logged.")
