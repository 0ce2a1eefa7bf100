"""Issue #5, "Done when", end to end on the AWS path (moto's S3 and Glue on 127.0.0.1):

1. an ``s3://bucket/landing/...`` prefix of NDJSON files (some gzip; late events,
   resends and a bad line) is ingested with ``lakehouse ingest`` into a table that
   ``lakehouse init --catalog glue`` registered in Glue, on an ``s3://`` warehouse;
2. ``lakehouse maintain run`` compacts it on S3, expires the old snapshots and removes
   an orphan: the replaced objects are gone from the bucket;
3. Trino, whose catalog is that Glue catalog, reads ``events_ordered`` (``lakehouse trino
   views``) and computes funnels (``lakehouse.engines.trino.funnel``);

and every answer equals the local path: the same landing files ingested into an embedded
(SQLite, ``file://``) table and read with ``lakehouse.read.ordered`` and the Polars
funnel engine — rows and order per user, funnel counts per step and median times."""

from __future__ import annotations

import gzip
import json
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from catalog import open_catalog
from lakehouse.cli.main import cli
from lakehouse.engines.trino.funnel import run_trino
from lakehouse.funnels import FunnelRequest, FunnelResult, run_funnel
from lakehouse.read import ordered
from lakehouse.settings import Settings
from lakehouse.trino_server import query
from tests.aws.conftest import GlueLake

pytestmark = [pytest.mark.aws, pytest.mark.trino]

