"""CUDA-only checks (marked `gpu`, skipped without CUDA): on a lent GPU machine run
`python -m pytest -m gpu`. Sharded sampling gives the same table for any shard size on the GPU
(HF and, when installed, vLLM), and two GPU workers give one worker's table."""

import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from rlhf.core.config import GenerateConfig
from rlhf.models.checkpoints import save_model, tiny_llama, train_tokenizer
from rlhf.online.generation import generate

from ..conftest import REPO

pytestmark = pytest.mark.gpu
TEXTS = ["the fox is red.", "what is 2 plus 2?", "4.", "where does the whale live?"] * 50


@pytest.fixture
def policy(tmp_path):
    tok = train_tokenizer(TEXTS, 320)
    # head size 64: every vLLM attention backend supports it
    save_model(tiny_llama(tok, 128, 2, 2, 256, seed=0), tok, tmp_path / "policy")
    return tmp_path / "policy"


def prompts(n=24):
    return pa.Table.from_pylist(
        [
            {"prompt_id": f"p{i}", "messages": [{"role": "user", "content": f"what is {i}?"}]}
            for i in range(n)
        ]
    )


@pytest.mark.parametrize("backend", ["hf", "vllm"])
def test_samples_on_the_gpu_do_not_depend_on_the_shard_size(policy, tmp_path, backend):
    if backend == "vllm":
        pytest.importorskip("vllm")
    tables = [
        generate(
            GenerateConfig(
                backend=backend, n=4, max_new_tokens=12, batch_prompts=4, shard_prompts=size
            ),
            "iter_1",
            policy,
            prompts(),
            0,
            tmp_path / f"shards-{size}",
        )  # fmt: skip
        for size in (4, 12)
    ]
    assert tables[0].num_rows == 24 * 4
    assert tables[0].equals(tables[1])


def test_two_gpu_workers_write_what_one_writes(policy, tmp_path):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    script = tmp_path / "gen.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            import pyarrow as pa, pyarrow.parquet as pq
            sys.path.insert(0, {str(REPO)!r})
            from rlhf.core.config import GenerateConfig
            from rlhf.core.io import is_main_process
            from rlhf.online.generation import generate
            prompts = pa.Table.from_pylist([
                {{"prompt_id": f"p{{i}}", "messages": [{{"role": "user", "content": f"what is {{i}}?"}}]}}
                for i in range(24)])
            cfg = GenerateConfig(n=4, max_new_tokens=12, batch_prompts=4, shard_prompts=4)
            t = generate(cfg, "iter_1", sys.argv[1], prompts, 0, sys.argv[2])
            if is_main_process():
                pq.write_table(t, sys.argv[3])
            """
        )
    )
    bindir = os.path.dirname(sys.executable)
    outs = []
    for n in (1, 2):
        out = tmp_path / f"out{n}.parquet"
        launcher = [f"{bindir}/torchrun", "--standalone", "--nproc_per_node", str(n)]
        r = subprocess.run(
            [*launcher, str(script), str(policy), str(tmp_path / f"w{n}"), str(out)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
