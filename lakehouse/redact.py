"""Keep secrets out of output and logs."""

from __future__ import annotations

import re
from typing import Any

from lakehouse.settings import Settings

_SECRET_KEY = re.compile(
    r"(secret|password|token|credential|session|private|access-key)", re.IGNORECASE
)
_URL_PASSWORD = re.compile(r"(://[^:/@]+:)([^@]+)(@)")


def redact_value(key: str, value: str) -> str:
    if _SECRET_KEY.search(key):
        return "***"
    return _URL_PASSWORD.sub(r"\1***\3", value)


def catalog_summary(settings: Settings) -> dict[str, str]:
    """The catalog's properties as configured, with secrets redacted."""
    from pyiceberg.utils.config import Config

    from catalog import embedded_catalog_properties

    if settings.catalog is None:
        props: dict[str, Any] = embedded_catalog_properties(settings)
    else:
        props = Config().get_catalog_config(settings.catalog) or {}
    return {k: redact_value(k, str(v)) for k, v in sorted(props.items())}
