"""Training curves through DVCLive: every logged training metric (loss, learning rate, grad
norm, the RM's accuracy and margin, DPO's chosen/rejected rewards and margins, a KL budget's
KL) as `<dir>/plots/metrics/<name>.tsv`, one row per logged step, which `dvc plots show`
draws (dvc.yaml's top-level plots take every TSV under reports/curves). The last value of
each goes into the stage's own metrics file (`final`, rlhf.models.train), where
`dvc exp show` lists it; DVCLive's own summary is dropped so that the curves folders hold
plot data only."""

from __future__ import annotations

import os
from pathlib import Path

from transformers.integrations import DVCLiveCallback

WALL_CLOCK = ("runtime", "per_second", "total_flos")
"""Log keys that measure the machine, not the training: left out, so that the curves of a
re-run are byte-identical and DVC's lock holds across machines."""


def kept(key: str, value) -> bool:
    """Whether a Trainer log entry is a curve point."""
    from dvclive.plots import Metric

    return (
        key not in ("epoch", "train_loss")
        and not any(w in key for w in WALL_CLOCK)
        and Metric.could_log(value)
    )


def ensure(out_dir: str | Path) -> None:
    """A stage's curves folder, made where nothing was logged under it (an imported base, SFT
    switched off, a DPO round whose every seed had spent its KL budget): a loss series with no
    row, so that the declared output exists and `dvc plots show` reads it as an empty plot."""
    out = Path(out_dir)
    if not any(out.glob("**/*.tsv")):
        from rlhf.core.io import write_text

        write_text(out / "plots" / "metrics" / "loss.tsv", "step\tloss\n")


class TrainingCurves(DVCLiveCallback):
    """transformers' DVCLive callback writing into `out_dir` only: no params file (the
    Trainer's arguments hold temporary paths), no dvc.yaml of its own (the pipeline's declares
    the folder), no experiment saved (DVC runs the stage), wall-clock keys left out, and each
    row at the Trainer's global step. Rank 0 writes; other ranks log nothing."""

    def __init__(self, out_dir: str | Path):
        super().__init__(live=None)
        self.out_dir = Path(out_dir)

    def setup(self, args, state, model):
        self._initialized = True
        if state.is_world_process_zero and self.live is None:
            os.environ.setdefault("DVC_STUDIO_OFFLINE", "true")  # never post to Studio
            from dvclive import Live

            self.live = Live(str(self.out_dir), save_dvc_exp=False, dvcyaml=None, report=None)

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if not self._initialized:
            self.setup(args, state, model)
        if not state.is_world_process_zero:
            return
        from dvclive.utils import standardize_metric_name

        points = {k: v for k, v in (logs or {}).items() if kept(k, v)}
        if not points:
            return
        self.live.step = state.global_step
        for key, value in points.items():
            self.live.log_metric(standardize_metric_name(key, "dvclive.huggingface"), value)

    def on_train_end(self, args, state, control, **kwargs):
        if self._initialized and state.is_world_process_zero:
            self.live.end()
            Path(self.live.metrics_file).unlink(missing_ok=True)
