"""Sampling backends behind one interface: batched Hugging Face generate (CPU or GPU), vLLM
in-process (GPU, when installed) and a serving engine over HTTP (any OpenAI-compatible server:
transformers serve, vLLM, SGLang). All render prompts with the policy's own chat template and
stop at its end-of-turn token."""

from __future__ import annotations

import copy
import json
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from rlhf.core import paths
from rlhf.core.config import ConfigError, GenerateConfig, ServerConfig
from rlhf.core.http import OK, bearer, post_json
from rlhf.core.schemas import GENERATIONS
from rlhf.core.seeds import seeded
from rlhf.core.shards import Shard, digest, length_order, map_shards
from rlhf.models.checkpoints import adds_bos, load_policy, load_tokenizer, with_bos
from rlhf.online.engine import Engine, EngineFailed


@dataclass(frozen=True)
class Sampling:
    n: int
    temperature: float
    top_p: float
    top_k: int
    max_new_tokens: int
    seed: int


@dataclass(frozen=True)
class Completion:
    text: str
    n_tokens: int
    finish_reason: str  # "stop" (end-of-turn token), "length", or "error:<why>" (server)
    engine: str = ""  # what sampled it, when the backend's name does not say (server)


class Backend(Protocol):
    name: str

    def generate(
        self, prompts: list[list[dict]], s: Sampling, desc: str = "generate", first_batch: int = 0
    ) -> list[list[Completion]]: ...


def render_prompts(tok, prompts: list[list[dict]]) -> list[str]:
    """Each prompt rendered with the policy's chat template, ready for the assistant's answer,
    with exactly one BOS where the model expects one (tokenize with add_special_tokens=False)."""
    return [
        with_bos(tok, tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True))
        for p in prompts
    ]


class HFBackend:
    name = "hf"

    def __init__(self, model_dir: str | Path | None, batch_prompts: int = 32, device=None):
        if model_dir is None:  # HFBackend.of: a model already in memory
            return
        # On a GPU when there is one (CPU otherwise): the GPU profiles' HF fallback path; a
        # worker of a multi-process launch passes its own device.
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._set(
            load_policy(model_dir).to(device).eval(), load_tokenizer(model_dir), batch_prompts
        )

    @classmethod
    def of(cls, model, tok, batch_prompts: int = 32) -> HFBackend:
        """A backend over a model already in memory (on its own device), e.g. the policy a
        trainer is training; the caller puts it in eval mode. `tok` is copied, not changed."""
        b = cls(None)
        b._set(model, copy.copy(tok), batch_prompts)
        return b

    def _set(self, model, tok, batch_prompts: int) -> None:
        self.model, self.tok, self.batch_prompts = model, tok, batch_prompts
        self.device = model.device
        self.tok.padding_side = "left"  # decoder-only models generate from the right edge

    def _render(self, prompts: list[list[dict]]) -> list[str]:
        return render_prompts(self.tok, prompts)

    @torch.inference_mode()
    def generate(self, prompts, s: Sampling, desc="generate", first_batch=0):
        """`first_batch`: the index of the first batch in the whole input (a shard's offset)."""
        out: list[list[Completion]] = []
        eos = self.tok.eos_token_id
        for b, start in enumerate(
            tqdm(
                range(0, len(prompts), self.batch_prompts),
                desc=desc,
                unit="batch",
                disable=desc is None,
            )
        ):
            chunk = prompts[start : start + self.batch_prompts]
            enc = self.tok(
                self._render(chunk), return_tensors="pt", padding=True, add_special_tokens=False
            ).to(self.device)
            # One seed per batch, by its place in the whole input: results do not depend on how
            # many batches ran before in this process, nor on which shards a worker took.
            torch.manual_seed(s.seed * 1_000_003 + first_batch + b)
            greedy = s.temperature == 0.0
            ids = self.model.generate(
                **enc,
                do_sample=not greedy,
                temperature=None if greedy else s.temperature,
                top_p=None if greedy else s.top_p,
                top_k=None if greedy else s.top_k,
                max_new_tokens=s.max_new_tokens,
                num_return_sequences=s.n,
                eos_token_id=eos,
                pad_token_id=self.tok.pad_token_id,
            )
            new = ids[:, enc["input_ids"].shape[1] :].tolist()
            for i in range(len(chunk)):
                group = []
                for seq in new[i * s.n : (i + 1) * s.n]:
                    if eos in seq:
                        seq, reason = seq[: seq.index(eos)], "stop"
                    else:
                        reason = "length"
                    text = self.tok.decode(seq, skip_special_tokens=True).strip()
                    group.append(Completion(text, len(seq), reason))
                out.append(group)
        return out


