"""Bad-input fuzzing of landing files and Python records, with hypothesis.

Each generated line carries what it must become: ``accept`` (committed), ``reject``
(kept aside with a reason), ``resend`` (an exact copy of an earlier line: a duplicate),
``blank`` (not a record) or ``either`` (the spec leaves it open: duplicate keys, NaN
inside properties, lone surrogates, ...). Every example is ingested into one shared
table under a unique folder, and then:

* nothing raises; ``records_read = records_written + duplicates_dropped + records_rejected``;
* every non-blank line is exactly one of: committed (its event id is in the table once),
  rejected (its source and line are in the rejects table, with a reason), or a duplicate;
* ``accept`` lines are committed as sent, ``reject`` lines are rejected;
* committed ``properties`` are JSON object text (no NaN);
* a truncated gzip keeps its complete lines and adds one reject for the damage.

Nesting is kept to ``fuzz_cases.SAFE_DEPTH``: deeper properties crash the process (see
``test_known_bugs.py::test_deep_nesting_is_rejected_not_fatal``).
"""

from __future__ import annotations

import json
import math
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.reliability.fuzz_cases import (
    WARM_UP,
    FileCase,
    Line,
    landing_cases,
    record_batches,
    unique,
)
from tests.reliability.harness import Figures
from tests.reliability.landing import file_uri


def _surviving(case: FileCase) -> list[Line] | None:
    """The lines a truncated gzip file still holds (None: the file is intact)."""
    if case.truncate_at is None:
        return None
    d = zlib.decompressobj(wbits=31)
    try:
        data = d.decompress(case.payload())
    except zlib.error:
        data = b""
    if d.eof:
        return None
    data = data[: data.rfind(b"\n") + 1]
    count = data.count(b"\n")
    return case.lines[:count]


def check_example(writer: Any, root: Path, files: list[FileCase], figures: Figures) -> None:
    """Ingest one generated example and check every promise of the module docstring."""
    from writers.ingest import ingest

    root.mkdir(parents=True)
    paths = []
    for i, case in enumerate(files):
        path = root / (f"f{i}.ndjson.gz" if case.gzip else f"f{i}.ndjson")
        path.write_bytes(case.payload())
        paths.append(path)
    try:
        # the files are complete (a producer that finished): an incomplete last line is
        # read now, as a file quiet for long would be, not left waiting for a later run
        result = ingest([str(root)], writer=writer, quiet=timedelta(0))
    except Exception as exc:
        figures.violation("invariant_breaks", f"ingest raised {type(exc).__name__}: {exc}"[:300])
        return
    figures.fuzz_cases += 1
    if (
        result.records_read
        != result.records_written + result.duplicates_dropped + result.records_rejected
    ):
        figures.violation("invariant_breaks", f"counts do not reconcile: {result.to_dict()}")
    from lakehouse.expressions import is_in

    sources = [file_uri(p) for p in paths]
    tables = writer.tables
    tables.rejected.refresh()
    rejected = (
        tables.rejected.scan(row_filter=is_in("source", sources)).to_arrow().to_pylist()
        if tables.rejected.current_snapshot()
        else []
    )
    rejected_at = {(r["source"], r["line"]): r["reason"] for r in rejected}
    if len(rejected_at) != len(rejected) or len(rejected) != result.records_rejected:
        figures.violation(
            "invariant_breaks", f"{len(rejected)} rejects stored, {result.records_rejected} counted"
        )
    wanted_ids = sorted({ln.event_id for case in files for ln in case.lines if ln.event_id})
    tables.events.refresh()
    rows = (
        tables.events.scan(row_filter=is_in("event_id", wanted_ids or ["-"])).to_arrow().to_pylist()
    )
    committed: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        committed.setdefault(row["event_id"], []).append(row)
    if any(len(v) > 1 for v in committed.values()):
        figures.violation("duplicates", "an event id committed twice")
    # Generated lines may share an event id without being resends of each other (two
    # different payloads): which one is committed then is the writer's choice (the first
    # in client-time order), so per-line checks that look the id up are skipped for them.
    payloads: dict[str, set[bytes]] = {}
    for case in files:
        for ln in case.lines:
            if ln.event_id:
                payloads.setdefault(ln.event_id, set()).add(bytes(ln.data).strip())
    ambiguous = {i for i, p in payloads.items() if len(p) > 1}
    records = 0
    for case, source in zip(files, sources, strict=True):
        surviving = _surviving(case)
        if surviving is not None:
            records += 1
            if (source, None) not in rejected_at:
                figures.violation("losses", f"damaged gzip {source} has no reject")
        for number, line in enumerate(surviving if surviving is not None else case.lines, start=1):
            records += _check_line(
                line, number, source, committed, rejected_at, figures, ambiguous=ambiguous
            )
    if records != result.records_read:
        figures.violation(
            "invariant_breaks",
            f"{result.records_read} records read, {records} non-blank lines sent "
            f"({', '.join(sources)})",
        )
    if result.records_written != len(committed):
        figures.violation(
            "invariant_breaks",
            f"{result.records_written} written but {len(committed)} of this example's ids in the table",
        )


