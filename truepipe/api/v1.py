"""The JSON API, /api/v1/: every record type, scoped by visibility, written through the services.

Built on django-ninja rather than Django REST framework: its typed pydantic
schemas validate input and give the OpenAPI 3 document (/api/v1/openapi.json,
browsable at /api/v1/docs) for free, and serialisation is markedly faster.

Conventions, the same on every endpoint:
- auth: `Authorization: Bearer tp_…` (truepipe token create USERNAME) or the
  browser session with its CSRF token; anonymous callers get 401;
- lists: `limit`/`offset` paging in {"count", "limit", "offset", "next", "items"},
  `ordering=-amount,close_date` over a whitelist, and a fixed number of queries;
- writes: through the service layer with via=API; PATCH/PUT/DELETE need the
  version read (`If-Match: "<version>"` or a `version` field): 428 without it,
  409 when stale;
- errors: {"error": {"status", "code", "message", "fields"}} for every 4xx
  (see truepipe.api.errors); a record you cannot see is a 404 whether it
  exists or not.
"""

from __future__ import annotations

from ninja import NinjaAPI

from truepipe.api import errors
from truepipe.api.accountability import (
    consequences_router,
    disputes_router,
    fairness_router,
    offenses_router,
    policy_router,
)
from truepipe.api.accounts import accounts_router, contacts_router
from truepipe.api.activities import router as activities_router
from truepipe.api.auth import JsonParser, SessionAuth, TokenAuth
from truepipe.api.capture import router as capture_router
from truepipe.api.catalog import products_router, stages_router
from truepipe.api.contracts import router as contracts_router
from truepipe.api.oneline import router as oneline_router
from truepipe.api.opportunities import router as opportunities_router
from truepipe.api.people import tokens_router, users_router

api = NinjaAPI(
    title="truepipe API",
    version="1",
    description=__doc__.split("\n\n", 1)[1] if __doc__ else "",
    urls_namespace="api-v1",
    auth=[TokenAuth(), SessionAuth()],
    parser=JsonParser(),
)
errors.install(api)

api.add_router("/opportunities", opportunities_router)
api.add_router("/accounts", accounts_router)
api.add_router("/contacts", contacts_router)
api.add_router("/activities", activities_router)
api.add_router("/log", oneline_router)
api.add_router("/capture", capture_router)
api.add_router("/products", products_router)
api.add_router("/stages", stages_router)
api.add_router("/users", users_router)
api.add_router("/tokens", tokens_router)
api.add_router("/offenses", offenses_router)
api.add_router("/consequences", consequences_router)
api.add_router("/disputes", disputes_router)
api.add_router("/policy", policy_router)
api.add_router("/fairness", fairness_router)
api.add_router("", contracts_router)  # /shadow-pipeline, /contracts
