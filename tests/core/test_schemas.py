import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlhf.core.io import atomic_path, clean_stale_temporaries
from rlhf.core.schemas import SchemaError, read_table, validate, write_table

MSG = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def prefs(n=3, **override):
    rows = [
        {
            "pair_id": f"p{i}",
            "prompt_id": "x",
            "source": "hh",
            "chosen": MSG,
            "rejected": [MSG[0], {"role": "assistant", "content": "bye"}],
            "chosen_score": None,
            "rejected_score": None,
            "margin": None,
            "annotator": "a",
            "source_row": i,
        }
        for i in range(n)
    ]
    for i, r in override.items():
        rows[int(i[1:])].update(r)
    return rows


def test_valid_table_roundtrips(tmp_path):
    t = pa.Table.from_pylist(prefs())
    write_table("preferences", t, tmp_path / "p.parquet")
    back = read_table("preferences", tmp_path / "p.parquet")
    assert back.num_rows == 3 and back.column("chosen").to_pylist()[0] == MSG


def test_null_in_required_field_names_file_row_and_field(tmp_path):
    t = pa.Table.from_pylist(prefs(r2={"prompt_id": None}))
    with pytest.raises(SchemaError, match=r"p\.parquet: row 2, field 'prompt_id': null"):
        write_table("preferences", t, tmp_path / "p.parquet")
    assert not (tmp_path / "p.parquet").exists()


def test_missing_and_extra_columns_rejected():
    t = (
        pa.Table.from_pylist(prefs())
        .drop_columns(["annotator"])
        .append_column("oops", pa.array([1, 2, 3]))
    )
    with pytest.raises(
        SchemaError, match=r"missing columns \['annotator'\] and unexpected columns \['oops'\]"
    ):
        validate("preferences", t, "mem")


def test_wrong_type_rejected():
    rows = prefs()
    for r in rows:
        r["source_row"] = "seven"
    with pytest.raises(SchemaError, match=r"field 'source_row' has type string, expected int64"):
        validate("preferences", pa.Table.from_pylist(rows), "mem")


def test_null_inside_message_list_rejected():
    t = pa.Table.from_pylist(prefs(r1={"chosen": [{"role": "user", "content": None}]}))
    with pytest.raises(SchemaError, match=r"field 'chosen.content': null inside a message list"):
        validate("preferences", t, "mem")


def test_same_rows_give_byte_identical_files(tmp_path):
    t = pa.Table.from_pylist(prefs())
    write_table("preferences", t, tmp_path / "a.parquet")
    write_table("preferences", t, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_failed_write_keeps_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "p.parquet"
    write_table("preferences", pa.Table.from_pylist(prefs(2)), target)
    before = target.read_bytes()
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        pq.write_table(pa.table({"half": [1]}), tmp)
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["p.parquet"]


def test_atomic_directory_replace_and_stale_cleanup(tmp_path):
    d = tmp_path / "model"
    with atomic_path(d) as tmp:
        tmp.mkdir()
        (tmp / "w.bin").write_text("v1")
    with atomic_path(d) as tmp:
        tmp.mkdir()
        (tmp / "w.bin").write_text("v2")
    assert (d / "w.bin").read_text() == "v2"
    (tmp_path / "model.tmp-999").mkdir()  # what a killed writer leaves behind
    assert clean_stale_temporaries(tmp_path) == 1
    assert sorted(os.listdir(tmp_path)) == ["model"]