class VLLMBackend:
    name = "vllm"

    def __init__(self, model_dir: str | Path, batch_prompts: int = 0, device=None):
        try:
            from vllm import LLM
        except ImportError as e:
            raise RuntimeError(
                "generate.backend=vllm needs the GPU extra: pip install -e '.[gpu]' (and a GPU)"
            ) from e
        self.tok = load_tokenizer(model_dir)
        self.llm = LLM(model=str(model_dir), trust_remote_code=False, seed=0)

    def generate(self, prompts, s: Sampling, desc="generate", first_batch=0):
        # A per-request seed: a prompt's samples do not depend on its batch (shards are safe).
        from vllm import SamplingParams

        params = SamplingParams(
            n=s.n,
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k if s.top_k > 0 else -1,
            max_tokens=s.max_new_tokens,
            seed=s.seed,
            stop_token_ids=[self.tok.eos_token_id],
        )
        # Token ids, not text: vLLM would add special tokens to text and double a template's BOS.
        inputs = [
            {"prompt_token_ids": self.tok(t, add_special_tokens=False)["input_ids"]}
            for t in render_prompts(self.tok, prompts)
        ]
        results = self.llm.generate(inputs, params, use_tqdm=True)
        return [
            [
                Completion(
                    o.text.strip(),
                    len(o.token_ids),
                    "stop" if o.finish_reason == "stop" else "length",
                )
                for o in r.outputs
            ]
            for r in results
        ]


