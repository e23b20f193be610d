"""LLM-as-judge (paper section 2.1): a causal LM prompted with a pairwise judge template (a
file users edit), its verdict parsed from `[[A]]`, `[[B]]` or `[[C]]` (a tie), each pair asked
in both orders. The judge is a local Hugging Face checkpoint (greedy) or an OpenAI-compatible
endpoint such as a vLLM server (timeouts, retries with back-off, a concurrency limit). Every
verdict is cached by (template, judge, prompt, responses): a re-run asks nothing twice.

The endpoint's requests go through rlhf.core.http (one retry and timeout policy for every
server this project talks to)."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rlhf.core.config import ConfigError, LLMJudgeConfig
from rlhf.core.http import bearer, post_json
from rlhf.core.shards import digest, tree_fingerprint
from rlhf.models.preference import Comparison, PreferenceModel, context_text

VERDICT = re.compile(r"\[\[([ABC])\]\]")
_FIELDS = re.compile(r"\{(question|answer_a|answer_b)\}")
# What one verdict counts for the response shown first: A wins, B wins, tie; a reply without
# a verdict (malformed) or a failed request counts as a tie, and is counted apart.
_FIRST_WINS = {"A": 1.0, "B": 0.0, "C": 0.5}


class JudgeFailed(ConfigError):
    """The endpoint judge failed: it refused the key (401/403), or more than
    evaluate.llm.max_failed_share of a comparison's verdicts failed. A ConfigError so that every
    caller that turns a setting found wrong into one line (the stages) does the same here: the
    remedy is a setting (the key, the endpoint, the cap) or the server, and the stage writes
    nothing rather than ties."""


def failed_kinds(counts: Counter) -> dict[str, int]:
    """The kinds of verdicts that are not one: error:<why> and malformed, with their counts."""
    return {
        k: n
        for k, n in sorted(counts.items())
        if n and (k.startswith("error:") or k == "malformed")
    }


def parse_verdict(text: str | None) -> str | None:
    """The last [[A]]/[[B]]/[[C]] in a reply, or None when it has none."""
    found = VERDICT.findall(text or "")
    return found[-1] if found else None


def fill(template: str, question: str, answer_a: str, answer_b: str) -> str:
    """The template with its three fields filled in one pass: braces inside the question or the
    answers are left as they are (str.format would choke on them)."""
    values = {"question": question, "answer_a": answer_a, "answer_b": answer_b}
    return _FIELDS.sub(lambda m: values[m.group(1)], template)


class VerdictCache:
    """Replies by key in SQLite (one transaction per batch: a crash loses only the batch)."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path))
        self.db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, reply TEXT)")

    def get(self, keys: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for i in range(0, len(keys), 500):  # SQLite's limit on bound parameters
            chunk = keys[i : i + 500]
            q = f"SELECT key, reply FROM verdicts WHERE key IN ({','.join('?' * len(chunk))})"
            out.update(self.db.execute(q, chunk).fetchall())
        return out

    def put(self, items: dict[str, str]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?)", items.items())


class HTTPBackend:
    """Chat completions from an OpenAI-compatible endpoint, `concurrency` requests at a time."""

    def __init__(self, cfg: LLMJudgeConfig):
        self.cfg = cfg
        self.url = cfg.endpoint.rstrip("/") + "/chat/completions"
        # The key is not part of the identity: it does not change a verdict, and the identity
        # is hashed into the cache's keys.
        self.identity = f"http:{cfg.endpoint}:{cfg.api_model}:{cfg.max_new_tokens}"
        self.headers = {
            "Content-Type": "application/json",
            **bearer(cfg.api_key_env, "evaluate.llm.api_key_env", ConfigError),
        }
        # Set by the first 401/403: no request starts after it (the key is wrong for all).
        self.refused: int | None = None
        self._stop = threading.Event()

    def _one(self, prompt: str) -> tuple[str | None, str]:
        """(reply text or None, outcome): ok, or error:<why> after the last retry."""
        body = {
            "model": self.cfg.api_model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.0,
            "max_tokens": self.cfg.max_new_tokens,
        }
        # A body that is not a chat completion is counted as bad_reply and not cached (a server
        # glitch must not stick), so the next run asks again.
        text, outcome = post_json(
            self.url,
            body,
            lambda reply: reply["choices"][0]["message"]["content"],
            headers=self.headers,
            timeout_s=self.cfg.timeout_s,
            retries=self.cfg.retries,
            backoff_s=self.cfg.backoff_s,
            stop=self._stop.is_set,
        )
        if outcome in ("error:http_401", "error:http_403"):
            self.refused = int(outcome.removeprefix("error:http_"))
            self._stop.set()
        return text, outcome

    def ask(self, prompts: list[str]) -> list[tuple[str | None, str]]:
        with ThreadPoolExecutor(self.cfg.concurrency) as pool:
            out = list(pool.map(self._one, prompts))
        if self.refused is not None:
            env = self.cfg.api_key_env
            check = (
                f"check the key in ${env} (evaluate.llm.api_key_env)"
                if env
                else "it needs a key: set evaluate.llm.api_key_env to the name of the "
                "environment variable holding it"
            )
            raise JudgeFailed(
                f"llm judge: {self.cfg.endpoint} answered HTTP {self.refused} (not authorised): "
                f"{check}; stopped without asking further"
            )
        return out


class LocalBackend:
    """Greedy replies of a local Hugging Face causal LM (batched generate). A prompt that
    does not fit the model's context with room for the reply is not asked: the model would read
    past its last trained position (rotary positions run on silently) and write noise; it is
    counted as `error:too_long` and scored as a tie."""

    def __init__(self, cfg: LLMJudgeConfig, batch_prompts: int = 16):
        from rlhf.online.generation import HFBackend, Sampling

        self.backend = HFBackend(cfg.model, batch_prompts)
        self.sampling = Sampling(1, 0.0, 1.0, 0, cfg.max_new_tokens, 0)
        self.identity = f"hf:{tree_fingerprint(cfg.model)}:{cfg.max_new_tokens}"
        self.context = getattr(self.backend.model.config, "max_position_embeddings", None)

    def ask(self, prompts: list[str]) -> list[tuple[str | None, str]]:
        from rlhf.online.generation import render_prompts

        if not prompts:
            return []
        msgs = [[{"role": "user", "content": p}] for p in prompts]
        tok = self.backend.tok
        sizes = [
            len(ids)
            for ids in tok(render_prompts(tok, msgs), add_special_tokens=False)["input_ids"]
        ]
        room = self.context - self.sampling.max_new_tokens if self.context else None
        fits = [room is None or n <= room for n in sizes]
        if not all(fits):
            print(
                f"llm judge: {fits.count(False)} of {len(fits)} prompts do not fit the judge's "
                f"{self.context} positions with {self.sampling.max_new_tokens} for the reply "
                f"(longest {max(sizes)} tokens): not asked, counted as error:too_long (ties)"
            )
        asked = [m for m, ok in zip(msgs, fits, strict=True) if ok]
        outs = iter(self.backend.generate(asked, self.sampling, desc="llm judge") if asked else [])
        return [(next(outs)[0].text, "ok") if ok else (None, "error:too_long") for ok in fits]


class LLMJudge:
    """Pairwise verdicts of an LLM, both orders, cached."""

    def __init__(self, cfg: LLMJudgeConfig):
        if not Path(cfg.template).is_file():
            raise ConfigError(f"evaluate.llm.template: {cfg.template}: no such file")
        self.template = Path(cfg.template).read_text()
        missing = [
            f for f in ("question", "answer_a", "answer_b") if f"{{{f}}}" not in self.template
        ]
        if missing:
            fields = ", ".join(f"{{{f}}}" for f in missing)
            raise ConfigError(f"evaluate.llm.template: {cfg.template}: lacks {fields}")
        self.cfg = cfg
        self.backend = HTTPBackend(cfg) if cfg.endpoint else LocalBackend(cfg)
        self.cache = VerdictCache(cfg.cache)
        self.counts: Counter[str] = Counter()

    def verdicts(self, prompts: list[list[dict]], a: list[str], b: list[str]) -> list[str | None]:
        """The verdict on each (prompt, a shown first, b): A, B, C, or None (counted)."""
        texts = [
            fill(self.template, context_text(p), x, y)
            for p, x, y in zip(prompts, a, b, strict=True)
        ]
        keys = [digest(self.template, self.backend.identity, t) for t in texts]
        replies = self.cache.get(keys)
        self.counts["verdicts"] += len(keys)
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in replies}.items())
        self.counts["cached"] += len(keys) - sum(1 for k in keys if k not in replies)
        self.counts["asked"] += len(todo)
        fresh: dict[str, str] = {}
        failed: dict[str, str] = {}
        for (k, _), (reply, outcome) in zip(
            todo, self.backend.ask([t for _, t in todo]), strict=True
        ):
            if outcome == "ok":
                fresh[k] = reply or ""  # a failed request is not cached: the next run asks again
            else:
                failed[k] = outcome
        self.cache.put(fresh)
        replies.update(fresh)
        out = []
        for k in keys:  # counted per verdict: a question asked twice in one call fails twice
            v = parse_verdict(replies.get(k)) if k in replies else None
            if k in failed:
                self.counts[failed[k]] += 1
            elif v is None:
                self.counts["malformed"] += 1
            if v == "C":
                self.counts["ties"] += 1
            out.append(v)
        return out

    def compare(
        self, prompts: list[list[dict]], a: list[str], b: list[str], desc: str = "llm judge"
    ) -> Comparison:
        before = Counter(self.counts)
        first = self.verdicts(prompts, a, b)
        second = self.verdicts(prompts, b, a)
        self._check_failures(self.counts - before)
        score = np.vectorize(lambda v: _FIRST_WINS.get(v, 0.5), otypes=[float])
        return Comparison(
            score(np.array(first, dtype=object)), score(np.array(second, dtype=object))
        )

    def _check_failures(self, counts: Counter) -> None:
        """Stop when more than max_failed_share of this comparison's verdicts failed, for an
        endpoint judge (see LLMJudgeConfig.max_failed_share: the local judge is not capped)."""
        failed = failed_kinds(counts)
        n, bad = counts["verdicts"], sum(failed.values())
        if not self.cfg.endpoint or not n or bad <= self.cfg.max_failed_share * n:
            return
        kinds = ", ".join(f"{k} {v}" for k, v in failed.items())
        raise JudgeFailed(
            f"llm judge: {bad} of {n} verdicts from {self.cfg.endpoint} failed ({kinds}), more "
            f"than evaluate.llm.max_failed_share = {self.cfg.max_failed_share}: stopped instead "
            "of scoring them as ties"
        )


