"""The reproducible compute mode: a stage process computes with the pinned ISA and threads."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from rlhf.core import compute
from rlhf.core.config import parse_params

from ..conftest import REPO

X86 = platform.machine().lower() in ("x86_64", "amd64")

# torch is imported BEFORE the pin: the process must re-execute itself to honour it.
LATE_PIN = """
import json, sys
import torch
sys.path.insert(0, {repo!r})
from rlhf.core import compute
from rlhf.core.config import parse_params
compute.pin(parse_params({{"compute": {{"threads": 1}}}}).compute)
print(json.dumps(compute.in_force()))
"""


def _clean_env() -> dict[str, str]:
    drop = {compute.MARK, "OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_a_process_that_loaded_torch_first_is_re_executed_pinned():
    out = subprocess.run(
        [sys.executable, "-c", LATE_PIN.format(repo=str(REPO))],
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    mode = json.loads(out.strip().splitlines()[-1])
    assert mode["reproducible"] is True
    assert mode["threads"] == 1
    if X86:
        assert mode["isa"] == "AVX2"


def test_the_mode_off_leaves_the_environment_alone():
    cfg = parse_params({"compute": {"reproducible": False}}).compute
    assert compute.environment(cfg) == {}


@pytest.mark.skipif(not X86, reason="ISA pinning is x86-64 only")
def test_the_pinned_environment_names_every_library_and_the_threads():
    env = compute.environment(parse_params({"compute": {"threads": 3}}).compute)
    assert env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert env["MKL_CBWR"].startswith("AVX2")
    assert env["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
