"""Keep secrets out of output and logs.

A property is secret when its name says so (:data:`_SECRET_KEY`: passwords, keys,
tokens, credentials, Azure account keys, connection strings and SAS tokens, REST
``header.*`` values, ...); then its whole value is replaced. Any other value that is a
URI keeps its shape, with the password of its user info and the values of query
parameters whose names say "secret" replaced (:func:`redact_uri`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from lakehouse.settings import Settings

MASK = "***"

_SECRET_KEY = re.compile(
    r"secret|passw|passwd|pwd|token|credential|session|private|access-key|account-key|"
    r"accountkey|connection-string|connectionstring|authorization|signature|api-key|apikey"
    r"|(?:^|[._-])sas(?:[._-]|$)|(?:^|[._-])sig(?:$)|^header\.",
    re.IGNORECASE,
)
# Secrets inside a value that is not a URI: ``AccountKey=...;`` in an Azure connection
# string, ``password=...`` in a libpq key/value DSN.
_INLINE_SECRET = re.compile(
    r"\b(AccountKey|SharedAccessSignature|SharedAccessKey|password|passwd|pwd|sig)=([^;&\s]*)",
    re.IGNORECASE,
)
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_WHOLE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_secret_key(name: str) -> bool:
    """Whether a property or query parameter called ``name`` holds a secret."""
    return bool(_SECRET_KEY.search(name))


def redact_uri(uri: str) -> str:
    """``uri`` with its password and secret query parameters replaced by ``***``.

    ``postgresql://u:p@ss@db/x?sslpassword=k&sslmode=require`` ->
    ``postgresql://u:***@db/x?sslpassword=***&sslmode=require``; ``scheme://:pw@host``
    -> ``scheme://:***@host``. Text that does not parse as a URI is returned with its
    inline secrets (``password=...``) masked."""
    try:
        parts = urlsplit(uri)
    except ValueError:  # e.g. an unbalanced '[' in the host
        return _INLINE_SECRET.sub(rf"\1={MASK}", uri)
    start = len(parts.scheme) + 3
    head = f"{parts.scheme}://{parts.netloc}{parts.path}"
    if (
        not parts.scheme
        or uri[:start].lower() != head[:start]
        or uri[start : len(head)] != head[start:]
    ):
        return _INLINE_SECRET.sub(rf"\1={MASK}", uri)  # not scheme://...: mask what we can
    netloc = parts.netloc
    userinfo, at, host = netloc.rpartition("@")  # the password may itself hold '@'
    if at:
        user, colon, _password = userinfo.partition(":")
        if colon:
            netloc = f"{user}:{MASK}@{host}"
    tail = uri[len(head) :]  # ['?' query]['#' fragment], as written
    query, hash_, fragment = tail[1:].partition("#") if tail.startswith("?") else ("", "", "")
    if tail.startswith("?"):
        tail = "?" + "&".join(_redact_param(p) for p in query.split("&")) + hash_ + fragment
    tail = _INLINE_SECRET.sub(rf"\1={MASK}", tail)
    return uri[:start] + netloc + parts.path + tail


def _redact_param(param: str) -> str:
    name, eq, _value = param.partition("=")
    if eq and is_secret_key(unquote(name)):
        return f"{name}={MASK}"
    return param


def redact_text(text: str) -> str:
    """Free text (an error message) with every URI in it redacted, and inline
    ``password=...`` / ``AccountKey=...`` values masked."""
    text = _URI.sub(lambda m: redact_uri(m.group(0)), text)
    return _INLINE_SECRET.sub(rf"\1={MASK}", text)


def redact_value(key: str, value: str) -> str:
    """The value of property ``key`` as it may be shown."""
    if is_secret_key(key):
        return MASK
    if _WHOLE_URI.match(value):
        return _INLINE_SECRET.sub(rf"\1={MASK}", redact_uri(value))
    return redact_text(value)


def catalog_summary(settings: Settings) -> dict[str, str]:
    """The catalog's properties as configured, with secrets redacted."""
    from pyiceberg.utils.config import Config

    from catalog import embedded_catalog_properties

    if settings.catalog is None:
        props: dict[str, Any] = embedded_catalog_properties(settings)
    else:
        props = Config().get_catalog_config(settings.catalog) or {}
    return {k: redact_value(k, str(v)) for k, v in sorted(props.items())}
