"""The JSON API, /api/v1/ (filled in by the API module)."""

from ninja import NinjaAPI

api = NinjaAPI(title="truepipe API", version="1", urls_namespace="api-v1")
