"""Sharded, resumable, multi-worker stage work (rlhf.core.shards): finished shards are reused,
shards of other inputs or damaged files never are, and workers split the shards."""

import json
import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from rlhf.core.config import ConfigError, parse_params
from rlhf.core.shards import ShardedRun, cut, digest

from ..conftest import REPO

ROWS = list(range(23))


def shards_of(rows, size=5, salt="a"):
    return cut(len(rows), size, lambda a, b: digest(salt, a, b, rows[a:b]))


def squares(calls):
    def work(sh):
        calls.append(sh.index)
        return pa.table({"x": [r * r for r in ROWS[sh.start : sh.stop]]})

    return work


def values(tables):
    return pa.concat_tables(tables).column("x").to_pylist()


def test_shards_cover_the_rows_in_order():
    shards = shards_of(ROWS)
    assert [(s.start, s.stop) for s in shards] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert len({s.fingerprint for s in shards}) == len(shards)


def test_a_crashed_run_resumes_from_its_finished_shards(tmp_path):
    calls = []
    work = squares(calls)

    def crash_at_3(sh):
        if sh.index == 3:
            raise RuntimeError("killed")
        return work(sh)

    with pytest.raises(RuntimeError, match="killed"):
        ShardedRun("t", shards_of(ROWS), tmp_path).run(crash_at_3)
    assert calls == [0, 1, 2]
    calls.clear()
    run = ShardedRun("t", shards_of(ROWS), tmp_path)
    assert values(run.run(work)) == [r * r for r in ROWS]
    assert calls == [3, 4] and run.reused == 3
    # Nothing half-written is ever left under a shard's name.
    assert not list(tmp_path.rglob("*.tmp-*"))


def test_shards_of_other_inputs_or_damaged_files_are_never_reused(tmp_path):
    calls = []
    ShardedRun("t", shards_of(ROWS), tmp_path).run(squares(calls))
    calls.clear()
    # Other params: another fingerprint for every shard, so every shard runs again.
    ShardedRun("t", shards_of(ROWS, salt="b"), tmp_path).run(squares(calls))
    assert calls == [0, 1, 2, 3, 4]
    calls.clear()
    # A shard file whose bytes no longer match its manifest is redone, not read.
    run = ShardedRun("t", shards_of(ROWS), tmp_path)
    damaged = run.dir / "shard-00002.parquet"
    damaged.write_bytes(damaged.read_bytes()[:-7] + b"garbage")
    assert values(run.run(squares(calls))) == [r * r for r in ROWS]
    assert calls == [2]


def test_shard_sizes_must_not_cut_a_batch():
    base = parse_params({})
    with pytest.raises(ConfigError, match="generate.shard_prompts"):
        parse_params({"generate": {"batch_prompts": 32, "shard_prompts": 100}})
    with pytest.raises(ConfigError, match="score.shard_rows"):
        parse_params({"score": {"batch_size": 64, "shard_rows": 1000}})
    assert base.generate.shard_prompts % base.generate.batch_prompts == 0


@pytest.mark.slow
def test_two_worker_processes_split_the_shards_and_both_get_the_whole_table(tmp_path):
    """Two processes under torchrun (gloo on CPU): each runs about half of the shards, both
    return the same full table, equal to one worker's."""
    script = tmp_path / "work.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json, os, sys
            import pyarrow as pa
            sys.path.insert(0, {str(REPO)!r})
            from rlhf.core.shards import ShardedRun, Workers, cut, digest
            rows = list(range(23))
            shards = cut(len(rows), 5, lambda a, b: digest("a", a, b, rows[a:b]))
            mine = []
            def work(sh):
                mine.append(sh.index)
                return pa.table({{"x": [r * r for r in rows[sh.start:sh.stop]]}})
            w = Workers()
            out = pa.concat_tables(ShardedRun("t", shards, sys.argv[1]).run(work, w))
            with open(os.path.join(sys.argv[2], f"rank{{w.index}}.json"), "w") as f:
                json.dump({{"count": w.count, "mine": mine, "x": out.column("x").to_pylist()}}, f)
            """
        )
    )
    bindir = os.path.dirname(sys.executable)
    r = subprocess.run(
        [f"{bindir}/torchrun", "--standalone", "--nproc_per_node", "2", str(script)]
        + [str(tmp_path / "shards"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert [x["count"] for x in ranks] == [2, 2]
    assert sorted(ranks[0]["mine"] + ranks[1]["mine"]) == [0, 1, 2, 3, 4]
    assert ranks[0]["mine"] and ranks[1]["mine"]
    assert ranks[0]["x"] == ranks[1]["x"] == [r * r for r in ROWS]


def test_a_shards_code_fingerprint_covers_every_module_it_imports(tmp_path):
    from rlhf.core.modules import REPO, closure, module_file
    from rlhf.core.shards import code_fingerprint

    # Generation's hand-kept list once missed rlhf.core.seeds, which sets its sampling seed.
    assert REPO / "rlhf/core/seeds.py" in closure(module_file("rlhf.online.generation", REPO))
    pkg = tmp_path / "rlhf"
    pkg.mkdir()
    (pkg / "work.py").write_text("def run():\n    from rlhf.helper import step\n")
    (pkg / "helper.py").write_text("from rlhf import seeds\n\nstep = 1\n")
    (pkg / "seeds.py").write_text("SEED = 0\n")
    (pkg / "other.py").write_text("X = 0\n")
    before = code_fingerprint(["rlhf.work"], tmp_path)
    (pkg / "other.py").write_text("X = 1\n")
    assert code_fingerprint(["rlhf.work"], tmp_path) == before  # not imported: shards kept
    (pkg / "seeds.py").write_text("SEED = 1\n")
    assert code_fingerprint(["rlhf.work"], tmp_path) != before  # imported two steps away
    with pytest.raises(ValueError, match="rlhf.gone: not a module"):
        code_fingerprint(["rlhf.gone"], tmp_path)