class ServerBackend:
    """Samples from a serving engine's `/v1/completions`, one request per sample, each with its
    own seed from (sampling seed, prompt, sample index): the samples do not depend on batches,
    shards, workers or the order requests run in, wherever the engine honours per-request seeds
    (vLLM does; transformers serve only one request at a time: server.concurrency 1). Prompts
    are rendered here with the policy's own chat template: the engine applies none.

    A sample whose request failed (an HTTP error, an unreadable reply) is kept with
    finish_reason `error:<why>` and counted; more than `max_failed_share` of a shard fails the
    shard. An engine that stops answering (connection refused, or its process gone) raises
    EngineFailed at once: the stage stops and a re-run resumes from the finished shards."""

    name = "server"

    def __init__(
        self, cfg: ServerConfig, model_dir: str | Path, log: str | Path, gpu: int | None = None
    ):
        self.cfg = cfg
        self.tok = load_tokenizer(model_dir)
        self.engine: Engine | None = None
        self.headers: dict[str, str] = {}
        if cfg.endpoint:
            self.url = cfg.endpoint.rstrip("/")
            self.model = cfg.model or str(model_dir)
            # The endpoint and the name, never the key: this lands in the table.
            self.identity = f"endpoint {self.url} {self.model}"
            warnings.warn(
                f"server.endpoint: sampling from {self.url} ({self.model}), a model DVC cannot "
                "hash: a re-run reproduces this table only if that server still serves the same "
                "weights",
                stacklevel=2,
            )
            self.headers.update(bearer(cfg.api_key_env, "server.api_key_env", ConfigError))
        else:
            self.engine = Engine(cfg, model_dir, log, gpu)
            self.url, self.model = self.engine.url, self.engine.model
            self.identity = f"server {self.engine.name}"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._failed = self._jobs = 0

    def close(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    def _prompt_text(self, rendered: str) -> str:
        """What to send so that the engine, which tokenizes with special tokens, reads exactly
        the ids the HF backend feeds the model: the rendered prompt without its leading BOS."""
        text = rendered
        if adds_bos(self.tok) and text.startswith(self.tok.bos_token):
            text = text[len(self.tok.bos_token) :]
        want = self.tok(rendered, add_special_tokens=False)["input_ids"]
        if self.tok(text)["input_ids"] != want:
            raise ValueError(
                f"server backend: the engine would tokenize this prompt differently from the "
                f"policy's chat template: {rendered[:80]!r}"
            )
        return text

    def _body(self, prompt: str, s: Sampling, seed: int) -> dict:
        greedy = s.temperature == 0.0
        body = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": seed,
        }
        eos = self.tok.eos_token_id
        if self.cfg.dialect == "transformers":
            # transformers serve builds its GenerationConfig from this field: `temperature`
            # alone does not turn sampling on, and a field left unset falls back to the model's
            # generation config and then to the library's defaults (top_k 50): set every one.
            gen = {"do_sample": not greedy, "max_new_tokens": s.max_new_tokens}
            if not greedy:
                gen |= {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k}
            gen |= {"eos_token_id": eos, "pad_token_id": self.tok.pad_token_id}
            body["generation_config"] = json.dumps(gen)
        else:
            body |= {"top_k": s.top_k if s.top_k > 0 else -1, "stop_token_ids": [eos]}
        return body

    def _gone(self) -> bool:
        """Whether to give up at once: another request found the engine gone, or its process
        has exited (no retry can reach it)."""
        return self._stop.is_set() or (self.engine is not None and not self.engine.alive())

    def _ask(self, body: dict) -> Completion:
        reply, outcome = post_json(
            f"{self.url}/completions",
            body,
            lambda r: (
                r["choices"][0]["text"],
                r["choices"][0]["finish_reason"],
                int(r["usage"]["completion_tokens"]),
            ),  # fmt: skip
            headers=self.headers,
            timeout_s=self.cfg.timeout_s,
            retries=self.cfg.retries,
            backoff_s=self.cfg.backoff_s,
            stop=self._gone,
            # transformers serve cannot cancel a request given up on: it goes on sampling and
            # moves the process-wide seed under the retry. Stop instead (the shards stay).
            retry_timeouts=self.cfg.dialect != "transformers",
        )
        if outcome == "error:timeout" and self.cfg.dialect == "transformers":
            self._stop.set()
            raise EngineFailed(
                f"{self.identity}: no reply in {self.cfg.timeout_s:g} s (server.timeout_s); a "
                "retry would not be reproducible with this engine, so the stage stops"
            )
        if outcome in ("error:connection", "error:not_asked"):
            self._stop.set()  # the others in flight give up too
            if self.engine is None:
                raise EngineFailed(f"{self.identity} stopped answering at {self.url}")
            code = self.engine.proc.poll()
            how = "stopped answering" if code is None else f"stopped (exit code {code})"
            raise EngineFailed(f"{self.identity} {how}: {self.engine.tail()}")
        if outcome != OK:
            with self._lock:
                self._failed += 1
                over = self._failed > self.cfg.max_failed_share * self._jobs
            if over:  # at once: a broken engine must not take a whole shard's timeouts first
                self._stop.set()
                raise EngineFailed(
                    f"{self.identity}: {self._failed} of {self._jobs} samples failed (the "
                    f"last: {outcome}), more than server.max_failed_share "
                    f"{self.cfg.max_failed_share}"
                )
            return Completion("", 0, outcome, self.identity)
        text, why, n = reply
        stopped = why == "stop"
        # completion_tokens counts the stop token; the HF backend's n_tokens does not.
        return Completion(text.strip(), max(0, n - stopped), "stop" if stopped else "length",
                          self.identity)  # fmt: skip

    def generate(self, prompts, s: Sampling, desc="generate", first_batch=0):
        texts = [self._prompt_text(t) for t in render_prompts(self.tok, prompts)]
        keys = [digest(p) for p in prompts]
        jobs = [
            self._body(t, s, seeded(f"{key}/{k}", s.seed))
            for t, key in zip(texts, keys, strict=True)
            for k in range(s.n)
        ]
        self._failed, self._jobs = 0, len(jobs)  # the cap counts per call (one shard)
        with ThreadPoolExecutor(self.cfg.concurrency) as pool:
            done = list(
                tqdm(
                    pool.map(self._ask, jobs),
                    total=len(jobs),
                    desc=desc,
                    unit="sample",
                    disable=desc is None,
                )  # fmt: skip
            )
        return [done[i * s.n : (i + 1) * s.n] for i in range(len(prompts))]


