"""The catalog's properties as they may be shown (``lakehouse config show``)."""

from __future__ import annotations

from typing import Any

from pyiceberg.utils.config import Config

from catalog.resolve import embedded_catalog_properties
from lakehouse.redact import redact_value
from lakehouse.settings import Settings


def redacted_properties(settings: Settings) -> dict[str, str]:
    """The catalog's properties as configured, with secrets redacted."""
    if settings.catalog is None:
        props: dict[str, Any] = embedded_catalog_properties(settings)
    else:
        props = Config().get_catalog_config(settings.catalog) or {}
    return {k: redact_value(k, str(v)) for k, v in sorted(props.items())}
