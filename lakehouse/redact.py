"""Keep secrets out of output and logs.

A property is secret when its name says so (:data:`_SECRET_KEY`: passwords, keys,
tokens, credentials, Azure account keys, connection strings and SAS tokens, REST
``header.*`` values, ...); then its whole value is replaced. Any other value that is a
URI keeps its shape, with the password of its user info and the values of query
parameters whose names say "secret" replaced (:func:`redact_uri`).

A URI is read the way its consumers read it, and where two readings differ the wider
mask wins. SQLAlchemy (the SQL catalogs) takes the password up to the FIRST ``@`` and
lets it hold ``/``, ``?``, ``#`` and ``:``; ``urllib`` (everything else) ends the
authority at the first ``/``, ``?`` or ``#`` and takes the user info up to its LAST
``@``. Query values are masked up to the next ``&`` (SQLAlchemy has no fragment, so a
``#`` belongs to the value), and parameters after a ``#`` or ``;`` are read too.

This module is the ground floor: it imports nothing from the project.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

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
# A URI in free text ends at a space, quote or bracket, except that a password (after
# "user:") runs to the next '@' on the same line: SQLAlchemy accepts spaces and quotes in it.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^:/@\s'\"<>]*:[^@\n]*?@)?[^\s'\"<>]+")
_WHOLE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEME = _WHOLE_URI
# SQLAlchemy's URL pattern (sqlalchemy.engine.url._parse_url), up to the user info's '@'
_SQLALCHEMY_USERINFO = re.compile(r"[^:/]*(?::[^@]*)?@")
_PARAM = re.compile(r"([^=&#;]*)=")
_PARAM_SEP = re.compile(r"[&#;]")


def is_secret_key(name: str) -> bool:
    """Whether a property or query parameter called ``name`` holds a secret."""
    return bool(_SECRET_KEY.search(name))


def redact_uri(uri: str) -> str:
    """``uri`` with its password and secret query parameters replaced by ``***``.

    ``postgresql://u:p/ss#w?rd@db/x?sslpassword=k&sslmode=require`` ->
    ``postgresql://u:***@db/x?sslpassword=***&sslmode=require``; ``scheme://:pw@host``
    -> ``scheme://:***@host``. Text that does not start with ``scheme://`` is returned
    with its inline secrets (``password=...``) masked."""
    scheme = _SCHEME.match(uri)
    if scheme is None:
        return _INLINE_SECRET.sub(rf"\1={MASK}", uri)
    head, rest = uri[: scheme.end()], uri[scheme.end() :]
    at = _userinfo_end(rest)
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        shown = f"{user}:{MASK}" if colon else rest[:at]
        rest, head = rest[at:], head + shown
    # the host (and port) ends where a path, query or fragment starts
    tail_at = next((i for i, c in enumerate(rest) if c in "?#"), len(rest))
    slash = rest.find("/")
    if 0 <= slash < tail_at:
        query = rest.find("?", slash)
        fragment = rest.find("#", slash)
        tail_at = min((i for i in (query, fragment) if i >= 0), default=len(rest))
    body, tail = rest[:tail_at], rest[tail_at:]
    if tail:
        tail = tail[0] + _redact_params(tail[1:])
    return head + _INLINE_SECRET.sub(rf"\1={MASK}", body + tail)


def _userinfo_end(rest: str) -> int:
    """Index in ``rest`` (a URI after ``scheme://``) of the ``@`` that ends the user
    info, or -1: the later of SQLAlchemy's reading and urllib's. When the user info
    holds a password, a later ``@`` before the query is taken as part of that password
    written without escaping (``u:p@ss/w@rd@host``): no host or path holds an ``@``."""
    authority = re.match(r"[^/?#]*", rest)
    end = rest.rfind("@", 0, authority.end()) if authority else -1  # urllib
    sqlalchemy = _SQLALCHEMY_USERINFO.match(rest)
    if sqlalchemy:
        end = max(end, sqlalchemy.end() - 1)
    if end >= 0 and ":" in rest[:end]:
        query = rest.find("?", end)
        end = rest.rfind("@", 0, len(rest) if query < 0 else query)
    return end


def _redact_params(text: str) -> str:
    """``name=value`` pairs (split at ``&``, ``#`` and ``;``) with secret values masked;
    a secret value runs to the next ``&`` (what SQLAlchemy reads as the value)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        param = _PARAM.match(text, i)
        if param and is_secret_key(unquote(param.group(1))):
            nxt = text.find("&", param.end())
            out.append(param.group(0) + MASK)
            i = len(text) if nxt < 0 else nxt
            continue
        sep = _PARAM_SEP.search(text, i)
        stop = sep.end() if sep else len(text)
        out.append(text[i:stop])
        i = stop
    return "".join(out)


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


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message (with its arguments) and
    exception text, so no URI password reaches a log, whichever library logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit: leave it to logging
            return True
        shown = redact_text(message)
        if shown != message:
            record.msg, record.args = shown, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_text(text)
        return True