def make_backend(
    name: str,
    model_dir: str | Path,
    batch_prompts: int,
    device=None,
    server: ServerConfig | None = None,
    log: str | Path = "engine.log",
    gpu: int | None = None,
) -> Backend:
    if name == "hf":
        return HFBackend(model_dir, batch_prompts, device)
    if name == "vllm":
        return VLLMBackend(model_dir, batch_prompts, device)
    if name == "server":
        return ServerBackend(server or ServerConfig(), model_dir, log, gpu)
    raise ValueError(f"unknown backend {name!r}")


def sample(
    backend: str,
    policy_dir: str | Path,
    msgs: list[list[dict]],
    s: Sampling,
    batch_prompts: int,
    shard_prompts: int,
    name: str,
    workdir: str | Path,
    desc: str = "generate",
    by_length: bool = False,
    server: ServerConfig | None = None,
) -> list[list[Completion]]:
    """n completions per prompt, sampled in shards of `shard_prompts` prompts (a multiple of
    `batch_prompts`) kept under `workdir` until the caller has written its output and cleared
    them: finished shards of an interrupted run are reused, the workers of a multi-process
    launch share the shards, and the result is the same for any shard size and worker count.
    `by_length`: batches of prompts of similar length (the input sorted first, results back in
    input order). `server`: the engine of backend `server` (each worker starts its own, on its
    first unfinished shard, and stops it when its shards are done or on any failure; its log is
    `<workdir>/<name>-engine-<pid>.log`)."""
    if shard_prompts % batch_prompts:
        raise ValueError(f"shard_prompts {shard_prompts} cuts batches of {batch_prompts}")
    if by_length:
        # Prompts of similar length share a batch: less left padding to attend over (~1.14x
        # on the embedded model, bench/generation.py). Characters: a free proxy for tokens.
        order = length_order([len(t) for t in render_prompts(load_tokenizer(policy_dir), msgs)])
        sorted_out = sample(
            backend, policy_dir, [msgs[i] for i in order], s, batch_prompts, shard_prompts,
            name, workdir, desc, by_length=False, server=server,
        )  # fmt: skip
        out: list[list[Completion]] = [[] for _ in msgs]
        for i, group in zip(order, sorted_out, strict=True):
            out[i] = group
        return out

    def work(model: Backend, sh: Shard) -> pa.Table:
        outs = model.generate(
            msgs[sh.start : sh.stop],
            s,
            desc=f"{desc} shard {sh.index}",
            first_batch=sh.start // batch_prompts,
        )
        return pa.table(
            {
                "prompt": [sh.start + i for i, group in enumerate(outs) for _ in group],
                "text": [c.text for group in outs for c in group],
                "n_tokens": [c.n_tokens for group in outs for c in group],
                "finish_reason": [c.finish_reason for group in outs for c in group],
                "engine": [c.engine for group in outs for c in group],
            },
            schema=COMPLETIONS,
        )

    tables = map_shards(
        name, workdir, len(msgs), shard_prompts,
        params=("sample", backend, asdict(s), batch_prompts)
        + ((asdict(server or ServerConfig()),) if backend == "server" else ()),
        model_dir=policy_dir,
        code=[__name__],
        rows=lambda a, b: msgs[a:b],
        load=lambda w: make_backend(
            backend, policy_dir, batch_prompts, w.device, server,
            Path(workdir) / f"{name}-engine-{os.getpid()}.log", _own_gpu(w),
        ),
        work=work,
    )  # fmt: skip
    out: list[list[Completion]] = [[] for _ in msgs]
    for t in tables:
        for i, text, n, why, engine in zip(
            *(t.column(c).to_pylist() for c in COMPLETIONS.names), strict=True
        ):
            out[i].append(Completion(text, n, why, engine))
    return out


def _own_gpu(w) -> int | None:
    """The GPU a worker's engine may use when several workers share a machine (each its own);
    None for one worker, whose engine uses every GPU it is given (e.g. --data-parallel-size)."""
    if w.count > 1 and w.device.type == "cuda":
        return w.device.index
    return None


COMPLETIONS = pa.schema(
    [
        ("prompt", pa.int64()),
        ("text", pa.string()),
        ("n_tokens", pa.int64()),
        ("finish_reason", pa.string()),
        ("engine", pa.string()),
    ]
)


