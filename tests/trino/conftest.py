"""A real Trino 476 for the session, on a free 127.0.0.1 port, reading an embedded
lakehouse catalog whose tables pyiceberg wrote. Installed from the cache (CI's
``scripts/setup-trino.sh`` fills it); a Trino that cannot be installed or started skips
locally and fails in CI.

One server runs at a time (the machines have 2 cores): :class:`TrinoPool` stops the
running server before it starts another. Every module on the embedded catalog shares one
server (and one lakehouse home, each module with its own tables); the modules on
PostgreSQL are moved to the end of the run, so the server changes once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.table import Table

from catalog import open_catalog
from lakehouse.settings import Settings, TableName
from lakehouse.tables import ensure_tables
from lakehouse.trino_server import (
    Installation,
    JavaRuntime,
    ServerOptions,
    TrinoError,
    find_installation,
    find_java,
    install,
    start,
    stop,
)
from maintenance import CompactionOptions, compact
from tests.support.components import free_port, unavailable
from tests.trino.generate import append_raw, deliveries, generate_events, write_deliveries

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TEST_HEAP = "3G"  # query.max-memory-per-node ~1 GB: plenty for the tests' tables


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the Trino tests on PostgreSQL last (a stable sort), so that the pool starts the
    embedded-catalog server once and the PostgreSQL one once."""
    here = Path(__file__).parent

    def last(item: pytest.Item) -> bool:
        return here in Path(str(item.fspath)).parents and bool(item.get_closest_marker("postgres"))

    items.sort(key=last)


def make_events(table: Table, count: int, *, start: datetime = T0, users: int = 7) -> pa.Table:
    """``count`` events over a few hours with every column filled (some optional ones null),
    cast to the table's own Arrow schema. Ids continue after the rows already in ``table``
    (``evt-000000`` is the first event of every table)."""
    rows = []
    offset = table.scan().count()
    for i in range(count):
        n = offset + i
        ts = start + timedelta(minutes=7 * i, microseconds=n)
        rows.append(
            {
                "event_id": f"evt-{n:06d}",
                "user_id": f"user-{n % users}",
                "event_type": ("view", "click", "purchase")[n % 3],
                "client_ts": ts,
                "server_ts": ts + timedelta(seconds=2),
                "session_id": None if n % 4 == 0 else f"s-{n // 10}",
                "properties": None if n % 5 == 0 else f'{{"n": {n}, "k": "vé"}}',
            }
        )
    return pa.Table.from_pylist(rows, schema=table.schema().as_arrow())


@dataclass
class TrinoServer:
    """The session's server and what pyiceberg wrote before it started."""

    settings: Settings
    port: int
    first_snapshot_id: int
    first_batch_ids: list[str]
    java: JavaRuntime
    installation: Installation
    startup_seconds: float
    notes: dict[str, object] = field(default_factory=dict)
    extra_catalogs: tuple[str, ...] = ()

    def events(self) -> Table:
        return open_catalog(self.settings).load_table(self.settings.table.identifier)

    def on_table(self, namespace: str, name: str) -> Settings:
        """The server's settings for another table of the same catalog."""
        return self.settings.with_table(TableName(namespace, name))


class TrinoPool:
    """Keeps at most one test server running: :meth:`ensure` stops the running one when
    another is asked for, and (re)starts the one asked for on its own port."""

    def __init__(self) -> None:
        self.running: TrinoServer | None = None
        self.starts = 0

    def ensure(self, server: TrinoServer) -> TrinoServer:
        if self.running is server:
            return server
        self.stop()
        options = ServerOptions(
            port=server.port,
            heap=TEST_HEAP,
            extra_catalogs=server.extra_catalogs,
            orphan_min_retention=timedelta(0),  # the tests plant orphans minutes old
        )
        try:
            result = start(
                server.settings, options, installation=server.installation, java=server.java
            )
        except TrinoError as exc:
            unavailable("Trino", f"the server did not start: {exc}")
        server.startup_seconds = result.startup_seconds
        self.running = server
        self.starts += 1
        return server

    def stop(self) -> None:
        if self.running is not None:
            stop(self.running.settings, port=self.running.port)
            self.running = None


@pytest.fixture(scope="session")
def trino_pool() -> Iterator[TrinoPool]:
    pool = TrinoPool()
    try:
        yield pool
    finally:
        pool.stop()


