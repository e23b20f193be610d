"""The reproducible compute mode: which kernels and how many threads every stage process uses.

The last bits of a float result depend on the vector kernels torch (ATen), MKL and oneDNN
dispatch to and on the thread count (measured with ../shared/tools/fp-fingerprint.py: AVX-512
kernels, SSE4.1 kernels or one thread instead of two each give other weights than AVX2 with two
threads). Left alone, each library picks the widest ISA of the CPU it runs on, so an AVX-512
machine and an AVX2 machine write different `dvc.lock` hashes from the same code and params.
Pinning all three to AVX2 and the thread count to `compute.threads` makes every x86-64 CPU
with AVX2 take the same path (shown: a Zen 3 AVX2 machine and an AVX-512 machine print the same
fingerprint pinned, different ones unpinned).

The variables are read when the libraries load, so they must be in the environment before
torch is imported: `pin` sets them, and re-executes the process when torch is already loaded
(a stage can then not run unpinned by accident). This module imports nothing heavy.

Not covered: GPUs (the mode sets CUBLAS_WORKSPACE_CONFIG and turns on torch's deterministic
algorithms there, which makes one GPU model repeat itself, not two GPU models agree; vLLM
promises no bitwise repeatability across batch compositions), other torch/MKL/oneDNN versions
(other kernels), and non-x86 CPUs (ARM has no AVX2: its results differ; the mode then pins only
the threads).
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

MARK = "RLHF_REPRODUCIBLE"
"""Set to "1" in a pinned process (and inherited by its children: torchrun workers, servers)."""

_ISA_ENV = {
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels
        "MKL_CBWR": "AVX2,STRICT",  # MKL's conditional numerical reproducibility
        "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN's JIT kernels (convolutions, some matmuls)
    }
}

# cuBLAS picks reduction orders by workspace; a fixed small workspace makes them repeat
# (PyTorch's reproducibility notes). Harmless where there is no GPU.
_GPU_ENV = {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


def environment(cfg: Any) -> dict[str, str]:
    """The environment variables of the reproducible mode for a `compute` config section;
    empty when the mode is off."""
    if not cfg.reproducible:
        return {}
    n = str(cfg.threads)
    env = {MARK: "1", "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, **_GPU_ENV}
    if _x86():
        env.update(_ISA_ENV[cfg.isa])
    return env


def pin(cfg: Any) -> None:
    """Put this process in the reproducible mode of `cfg` (a ComputeConfig).

    Sets the variables that are not yet in force; if torch is already imported, they came too
    late for it, so the process re-executes itself with them (same pid, same arguments).
    """
    env = environment(cfg)
    todo = {k: v for k, v in env.items() if os.environ.get(k) != v}
    if not todo:
        return
    os.environ.update(todo)
    if "torch" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def apply_torch() -> None:
    """Switches that exist only once torch is loaded: deterministic algorithms on CUDA (on the
    CPU the kernels pinned above are already deterministic run to run, and the switch would
    only add NaN-filling of every uninitialised tensor)."""
    torch = sys.modules.get("torch")  # a stage that does not use torch does not load it here
    if os.environ.get(MARK) != "1" or torch is None:
        return
    if torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)


def in_force() -> dict[str, Any]:
    """What this process computes with, for the stage timings: the mode, the ISA torch
    dispatches to and its thread count (when torch is loaded)."""
    out: dict[str, Any] = {"reproducible": os.environ.get(MARK) == "1"}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["isa"] = torch.backends.cpu.get_cpu_capability()
        out["threads"] = torch.get_num_threads()
        out["torch"] = torch.__version__
    return out