def _check_line(
    line: Line,
    number: int,
    source: str,
    committed: dict[str, Any],
    rejected_at: dict[Any, str],
    figures: Figures,
    *,
    ambiguous: set[str] | frozenset[str] = frozenset(),
) -> int:
    if line.expect == "blank" or not line.data.strip():
        return 0
    is_rejected = (source, number) in rejected_at
    is_committed = line.event_id in committed
    if line.event_id in ambiguous:  # another payload with this id may be the committed one
        if not is_rejected and not is_committed:
            figures.violation("losses", f"{source}:{number} neither committed nor rejected")
        return 1
    if is_rejected and is_committed:
        figures.violation("duplicates", f"{source}:{number} both committed and rejected")
    if is_rejected and not rejected_at[(source, number)]:
        figures.violation("invariant_breaks", f"{source}:{number} rejected without a reason")
    if line.expect in ("accept", "resend") and not is_committed:
        figures.violation(
            "losses",
            f"{source}:{number} ({line.expect}) not committed: {rejected_at.get((source, number))}",
        )
    elif line.expect == "accept" and line.record is not None:
        row = committed[line.event_id][0]
        if (row["user_id"], row["event_type"]) != (
            line.record["user_id"],
            line.record["event_type"],
        ):
            figures.violation("invariant_breaks", f"{source}:{number} committed differently")
        _check_properties(row, source, number, figures)
    if line.expect == "reject" and not is_rejected:
        figures.violation(
            "invariant_breaks", f"{source}:{number} should be rejected: {line.data[:120]!r}"
        )
    if line.expect == "either" and not is_rejected and not is_committed:
        figures.violation(
            "losses", f"{source}:{number} neither committed nor rejected: {line.data[:120]!r}"
        )
    if line.expect == "either" and is_committed:
        _check_properties(committed[line.event_id][0], source, number, figures)
    return 1


def _check_properties(row: dict[str, Any], source: str, number: int, figures: Figures) -> None:
    text = row.get("properties")
    if text is None:
        return
    try:
        value = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except ValueError as exc:
        figures.violation(
            "invariant_breaks", f"{source}:{number}: properties is not JSON: {exc}: {text[:80]!r}"
        )
        return
    if not isinstance(value, dict) or any(
        isinstance(v, float) and not math.isfinite(v) for v in value.values()
    ):
        figures.violation(
            "invariant_breaks", f"{source}:{number}: properties is not a JSON object: {text[:80]!r}"
        )


def warm_up(writer: Any, root: Path) -> None:
    """Create the extra columns with their intended types before fuzzing."""
    from writers.ingest import ingest

    root.mkdir(parents=True, exist_ok=True)
    record = {
        "event_id": "warm-up",
        "user_id": "u",
        "event_type": "v",
        "client_ts": "2024-05-01T10:00:00Z",
        **WARM_UP,
    }
    (root / "warm.ndjson").write_text(json.dumps(record) + "\n")
    ingest([str(root)], writer=writer)


def check_records(writer: Any, records: list[Any], batch: int, figures: Figures) -> None:
    try:
        writer.write(records, batch_id=f"fuzz-records-{batch}")
        result = writer.flush()
    except (Exception, BaseException) as exc:  # pyo3 panics are BaseExceptions
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        figures.violation(
            "invariant_breaks",
            f"write of {len(records)} records raised {type(exc).__name__}: {exc}"[:300],
        )
        writer._buffer.clear()
        return
    figures.fuzz_cases += 1
    if (
        result.records_read != len(records)
        or result.records_read
        != result.records_written + result.duplicates_dropped + result.records_rejected
    ):
        figures.violation(
            "invariant_breaks",
            f"record counts do not reconcile: {len(records)} sent, {result.to_dict()}",
        )


def fuzz(
    target: Any, workdir: Path, *, examples: int, record_examples: int, seed: int = 0
) -> Figures:
    """Run ``examples`` landing-file examples and ``record_examples`` record batches."""
    import itertools

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fixed_seed

    from writers import EventWriter

    figures = Figures(runs=1)
    counter = itertools.count()
    options = settings(
        max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    with target.active() as lakehouse_settings:
        writer = EventWriter(
            lakehouse_settings, max_records=1 << 62, max_bytes=1 << 62, max_age=1e12
        )
        warm_up(writer, workdir / "warm-up")

        @fixed_seed(seed)
        @options
        @given(landing_cases())
        def landing(files: list[FileCase]) -> None:
            n = next(counter)
            check_example(writer, workdir / f"ex{n:05d}", unique(files, f"fz{seed}x{n}"), figures)

        @fixed_seed(seed)
        @settings(options, max_examples=max(1, record_examples))
        @given(record_batches())
        def records(batch: list[Any]) -> None:
            check_records(writer, batch, next(counter), figures)

        landing()
        if record_examples:
            records()
    return figures