def installed_trino() -> tuple[Installation, JavaRuntime]:
    """The cached installation (installed now if missing) and a Java 24+, or skip/fail."""
    try:
        java = find_java()
    except TrinoError as exc:
        unavailable("Trino", str(exc))
    found = find_installation()
    if found is None:
        try:
            found = install().installation
        except TrinoError as exc:
            unavailable("Trino", f"cannot install it: {exc}")
    return found, java


@pytest.fixture(scope="session")
def trino_runtime() -> tuple[Installation, JavaRuntime]:
    return installed_trino()


def populate(settings: Settings, batches: tuple[int, ...] = (120, 80)) -> tuple[int, list[str]]:
    """Create the tables and append ``batches``; returns the first snapshot and its ids."""
    catalog = open_catalog(settings)
    tables, _ = ensure_tables(catalog, settings.table)
    first = make_events(tables.events, batches[0])
    tables.events.append(first)
    first_snapshot = tables.events.current_snapshot()
    assert first_snapshot is not None
    for size in batches[1:]:
        tables.events.append(make_events(tables.events, size, start=T0 + timedelta(days=1)))
    return first_snapshot.snapshot_id, first.column("event_id").to_pylist()


@pytest.fixture(scope="session")
def embedded_trino(
    tmp_path_factory: pytest.TempPathFactory, trino_runtime: tuple[Installation, JavaRuntime]
) -> TrinoServer:
    """The embedded-catalog server's home (tables written) and port; not started yet."""
    installation, java = trino_runtime
    home: Path = tmp_path_factory.mktemp("trino-lakehouse")
    settings = Settings(home=home, table=TableName("analytics", "events"))
    snapshot_id, first_ids = populate(settings)
    return TrinoServer(settings, free_port(), snapshot_id, first_ids, java, installation, 0.0)


@pytest.fixture
def trino_server(embedded_trino: TrinoServer, trino_pool: TrinoPool) -> TrinoServer:
    """The running embedded-catalog server (started, or restarted, when needed)."""
    return trino_pool.ensure(embedded_trino)


@dataclass(frozen=True)
class Written:
    settings: Settings
    port: int
    first_snapshot: int  # after the first delivery
    written_snapshot: int  # every delivery and the raw append, before compaction
    compacted_snapshot: int
    compacted_files: int
    late_commits: int
    unique_events: int


def build(settings: Settings, seed: int, *, events: int = 6000) -> tuple[int, int, int, int]:
    """Write the generated deliveries and a raw append; returns (first snapshot, last
    snapshot, late commits, distinct events)."""
    generated = generate_events(seed, users=events * 3 // 20, events=events, hours=10)
    batches = deliveries(generated, seed=seed, every=timedelta(hours=2))
    table = ensure_tables(open_catalog(settings), settings.table)[0].events
    results = write_deliveries(settings, batches[:1])
    first = table.refresh().metadata.current_snapshot_id
    results += write_deliveries(settings, batches[1:])
    assert sum(r.duplicates_dropped for r in results) > 0  # resends were dropped
    other = generate_events(seed + 1, users=20, events=400, hours=10)
    append_raw(table.refresh(), other, kind="late")
    last = table.refresh().metadata.current_snapshot_id
    assert first is not None and last is not None
    late_commits = sum(
        1 for s in table.metadata.snapshots if (s.summary or {}).get("lakehouse.kind") == "late"
    )
    return first, last, late_commits, len(generated) + len(other)


@pytest.fixture(scope="session")
def generated(embedded_trino: TrinoServer, trino_pool: TrinoPool) -> Written:
    """``analytics.gen`` in the embedded catalog: deliveries of generated events written by
    the real writer, another producer's raw append, then compacted by maintenance."""
    server = trino_pool.ensure(embedded_trino)
    return written_and_compacted(server.on_table("analytics", "gen"), server.port, seed=11)


def written_and_compacted(
    settings: Settings, port: int, *, seed: int, events: int = 6000
) -> Written:
    """:func:`build`, then the Python compaction of everything it planned."""
    first, last, late_commits, unique = build(settings, seed, events=events)
    table = open_catalog(settings).load_table(settings.table.identifier)
    result = compact(table, CompactionOptions(target_file_size=8 * 1024 * 1024))
    assert result.groups_committed > 0 and not result.failures, result
    compacted = table.refresh().metadata.current_snapshot_id
    assert compacted is not None and compacted != last
    return Written(
        settings, port, first, last, compacted, result.files_rewritten, late_commits, unique
    )