def generate(
    cfg: GenerateConfig,
    iteration: str,
    policy_dir: str | Path,
    prompts: pa.Table,
    replicate: int,
    workdir: str | Path | None = None,
) -> pa.Table:
    """n samples per prompt from replicate `replicate` of the iteration's policy (sampled in
    shards of `cfg.shard_prompts` prompts under `workdir`, default `.rlhf/shards/generate`:
    see :func:`sample`)."""
    seed = seeded(f"{iteration}/seed_{replicate}", cfg.seed)
    s = Sampling(cfg.n, cfg.temperature, cfg.top_p, cfg.top_k, cfg.max_new_tokens, seed)
    pids = prompts.column("prompt_id").to_pylist()
    msgs = prompts.column("messages").to_pylist()
    outs = sample(
        cfg.backend, policy_dir, msgs, s, cfg.batch_prompts, cfg.shard_prompts,
        f"{iteration}-seed_{replicate}", workdir or paths.shards("generate"),
        desc=f"generate {iteration} seed {replicate}", by_length=cfg.sort_by_length,
        server=cfg.server,
    )  # fmt: skip
    same = {
        "policy": str(policy_dir),
        "backend": cfg.backend,
        "sampling_seed": seed,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "top_k": cfg.top_k,
        "max_new_tokens": cfg.max_new_tokens,
        "stop": load_tokenizer(policy_dir).eos_token,
    }
    rows = [
        {
            "iteration": iteration,
            "seed": replicate,
            "prompt_id": pid,
            "sample_idx": k,
            "prompt": m,
            "response": c.text,
            "n_tokens": c.n_tokens,
            "finish_reason": c.finish_reason,
            **same,
            # A server's rows name the engine and its version (or the endpoint and its model).
            "backend": c.engine or cfg.backend,
        }
        for pid, m, group in zip(pids, msgs, outs, strict=True)
        for k, c in enumerate(group)
    ]
    return pa.Table.from_pylist(rows, schema=GENERATIONS)


@torch.inference_mode()
def kl_to_reference(
    policy_dir: str | Path,
    ref_dir: str | Path,
    prompts: list[list[dict]],
    responses: list[str],
    batch_size: int = 64,
    desc: str = "KL to reference",
) -> np.ndarray:
    """Per response, an estimate of KL(policy || reference) in nats (:func:`kl_per_response`)
    between the two saved models, along the policy's own sampled responses. Both models share
    the policy's tokenizer and chat template (the reference is the SFT model the policy was
    trained from)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pol = load_policy(policy_dir).to(device).eval()
    ref = load_policy(ref_dir).to(device).eval()
    return kl_per_response(
        pol, ref, load_tokenizer(policy_dir), prompts, responses, batch_size, desc
    )


@torch.inference_mode()
def kl_per_response(
    pol,
    ref,
    tok,
    prompts: list[list[dict]],
    responses: list[str],
    batch_size: int = 64,
    desc: str = "KL to reference",
) -> np.ndarray:
    """Per response, KL(pol || ref) in nats: the exact next-token KL between the two models'
    distributions, summed over the response's tokens and its end-of-turn token. Summing exact
    per-token KLs has far less variance than log-ratios of sampled tokens (never negative).
    Both models in eval mode on one device; `tok` is copied, not changed."""
    tok = copy.copy(tok)
    tok.padding_side = "right"
    device = next(pol.parameters()).device
    heads = render_prompts(tok, prompts)
    n_head = [len(ids) for ids in tok(heads, add_special_tokens=False)["input_ids"]]
    texts = [h + r + tok.eos_token for h, r in zip(heads, responses, strict=True)]
    out = np.zeros(len(texts))
    for i in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch", disable=desc is None):
        enc = tok(
            texts[i : i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(device)
        lp = torch.log_softmax(pol(**enc).logits.float(), -1)
        lq = torch.log_softmax(ref(**enc).logits.float(), -1)
        kl = (lp.exp() * (lp - lq)).sum(-1)  # (batch, positions): KL of the next token
        # Position t predicts token t + 1: response tokens are predicted from n_head - 1 on.
        pos = torch.arange(kl.shape[1], device=device)[None, :]
        start = torch.tensor(n_head[i : i + batch_size], device=device)[:, None] - 1
        end = enc["attention_mask"].sum(1, keepdim=True) - 1
        mask = (pos >= start) & (pos < end)
        out[i : i + len(enc["input_ids"])] = (kl * mask).sum(1).cpu().numpy()
    return out
