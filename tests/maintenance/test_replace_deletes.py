"""The rewrite conflict rules for delete files, which pyiceberg never writes (only another
engine's merge-on-read commits them): a snapshot committed after the plan's base that
added a delete file in the partition of a rewritten file conflicts with the rewrite.

The snapshots, manifests and entries are pyiceberg's own objects; only the reading of a
snapshot's manifest list is replaced by an in-memory list (``Snapshot.manifests``), so
the checker sees exactly the manifests each case lays out. Expected outcomes follow
Iceberg's ``RewriteFiles`` rules, worked out by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pyiceberg.exceptions import ValidationException
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
)
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.typedef import Record

from maintenance.replace import ConflictChecker

ADDED, EXISTING, DELETED = (
    ManifestEntryStatus.ADDED,
    ManifestEntryStatus.EXISTING,
    ManifestEntryStatus.DELETED,
)


def _file(path: str, hour: int, *, deletes: bool = False, spec_id: int = 0) -> DataFile:
    data_file = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES if deletes else DataFileContent.DATA,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=Record(hour),
        record_count=1,
        file_size_in_bytes=1,
    )
    data_file.spec_id = spec_id
    return data_file


def _entry(status: ManifestEntryStatus, snapshot_id: int, data_file: DataFile) -> ManifestEntry:
    return ManifestEntry.from_args(status=status, snapshot_id=snapshot_id, data_file=data_file)


@dataclass
class _Manifest:
    """The parts of a ``ManifestFile`` the checker reads, with pyiceberg's semantics of
    ``discard_deleted``."""

    content: ManifestContent
    added_snapshot_id: int
    entries: list[ManifestEntry] = field(default_factory=list)

    def fetch_manifest_entry(self, io: FileIO, discard_deleted: bool = True) -> list[ManifestEntry]:
        return [e for e in self.entries if not (discard_deleted and e.status == DELETED)]


class _Metadata:
    def __init__(self, snapshots: list[Snapshot]) -> None:
        self.by_id = {s.snapshot_id: s for s in snapshots}

    def snapshot_by_id(self, snapshot_id: int) -> Snapshot | None:
        return self.by_id.get(snapshot_id)


def _snapshot(snapshot_id: int, parent: int | None, operation: Operation) -> Snapshot:
    return Snapshot(
        snapshot_id=snapshot_id,
        parent_snapshot_id=parent,
        sequence_number=snapshot_id,
        timestamp_ms=snapshot_id,
        manifest_list=f"snap-{snapshot_id}.avro",
        summary=Summary(operation),
    )


@pytest.fixture
def manifests(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[_Manifest]]:
    """The manifests of each snapshot id, as ``Snapshot.manifests`` returns them."""
    listed: dict[int, list[_Manifest]] = {}

    def manifests_of(self: Snapshot, io: FileIO) -> list[Any]:
        return listed.get(self.snapshot_id, [])

    monkeypatch.setattr(Snapshot, "manifests", manifests_of)
    return listed


IO = PyArrowFileIO()  # never asked to read: the manifests are listed in memory
REWRITTEN = [_file("data/h5-a.parquet", 5), _file("data/h5-b.parquet", 5)]


def _history(*later: tuple[int, Operation]) -> _Metadata:
    """The base snapshot 1, then ``later`` snapshots, each the child of the one before."""
    snaps = [_snapshot(1, None, Operation.APPEND)]
    for snapshot_id, operation in later:
        snaps.append(_snapshot(snapshot_id, snaps[-1].snapshot_id, operation))
    return _Metadata(snaps)


def test_a_delete_file_added_in_a_rewritten_partition_conflicts(
    manifests: dict[int, list[_Manifest]],
) -> None:
    meta = _history((2, Operation.OVERWRITE))
    manifests[2] = [
        _Manifest(
            ManifestContent.DELETES, 2, [_entry(ADDED, 2, _file("d.parquet", 5, deletes=True))]
        )
    ]
    with pytest.raises(ValidationException) as caught:
        ConflictChecker(IO, 1).check(meta, 2, REWRITTEN)  # type: ignore[arg-type]
    assert str(caught.value) == "Snapshot 2 added delete files that may apply to rewritten files"


def test_delete_files_elsewhere_or_not_added_by_the_snapshot_do_not_conflict(
    manifests: dict[int, list[_Manifest]],
) -> None:
    meta = _history((2, Operation.OVERWRITE), (3, Operation.DELETE))
    manifests[2] = [
        _Manifest(
            ManifestContent.DELETES,
            2,
            [
                _entry(ADDED, 2, _file("other-hour.parquet", 6, deletes=True)),
                _entry(ADDED, 2, _file("other-spec.parquet", 5, deletes=True, spec_id=1)),
                _entry(EXISTING, 2, _file("kept.parquet", 5, deletes=True)),
                _entry(DELETED, 2, _file("dropped.parquet", 5, deletes=True)),
            ],
        )
    ]
    manifests[3] = [  # a data file added in the same hour is no delete file
        _Manifest(ManifestContent.DATA, 3, [_entry(ADDED, 3, _file("new.parquet", 5))])
    ]
    ConflictChecker(IO, 1).check(meta, 3, REWRITTEN)  # type: ignore[arg-type]


def test_inherited_manifests_and_entries_are_passed_over_not_stopped_at(
    manifests: dict[int, list[_Manifest]],
) -> None:
    meta = _history((2, Operation.OVERWRITE))
    old = _file("old-delete.parquet", 5, deletes=True)
    manifests[2] = [
        # listed first: a manifest another snapshot added, then an inherited entry
        _Manifest(ManifestContent.DELETES, 1, [_entry(ADDED, 1, old)]),
        _Manifest(
            ManifestContent.DELETES,
            2,
            [_entry(ADDED, 1, old), _entry(ADDED, 2, _file("new-delete.parquet", 5, deletes=True))],
        ),
    ]
    with pytest.raises(ValidationException, match=r"^Snapshot 2 added delete files"):
        ConflictChecker(IO, 1).check(meta, 2, REWRITTEN)  # type: ignore[arg-type]
    manifests[2] = [_Manifest(ManifestContent.DELETES, 1, [_entry(ADDED, 1, old)])]
    ConflictChecker(IO, 1).check(meta, 2, REWRITTEN)  # type: ignore[arg-type]


def test_a_deleted_data_file_conflicts_after_inherited_entries(
    manifests: dict[int, list[_Manifest]],
) -> None:
    meta = _history((2, Operation.DELETE))
    manifests[2] = [
        _Manifest(ManifestContent.DATA, 1, [_entry(DELETED, 2, REWRITTEN[0])]),  # not its own
        _Manifest(
            ManifestContent.DATA,
            2,
            [_entry(EXISTING, 1, REWRITTEN[0]), _entry(DELETED, 2, REWRITTEN[1])],
        ),
    ]
    with pytest.raises(ValidationException) as caught:
        ConflictChecker(IO, 1).check(meta, 2, REWRITTEN)  # type: ignore[arg-type]
    assert str(caught.value) == (
        "Data files were concurrently deleted by snapshot 2: ['data/h5-b.parquet']"
    )


def test_an_append_is_not_read(manifests: dict[int, list[_Manifest]]) -> None:
    meta = _history((2, Operation.APPEND))
    manifests[2] = [  # what an append could not hold: it is never looked at
        _Manifest(
            ManifestContent.DELETES, 2, [_entry(ADDED, 2, _file("d.parquet", 5, deletes=True))]
        )
    ]
    ConflictChecker(IO, 1).check(meta, 2, REWRITTEN)  # type: ignore[arg-type]
