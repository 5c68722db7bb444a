"""Name -> record lookups an import needs, loaded once so no row costs a query."""

from __future__ import annotations

import difflib
import re
from typing import Any

from django.contrib.auth import get_user_model

from truepipe.accounts.models import Account
from truepipe.pipeline.models import Product, Stage, StageKind

User = get_user_model()

# Names other CRMs give the closing stages, used only when the pipeline has no stage of that name.
_WON_NAMES = {"closed won", "closedwon", "won", "closed - won"}
_LOST_NAMES = {"closed lost", "closedlost", "lost", "closed - lost"}


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


class People:
    """A person by username, e-mail or full name (case-insensitive)."""

    def __init__(self) -> None:
        self.by_key: dict[str, Any] = {}
        self.ambiguous: set[str] = set()
        for user in User.objects.select_related("profile").filter(profile__isnull=False):
            self.add(user)

    def keys_of(self, user) -> list[str]:
        full = f"{user.first_name} {user.last_name}".strip()
        return [k.lower() for k in (user.username, user.email, full) if k]

    def add(self, user) -> None:
        for key in dict.fromkeys(self.keys_of(user)):
            other = self.by_key.get(key)
            if other is not None and other.pk != user.pk:
                self.ambiguous.add(key)
            self.by_key[key] = user

    def find(self, text: str):
        key = text.strip().lower()
        if key in self.ambiguous:
            raise ValueError(f'more than one person is called "{text}"; use their username or e-mail')
        return self.by_key.get(key)

    def resolve(self, text: str):
        user = self.find(text)
        if user is None:
            raise ValueError(
                f'no person "{text}" (looked up by username, e-mail and full name); import users first'
            )
        return user


class Accounts:
    """An account by name (case-insensitive)."""

    def __init__(self) -> None:
        self.by_name: dict[str, Account] = {}
        self.ambiguous: set[str] = set()
        for account in Account.objects.filter(deleted_at__isnull=True).only("id", "name", "owner_id"):
            self.add(account)

    def add(self, account: Account) -> None:
        key = account.name.strip().lower()
        other = self.by_name.get(key)
        if other is not None and other.pk != account.pk:
            self.ambiguous.add(key)
        self.by_name[key] = account

    def find(self, text: str) -> Account | None:
        key = text.strip().lower()
        if key in self.ambiguous:
            raise ValueError(f'more than one account is named "{text}"')
        return self.by_name.get(key)


class Stages:
    """A stage by name (case-insensitive), after the user's --stage-map."""

    def __init__(self, stage_map: dict[str, str]) -> None:
        stages = list(Stage.objects.all())
        self.by_name = {stage.name.lower(): stage for stage in stages}
        self.names = [stage.name for stage in stages if stage.is_active]
        self.won = next((s for s in stages if s.kind == StageKind.WON and s.is_active), None)
        self.lost = next((s for s in stages if s.kind == StageKind.LOST and s.is_active), None)
        self.stage_map: dict[str, Stage] = {}
        for source, target in stage_map.items():
            stage = self.by_name.get(target.strip().lower())
            if stage is None:
                raise ValueError(
                    f'--stage-map {source}={target}: "{target}" is not a stage '
                    f"(stages: {', '.join(self.names)})"
                )
            self.stage_map[source.strip().lower()] = stage
        self.cache: dict[str, Stage] = {}

    def resolve(self, text: str) -> Stage:
        stage = self.cache.get(text)
        if stage is not None:
            return stage
        key = text.strip().lower()
        stage = self.stage_map.get(key) or self.by_name.get(key)
        if stage is None and key in _WON_NAMES:
            stage = self.won
        if stage is None and key in _LOST_NAMES:
            stage = self.lost
        if stage is None:
            raise ValueError(
                f'"{text}" is not a stage of the pipeline ({", ".join(self.names)}); '
                f'map it to one with --stage-map "{text}=STAGE"'
            )
        self.cache[text] = stage
        return stage


class Products:
    """A product by name (case-insensitive), after the user's --product-map."""

    def __init__(self, product_map: dict[str, str]) -> None:
        products = list(Product.objects.all())
        self.by_name = {product.name.lower(): product for product in products}
        self.names = [product.name for product in products]
        self.product_map: dict[str, Product] = {}
        for source, target in product_map.items():
            product = self.by_name.get(target.strip().lower())
            if product is None:
                known = ", ".join(self.names) or "none yet: import products first"
                raise ValueError(f'--product-map {source}={target}: "{target}" is not a product ({known})')
            self.product_map[source.strip().lower()] = product

    def find(self, text: str) -> Product | None:
        key = text.strip().lower()
        return self.product_map.get(key) or self.by_name.get(key)

    def suggest(self, text: str) -> str | None:
        """The known product this unknown name most likely means ("GTXPro" -> "GTX Pro")."""
        squashed = _squash(text)
        for name in self.names:
            if _squash(name) == squashed:
                return name
        close = difflib.get_close_matches(text, self.names, n=1, cutoff=0.6)
        return close[0] if close else None
