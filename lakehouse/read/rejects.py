"""Rejected records: the ``<events>_rejected`` companion table as a Polars LazyFrame.

Every record the writer refused is kept there with ``rejected_at``, ``reason``,
``source`` (a file URI, or ``batch:<id>`` for API input), ``line`` and ``raw`` (the payload
as received). :func:`rejected` scans it with optional filters; :func:`rejects_summary`
gives counts by reason kind (:func:`lakehouse.schema.reason_kind`: ``invalid JSON: ...``
with different details counts as one kind) and a few samples of each, as ``lakehouse rejects`` shows them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from lakehouse.durations import parse_duration
from lakehouse.errors import UsageError
from lakehouse.read.source import as_utc, scan_table, time_filter
from lakehouse.schema import REASON_KIND_PATTERN
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import polars as pl

REJECTED_COLUMNS = ("rejected_at", "reason", "source", "line", "raw", "batch_key")


def glob_regex(pattern: str) -> str:
    """An anchored regular expression for a shell glob: ``*`` any text (``/`` included,
    so ``*.gz`` matches a URI), ``?`` one character, ``[abc]``/``[!abc]`` a class."""
    out, i = ["^"], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = re.sub(r"([\\\[\]^])", r"\\\1", body[1:] if negate else body)
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return "".join(out)


def parse_since(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """``--since``: an ISO 8601 date or time (naive: UTC), or a duration back from now
    (``2h``, ``7d``)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            return (now or datetime.now(UTC)) - parse_duration(text)
        except UsageError:
            raise UsageError(
                f"--since: cannot read {text!r}; write a time like 2024-05-01 or "
                "2024-05-01T10:00Z, or a duration back from now like 6h or 7d"
            ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def reason_kind_expr() -> pl.Expr:
    """:func:`lakehouse.schema.reason_kind` of the ``reason`` column, as a Polars expression."""
    import polars as pl

    return pl.col("reason").str.extract(REASON_KIND_PATTERN, 1).str.strip_chars()


def rejected_frame(
    lf: pl.LazyFrame, *, since: datetime | None = None, source: str | None = None
) -> pl.LazyFrame:
    """Rows of a rejected-records frame with ``rejected_at >= since`` and ``source``
    matching the glob ``source`` (either may be None)."""
    import polars as pl

    lf = time_filter(lf, as_utc(since, "since"), None, column="rejected_at")
    if source is not None:
        if not source:
            raise UsageError("the source glob is empty; write it like '*2024/05/01/*'")
        lf = lf.filter(pl.col("source").str.contains(glob_regex(source)))
    return lf


def rejected(
    settings: Settings | None = None,
    *,
    since: datetime | None = None,
    source: str | None = None,
    snapshot_id: int | None = None,
) -> pl.LazyFrame:
    """The rejected records of the events table the settings name, as a LazyFrame with
    the columns ``rejected_at``, ``reason``, ``source``, ``line``, ``raw``, ``batch_key``.

    ``since`` keeps records rejected at or after it (naive datetimes are UTC; the filter
    is pushed into the scan, which is partitioned by day of ``rejected_at``); ``source``
    keeps records whose source matches a shell glob (``*`` also matches ``/``);
    ``snapshot_id`` pins a snapshot of the rejected table.
    """
    from lakehouse.tables import open_tables

    table = open_tables(settings or Settings.from_env()).rejected
    return rejected_frame(scan_table(table, snapshot_id=snapshot_id), since=since, source=source)


@dataclass(frozen=True)
class ReasonCount:
    """One kind of reason: how many records, when first and last, and a few samples."""

    reason: str
    records: int
    first_rejected_at: datetime
    last_rejected_at: datetime
    samples: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "records": self.records,
            "first_rejected_at": self.first_rejected_at,
            "last_rejected_at": self.last_rejected_at,
            "samples": list(self.samples),
        }


def rejects_summary(lf: pl.LazyFrame, *, samples: int = 3) -> list[ReasonCount]:
    """Counts by reason kind, most records first (ties by kind), each with up to
    ``samples`` records (``source``, ``line``, ``reason``, ``raw``), earliest first."""
    import polars as pl

    if samples < 0:
        raise UsageError("samples must not be negative")
    sample_cols = ["source", "line", "reason", "raw"]
    frame = (
        lf.with_columns(_kind=reason_kind_expr())
        .sort(["rejected_at", "source", "line"], nulls_last=True)
        .group_by("_kind")
        .agg(
            pl.len().alias("records"),
            pl.col("rejected_at").min().alias("first"),
            pl.col("rejected_at").max().alias("last"),
            pl.struct(sample_cols).head(samples).alias("samples"),
        )
        .sort(["records", "_kind"], descending=[True, False])
        .collect()
    )
    return [
        ReasonCount(
            reason=row["_kind"],
            records=row["records"],
            first_rejected_at=row["first"],
            last_rejected_at=row["last"],
            samples=tuple(row["samples"]),
        )
        for row in frame.iter_rows(named=True)
    ]
