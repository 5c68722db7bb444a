"""Errors the service layer raises. Pages show them as messages, the API as 4xx JSON."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: a write was refused, with a message a user can act on."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class InvalidInput(ServiceError):
    status = 400
    code = "invalid"


class NotAllowed(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class StageRequirementsMissing(InvalidInput):
    """Entering `stage` needs fields the opportunity does not have yet."""

    code = "stage_requirements"

    def __init__(self, stage, missing: list[str]):
        from truepipe.pipeline.models import Opportunity

        labels = [str(getattr(Opportunity._meta.get_field(name), "verbose_name", name)) for name in missing]
        super().__init__(
            f"To move to {stage.name}, fill in: {', '.join(labels)}.",
            fields={name: f"Required to enter {stage.name}." for name in missing},
        )
        self.stage = stage
        self.missing = missing


class ConcurrencyConflict(ServiceError):
    """Someone else saved the record after the writer read it."""

    status = 409
    code = "conflict"

    def __init__(self, obj, expected: int, current: int):
        super().__init__(
            f"{type(obj)._meta.verbose_name.capitalize()} “{obj}” was changed by someone else "
            f"(you had version {expected}, it is now {current}). Reload it and apply your change again."
        )
        self.expected = expected
        self.current = current


class PreconditionRequired(ServiceError):
    status = 428
    code = "precondition_required"
