"""Import kinds that read other files than CSV (e-mail, calendar), registered by their apps.

A capture app registers `file_importers["email"] = handler` in its AppConfig.ready(); then
`truepipe import email PATH...` calls handler(paths, options, stdout, stderr) -> exit code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FileImporter = Callable[[list[str], dict[str, Any], Any, Any], int]

file_importers: dict[str, FileImporter] = {}