class RewardPairwise:
    """The Bradley-Terry reward model as a pairwise judge: P(a > b) = sigmoid(r_a - r_b), the
    model's own definition; it has no position, so its position bias is 0 by construction."""

    def __init__(self, rm_dir: str | Path, batch_size: int = 64, scorer=None):
        from rlhf.online.scoring import RewardScorer

        self.scorer = scorer or RewardScorer(rm_dir, batch_size)

    def compare(self, prompts, a, b, desc: str = "reward model") -> Comparison:
        r = self.scorer.score(list(prompts) * 2, list(a) + list(b), desc=desc).astype(np.float64)
        d = r[: len(a)] - r[len(a) :]
        return Comparison(1.0 / (1.0 + np.exp(-d)), 1.0 / (1.0 + np.exp(d)))


def pairwise_judge(
    name: str,
    rm_dir: str | Path | None = None,
    pm_dir: str | Path | None = None,
    llm: LLMJudgeConfig | None = None,
    scorer=None,
):
    """The registry of pairwise judges: reward_model, preference_model, llm; each has
    .compare(prompts, a, b) -> Comparison. `scorer`: an already loaded RewardScorer of
    `rm_dir`, reused by the reward_model judge instead of loading the model again."""
    if name == "reward_model":
        if rm_dir is None:
            raise ValueError("the reward_model judge needs the reward model's folder")
        return RewardPairwise(rm_dir, scorer=scorer)
    if name == "preference_model":
        if pm_dir is None:
            raise ValueError("the preference_model judge needs the preference model's folder")
        return PreferenceModel(pm_dir)
    if name == "llm":
        return LLMJudge(llm or LLMJudgeConfig())
    raise ValueError(f"unknown judge {name!r}; known: reward_model, preference_model, llm")
