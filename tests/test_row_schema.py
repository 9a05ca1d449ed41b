"""One row schema (fastdrop.results.row.Row) for the writer and the reader: a real run writes exactly its fields
with the current schema_version, an older row without the version (or without later fields) still loads
in the report, a newer one is skipped with a reason, and the writer cannot add a key the schema lacks."""
from __future__ import annotations

import json

import pytest
from conftest import compose_config, shrink

from fastdrop.results import row as schema
from fastdrop.report import load_rows
from fastdrop.run.trainer import Trainer


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("row")
    cfg = shrink(compose_config(["strategy=dropping", "strategy.policy=schedule", "strategy.schedule={1:1}"]),
                 tmp, {"epochs": 2})
    t = Trainer(cfg, tmp / "run")
    t.fit()
    return json.loads(t.row_path.read_text())


def test_a_run_writes_exactly_the_schemas_fields(written):
    assert list(written) == schema.FIELDS
    assert written["schema_version"] == schema.SCHEMA_VERSION == 2
    assert schema.problem(written) is None


def _store(tmp_path, rows):
    runs = tmp_path / "runs"
    runs.mkdir()
    for i, r in enumerate(rows):
        (runs / f"{i}.json").write_text(json.dumps(r))
    return load_rows(tmp_path)


def test_an_old_row_without_version_or_later_fields_still_loads(tmp_path, written):
    old = {k: v for k, v in written.items() if k in schema.REQUIRED}  # what a version-1 row must hold
    old["run_id"] = "old"
    df, warnings = _store(tmp_path, [old])
    assert warnings == [] and list(df.run_id) == ["old"]
    rec = df.iloc[0]
    assert rec.policy is None and rec.status_reason == "" and rec.device_name == written["device"]
    assert rec.A == written["A"] and len(rec.history) == 2


def test_a_newer_or_broken_row_is_skipped_with_the_reason(tmp_path, written):
    newer = {**written, "run_id": "new", "schema_version": schema.SCHEMA_VERSION + 1}
    broken = {k: v for k, v in written.items() if k != "seed"}
    df, warnings = _store(tmp_path, [newer, broken])
    assert df.empty
    assert "schema_version 3 is newer" in warnings[0] and "missing keys: seed" in warnings[1]


def test_the_writer_cannot_add_a_key_the_schema_lacks():
    with pytest.raises(TypeError, match="speedup"):
        schema.Row(**{k: None for k in schema.REQUIRED}, speedup=2.0)