TABLE = "flow.events"
DAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HOURS = 6
FILES_PER_HOUR = 3
STEPS = ("app_open", "view_product", "add_to_cart", "checkout")
BAD_LINE = '{"event_id": "broken", "user_id": "u1", "event_type": "view", "client_ts": '


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def generate_landing(seed: int = 5) -> tuple[dict[str, bytes], dict[str, int]]:
    """Landing files ``landing/2026/03/02/HH/part-N.ndjson[.gz]`` (key -> body) and what
    they hold. Users walk the checkout funnel (with drop-offs and noise); each file is the
    delivery of a few minutes; ~8% of events arrive in a file hours later (late), ~4% are
    delivered twice (an identical resend in the next file) and one line is cut short."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    n = 0
    for user in range(40):
        t = DAY + timedelta(minutes=rng.randrange(0, HOURS * 60 - 90), microseconds=user)
        for _session in range(rng.randint(1, 3)):
            for step, name in enumerate(STEPS):
                if step and rng.random() < 0.3:
                    break
                for _ in range(1 if name != "view_product" else rng.randint(1, 2)):
                    events.append(
                        {
                            "event_id": f"ev{n:05d}",
                            "user_id": f"u{user:02d}",
                            "event_type": name,
                            "client_ts": t,
                            "properties": {"platform": ("ios", "android", "web")[user % 3]},
                        }
                    )
                    n += 1
                    if rng.random() < 0.1:  # a tie in client time, ordered by event_id
                        continue
                    t += timedelta(seconds=rng.randint(1, 900), microseconds=rng.randrange(1000))
            if rng.random() < 0.5:
                events.append(
                    {
                        "event_id": f"ev{n:05d}",
                        "user_id": f"u{user:02d}",
                        "event_type": "search",
                        "client_ts": t,
                        "properties": None,
                    }
                )
                n += 1
            t += timedelta(minutes=rng.randint(20, 120))
    end = DAY + timedelta(hours=HOURS)
    files: dict[tuple[int, int], list[dict[str, Any]]] = {}
    late = 0
    for e in sorted(events, key=lambda e: e["event_id"]):
        if e["client_ts"] >= end:
            continue
        hour = int((e["client_ts"] - DAY).total_seconds() // 3600)
        if rng.random() < 0.08 and hour < HOURS - 2:  # delivered 2+ hours later: late
            hour = rng.randint(hour + 2, HOURS - 1)
            late += 1
        part = rng.randrange(FILES_PER_HOUR)
        delivered = DAY + timedelta(hours=hour, minutes=20 * part + 19)
        e["server_ts"] = max(delivered, e["client_ts"] + timedelta(seconds=2))
        files.setdefault((hour, part), []).append(e)
    resends = 0
    keys = sorted(files)
    for index, key in enumerate(keys[:-1]):
        for e in files[key][::25]:  # identical copy in the next delivery
            files[keys[index + 1]].append(dict(e))
            resends += 1
    bodies: dict[str, bytes] = {}
    for index, (hour, part) in enumerate(keys):
        lines = [
            json.dumps({**e, "client_ts": _iso(e["client_ts"]), "server_ts": _iso(e["server_ts"])})
            for e in files[(hour, part)]
        ]
        if index == 4:
            lines.insert(len(lines) // 2, BAD_LINE)
        body = ("\n".join(lines) + "\n").encode()
        name = f"landing/2026/03/02/{8 + hour:02d}/part-{part}.ndjson"
        if index % 2:
            bodies[name + ".gz"] = gzip.compress(body)
        else:
            bodies[name] = body
    unique = len({e["event_id"] for rows in files.values() for e in rows})
    return bodies, {"unique": unique, "late": late, "resends": resends, "files": len(bodies)}


def run_cli(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if "--json" in args else result.stdout


@dataclass
class Flow:
    lake: GlueLake
    s3: Settings  # Glue catalog, s3:// warehouse
    local: Settings  # embedded catalog, file:// warehouse
    expected: dict[str, int]
    s3_ingest: dict[str, Any]
    local_ingest: dict[str, Any]
    late_snapshots: int
    files_before: set[str]
    orphan_key: str
    maintenance: dict[str, Any]
    files_after: set[str]
    bucket_keys_after: set[str]


def _data_files(settings: Settings) -> set[str]:
    table = open_catalog(settings).load_table(settings.table.identifier)
    return {task.file.file_path for task in table.scan().plan_files()}


def _bucket_keys(lake: GlueLake, prefix: str) -> set[str]:
    s3 = lake.moto.client("s3")
    keys: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=lake.bucket, Prefix=prefix):
        keys.update(o["Key"] for o in page.get("Contents", []))
    return keys


def maintain(glue: list[str]) -> dict[str, Any]:
    """``lakehouse maintain run`` with every window at 0 so expiry and orphan removal
    delete on S3 at once."""
    return run_cli(  # type: ignore[no-any-return]
        "maintain",
        "run",
        *glue,
        "--snapshot-retention",
        "0s",
        "--retain-last",
        "1",
        "--orphan-retention",
        "0s",
        "--force",
        "--hot-window",
        "0s",
        "--json",
    )


@pytest.fixture(scope="module")
def flow(glue_lake: GlueLake, tmp_path_factory: pytest.TempPathFactory) -> Flow:
    bodies, expected = generate_landing()
    s3 = glue_lake.moto.client("s3")
    local_root = tmp_path_factory.mktemp("flow-local")
    for key, body in bodies.items():
        s3.put_object(Bucket=glue_lake.bucket, Key=key, Body=body)
        path = local_root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    s3_settings = glue_lake.settings(TABLE)
    local = Settings(home=local_root / "lakehouse", table=s3_settings.table)
    glue = ["--home", str(s3_settings.home), "--catalog", "glue", "--table", TABLE]
    with glue_lake.env_context():
        init = run_cli("init", *glue, "--json")
        assert init["location"].startswith(f"s3://{glue_lake.bucket}/warehouse/")
        # one bad line -> exit code 1 (records rejected), on both paths
        s3_ingest = run_cli(
            "ingest",
            f"s3://{glue_lake.bucket}/landing/",
            *glue,
            "--max-files-per-commit",
            "2",
            "--json",
            code=1,
        )
        local_ingest = run_cli(
            "ingest",
            str(local_root / "landing"),
            "--create",
            "--home",
            str(local.home),
            "--table",
            TABLE,
            "--max-files-per-commit",
            "2",
            "--json",
            code=1,
        )
        table = open_catalog(s3_settings).load_table(s3_settings.table.identifier)
        late_snapshots = sum(
            1
            for snap in table.metadata.snapshots
            if snap.summary is not None and snap.summary.get("lakehouse.kind") == "late"
        )
        files_before = _data_files(s3_settings)
        # an orphan: an object under the table's data folder that no snapshot references
        location = table.location().removeprefix(f"s3://{glue_lake.bucket}/")
        orphan_key = f"{location}/data/leftover-of-a-failed-commit.parquet"
        s3.put_object(Bucket=glue_lake.bucket, Key=orphan_key, Body=b"not referenced")
        with pytest.MonkeyPatch.context() as monkeypatch:
            # Listing for expiry and orphan removal must use the catalog's s3.* settings
            # (endpoint, keys), not the process's AWS environment: take that away.
            for key in (
                "AWS_ENDPOINT_URL",
                "AWS_ENDPOINT_URL_S3",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ):
                monkeypatch.delenv(key, raising=False)
            maintenance = maintain(glue)
        files_after = _data_files(s3_settings)
    return Flow(
        glue_lake,
        s3_settings,
        local,
        expected,
        s3_ingest,
        local_ingest,
        late_snapshots,
        files_before,
        orphan_key,
        maintenance,
        files_after,
        _bucket_keys(glue_lake, location + "/"),
    )


def test_ingest_from_s3_into_glue_equals_the_local_ingest(flow: Flow, glue_trino: GlueLake) -> None:
    got, local, expected = flow.s3_ingest, flow.local_ingest, flow.expected
    assert got["files"] == local["files"] == expected["files"] > 12
    assert got["records_written"] == local["records_written"] == expected["unique"]
    assert got["duplicates_dropped"] == local["duplicates_dropped"] == expected["resends"] > 0
    assert got["records_rejected"] == local["records_rejected"] == 1
    assert got["late_records"] == local["late_records"] >= expected["late"] > 0
    assert got["commits"] == local["commits"] > 1
    assert flow.late_snapshots > 0
    rejected = open_catalog(flow.s3).load_table(("flow", "events_rejected")).scan().to_arrow()
    assert rejected.num_rows == 1
    [source] = rejected.column("source").to_pylist()
    assert source.startswith(f"s3://{flow.lake.bucket}/landing/2026/03/02/")


def test_maintenance_compacted_on_s3_and_deleted_the_replaced_objects(
    flow: Flow, glue_trino: GlueLake
) -> None:
    result = flow.maintenance
    assert result["ok"] is True, result
    compaction, expiry, orphans = result["compaction"], result["expiry"], result["orphans"]
    hours = {f.split("client_ts_hour=")[1].split("/")[0] for f in flow.files_before}
    assert len(hours) == HOURS and len(flow.files_before) > 2 * HOURS  # several files an hour
    assert compaction["files_rewritten"] == len(flow.files_before)
    assert compaction["files_added"] == len(flow.files_after) == HOURS  # one file per hour
    assert compaction["duplicates_removed"] == 0  # ingest already kept each event once
    assert expiry["snapshots_expired"] > 0 and expiry["data_files_deleted"] > 0
    assert orphans["orphans_deleted"] >= 1
    assert any(p.endswith(flow.orphan_key) for p in orphans["orphan_paths"])
    # the bucket no longer holds the replaced data files nor the orphan; it holds the new ones
    prefix = f"s3://{flow.lake.bucket}/"
    after_keys = {prefix + k for k in flow.bucket_keys_after}
    assert not (flow.files_before & after_keys), "replaced data files are still in the bucket"
    assert flow.orphan_key not in flow.bucket_keys_after
    assert flow.files_after <= after_keys
    assert {k for k in after_keys if k.endswith(".parquet")} == flow.files_after
    table = open_catalog(flow.s3).load_table(flow.s3.table.identifier)
    assert len(table.metadata.snapshots) == 1
    assert table.scan().count() == flow.expected["unique"]


def test_trino_on_glue_reads_the_ordered_view_as_the_local_path(
    flow: Flow, glue_trino: GlueLake
) -> None:
    args = ["--home", str(flow.s3.home), "--catalog", "glue", "--table", TABLE]
    out = run_cli("trino", "views", *args, "--port", str(glue_trino.port), "--json")
    assert out["views"][0]["view"] == "lakehouse.flow.events_ordered"
    columns = (
        "user_id",
        "event_seq",
        "event_id",
        "event_type",
        "client_ts",
        "server_ts",
        "prev_event_type",
        "millis_since_prev",
    )
    got = query(
        f"SELECT {', '.join(columns)} FROM events_ordered ORDER BY user_id, event_seq",
        settings=flow.s3,
        port=glue_trino.port,
    ).rows
    want = ordered(flow.local).select(*columns).collect()
    assert len(got) == want.height == flow.expected["unique"]
    by_user_got: dict[str, list[tuple[Any, ...]]] = {}
    for row in got:
        by_user_got.setdefault(row[0], []).append(tuple(row))
    by_user_want: dict[str, list[tuple[Any, ...]]] = {}
    for row in want.rows():
        by_user_want.setdefault(row[0], []).append(tuple(row))
    assert sorted(by_user_got) == sorted(by_user_want) and len(by_user_got) == 40
    for user, rows in by_user_want.items():
        assert by_user_got[user] == rows, user  # same events, same order, same gaps
    [(n, distinct)] = query(
        "SELECT count(*), count(DISTINCT event_id) FROM events",
        settings=flow.s3,
        port=glue_trino.port,
    ).rows
    assert n == distinct == flow.expected["unique"]


def _comparable(result: FunnelResult) -> tuple[dict[str, Any], list[float | None]]:
    data = result.to_dict()
    data.pop("engine")
    data.pop("snapshot_id")  # two tables, two snapshot ids
    medians: list[float | None] = []
    for steps in [data["steps"], *(g["steps"] for g in data.get("breakdown", []))]:
        for step in steps:
            medians.append(step.pop("median_seconds_to_step"))
    return data, medians


@pytest.mark.parametrize(
    "options",
    [
        {"window": timedelta(minutes=30)},
        {"window": timedelta(hours=2)},
        {"window": timedelta(hours=2), "mode": "strict"},
        {"window": timedelta(hours=1), "breakdown": "properties.platform"},
    ],
    ids=["30m", "2h", "strict", "by-platform"],
)
def test_trino_funnel_on_glue_equals_the_local_polars_funnel(
    flow: Flow, glue_trino: GlueLake, options: dict[str, Any]
) -> None:
    request = FunnelRequest(STEPS, **options)
    trino = run_trino(flow.s3, request, port=glue_trino.port)
    local = run_funnel(flow.local, request, engine="polars")
    assert trino.engine == "trino" and local.engine == "polars"
    (t_data, t_medians), (l_data, l_medians) = _comparable(trino), _comparable(local)
    assert t_data == l_data
    for a, b in zip(t_medians, l_medians, strict=True):
        assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9)  # type: ignore[arg-type]
    users = [s.users for s in trino.steps]
    assert users[0] == 40 and users[0] > users[-1] > 0  # a real funnel, with drop-off
    if "breakdown" in options:
        assert {g.value for g in trino.breakdown} == {"ios", "android", "web"}
