"""The paper's three preference signals as judges: the pairwise preference model (trained here
on a crafted preference), the LLM-as-judge against a real HTTP server on 127.0.0.1, and the
round-robin ranker that turns pairwise verdicts into best and worst of n."""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest

from rlhf.core.config import (
    ConfigError,
    LLMJudgeConfig,
    PairsConfig,
    PreferenceModelConfig,
    TrainConfig,
)
from rlhf.evaluation.judges import LLMJudge, fill, parse_verdict
from rlhf.models.checkpoints import save_model, tiny_llama, train_tokenizer
from rlhf.models.preference import Comparison, PreferenceModel
from rlhf.models.reward import run_preference_model
from rlhf.online.pairs import select_pairs
from rlhf.online.scoring import round_robin

WORDS = ["the", "a", "cat", "dog", "sky", "tree", "river", "stone", "light", "road"]


def _answer(rng: random.Random, marker: str) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(2, 5))]
    words.insert(rng.randint(0, len(words)), marker)
    return " ".join(words)


def _crafted(n: int, seed: int) -> list[tuple[list[dict], str, str]]:
    """(prompt, chosen, rejected): the chosen answer says `great`, the rejected one `awful`;
    every other word is noise, and neither length nor position tells them apart."""
    rng = random.Random(seed)
    return [
        (
            [{"role": "user", "content": f"tell me about the {rng.choice(WORDS)}"}],
            _answer(rng, "great"),
            _answer(rng, "awful"),
        )
        for _ in range(n)
    ]


def _as_mix(pairs) -> pa.Table:
    return pa.table(
        {
            "chosen": [p + [{"role": "assistant", "content": c}] for p, c, _ in pairs],
            "rejected": [p + [{"role": "assistant", "content": r}] for p, _, r in pairs],
        }
    )


@pytest.fixture(scope="module")
def crafted_pm(tmp_path_factory):
    """A tiny Llama fine-tuned by the preference-model stage's own code on crafted pairs."""
    tmp = tmp_path_factory.mktemp("pm")
    texts = [" ".join(x[0][0]["content"] for x in _crafted(50, 9))] + WORDS + ["great awful A B"]
    tok = train_tokenizer(texts * 20, 320)
    save_model(tiny_llama(tok, 64, 2, 2, 256, seed=0), tok, tmp / "start")
    cfg = PreferenceModelConfig(
        max_pairs=0,
        train=TrainConfig(epochs=12.0, lr=3e-3, batch_size=16, max_length=256, warmup_ratio=0.05),
    )
    summary = run_preference_model(cfg, tmp / "start", _as_mix(_crafted(400, 1)), tmp / "pm")
    assert summary["examples"] == 800 and summary["too_long"] == 0
    return tmp / "pm"


def test_preference_model_learns_a_crafted_preference(crafted_pm):
    held_out = _crafted(200, 2)
    pm = PreferenceModel(crafted_pm)
    p, c, r = (list(x) for x in zip(*held_out, strict=True))
    # Half the pairs with the chosen answer first, half second: position alone scores 0.5.
    a = [ci if i % 2 else ri for i, (ci, ri) in enumerate(zip(c, r, strict=True))]
    b = [ri if i % 2 else ci for i, (ci, ri) in enumerate(zip(c, r, strict=True))]
    a_better = np.array([i % 2 == 1 for i in range(len(a))])
    comp = pm.compare(p, a, b)
    acc = float(((comp.p_a > 0.5) == a_better).mean())
    assert acc > 0.85, acc


def test_averaging_both_orders_removes_a_planted_position_bias(crafted_pm):
    pm = PreferenceModel(crafted_pm)
    held_out = _crafted(120, 3)
    p, c, r = (list(x) for x in zip(*held_out, strict=True))
    a_better = np.ones(len(c), dtype=bool)
    clean = pm.compare(p, c, r)
    # Plant a position bias in the model itself: +10 on the logit of `A` at every position (beyond the trained margins).
    a_id = pm.label_ids[0]

    def bias_a(_module, _inputs, out):
        out[..., a_id] += 10.0
        return out

    hook = pm.model.lm_head.register_forward_hook(bias_a)
    try:
        biased = pm.compare(p, r, c)  # the chosen answer always shown second
    finally:
        hook.remove()
    # One order alone now mostly answers A, i.e. the rejected answer...
    assert biased.first_rate > 0.9, biased.first_rate
    one_order = float((biased.p_a_first < 0.5).mean())
    assert one_order < 0.5
    assert biased.position_bias > 0.2
    # ...but a constant pull to one position cancels in the average of both orders: the
    # decision is the same as the unbiased model's on every pair.
    both = (1.0 - biased.p_a) > 0.5  # biased.p_a is P(rejected > chosen)
    assert np.array_equal(both, clean.p_a > 0.5)
    assert float((both == a_better).mean()) > 0.85


def test_round_robin_ranker_picks_best_and_worst_from_a_comparison_table():
    # A hand-built table of P(row beats column) for four responses: c > a > d > b, with one
    # intransitive-looking pair (d beats a 0.6) that the round robin must outvote.
    names = ["a", "b", "c", "d"]
    table = {
        ("a", "b"): 0.9,
        ("a", "c"): 0.2,
        ("a", "d"): 0.4,
        ("b", "c"): 0.05,
        ("b", "d"): 0.3,
        ("c", "d"): 0.95,
    }

    class TableJudge:
        calls = 0

        def compare(self, prompts, a, b, desc=""):
            TableJudge.calls += len(a)
            p = np.array(
                [
                    table[(x, y)] if (x, y) in table else 1 - table[(y, x)]
                    for x, y in zip(a, b, strict=True)
                ]
            )
            return Comparison(p, 1.0 - p)

    judge = TableJudge()
    prompt = [{"role": "user", "content": "q"}]
    [scores] = round_robin(judge, [prompt], [names], "test")
    assert TableJudge.calls == 6  # n(n-1)/2 unordered pairs, each judge call asks both orders
    np.testing.assert_allclose(
        scores,
        [
            (0.9 + 0.2 + 0.4) / 3,
            (0.1 + 0.05 + 0.3) / 3,
            (0.8 + 0.95 + 0.95) / 3,
            (0.6 + 0.7 + 0.05) / 3,
        ],
    )
    rows = [
        {
            "iteration": "iter_1",
            "seed": 0,
            "prompt_id": "p0",
            "sample_idx": k,
            "prompt": prompt,
            "response": n,
            "penalized_reward": float(s),
            "length": 1,
        }
        for k, (n, s) in enumerate(zip(names, scores, strict=True))
    ]
    pairs, report = select_pairs(PairsConfig(), "iter_1", pa.Table.from_pylist(rows))
    assert pairs.column("chosen").to_pylist() == ["c"]
    assert pairs.column("rejected").to_pylist() == ["b"]


# --- LLM-as-judge against a real OpenAI-compatible server on 127.0.0.1 -------------------


class _Server:
    """Chat completions that answer [[A]] when answer A says `great`, else [[B]]; questions
    with SLOW time out, GARBLE gets a reply without a verdict, FLAKY fails with a 500 once.
    With `key`, a request without `Authorization: Bearer <key>` gets a 401; with `fail`, every
    request gets that status."""

    def __init__(self, key: str | None = None, fail: int | None = None):
        self.key, self.fail = key, fail
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.flaky_seen: set[str] = set()
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["messages"][0]["content"]
                with lock:
                    server.requests += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(0.05)
                    auth = self.headers.get("Authorization")
                    if server.fail or (server.key and auth != f"Bearer {server.key}"):
                        self.send_response(server.fail or 401)
                        self.end_headers()
                        return
                    if "SLOW" in text:
                        time.sleep(1.5)
                    if "FLAKY" in text and text not in server.flaky_seen:
                        server.flaky_seen.add(text)
                        self.send_response(500)
                        self.end_headers()
                        return
                    if "BROKEN" in text:  # a 200 whose body is not a chat completion
                        self.send_response(200)
                        self.end_headers()
                        self.wfile.write(b"<html>oops</html>")
                        return
                    a = text.split("[The Start of Assistant A's Answer]")[1].split("[The End")[0]
                    reply = (
                        "no idea" if "GARBLE" in text else ("[[A]]" if "great" in a else "[[B]]")
                    )
                    out = json.dumps({"choices": [{"message": {"content": f"Because. {reply}"}}]})
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(out.encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on it (a timeout): nothing to answer
                finally:
                    with lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def test_http_judge_verdicts_timeouts_malformed_replies_and_cache(server, tmp_path):
    cfg = LLMJudgeConfig(
        endpoint=server.url,
        api_model="judge",
        template="configs/judges/pairwise.txt",
        timeout_s=0.5,
        retries=1,
        backoff_s=0.01,
        concurrency=3,
        cache=str(tmp_path / "cache.sqlite"),
        max_failed_share=0.25,  # 6 of the second call's 32 verdicts fail, on purpose
    )
    pairs = _crafted(12, 4)
    prompts = [p for p, _, _ in pairs] + [
        [{"role": "user", "content": q}] for q in ("SLOW", "GARBLE", "FLAKY", "BROKEN")
    ]
    chosen = [c for _, c, _ in pairs] + ["great x", "great y", "great z", "great w"]
    rejected = [r for _, _, r in pairs] + ["awful x", "awful y", "awful z", "awful w"]
    judge = LLMJudge(cfg)
    # The concurrency limit holds (measured by the server), and is used.
    judge.compare(prompts[:12], chosen[:12], rejected[:12])
    assert 2 <= server.max_in_flight <= 3, server.max_in_flight
    comp = judge.compare(prompts, chosen, rejected)
    # Both orders agree on every crafted pair and on the flaky one (its retry succeeded).
    assert list(comp.p_a[:12]) == [1.0] * 12 and comp.p_a[14] == 1.0
    # The timed-out and the malformed question count as ties, and are counted, not crashed.
    assert comp.p_a[12] == 0.5 and comp.p_a[13] == 0.5
    assert judge.counts["error:timeout"] == 2  # both orders of SLOW, after their retry
    assert judge.counts["malformed"] == 2
    assert comp.p_a[15] == 0.5 and judge.counts["error:bad_reply"] == 2
    assert judge.counts["cached"] == 24  # the first call's verdicts were not asked again
    # A second judge over the same cache asks again only what failed (the timeouts and the
    # unreadable bodies); readable replies, verdict or not, are served from the cache.
    asked = server.requests
    again = LLMJudge(cfg)
    comp2 = again.compare(prompts, chosen, rejected)
    assert np.array_equal(comp2.p_a, comp.p_a)
    assert again.counts["asked"] == 4
    assert server.requests - asked == 2 * (cfg.retries + 1) + 2


# --- A keyed endpoint, and one that fails: the stage stops with one line, never ties ------

KEY = "sk-test-7f3a9c1e-written-nowhere"


def _stage(tmp_path, server, *, key_env="", signals=("llm",), **llm):
    """Run stages/rm_eval.py as DVC would, on a benchmark file judged by the endpoint judge
    only (evaluate.judge is not gold: the benchmark branch); (process, its output file)."""
    import subprocess
    import sys

    import yaml

    from ..conftest import REPO

    bench = tmp_path / "data/external/bench.jsonl"
    bench.parent.mkdir(parents=True)
    bench.write_text(
        "".join(
            json.dumps({"prompt": p[0]["content"], "chosen": c, "rejected": r, "subset": "x"})
            + "\n"
            for p, c, r in _crafted(6, 5)
        )
    )
    params = {
        "rm_eval": {"signals": list(signals), "benchmark": "data/external/bench.jsonl"},
        "evaluate": {
            "judge": "llm",
            "llm": {
                "endpoint": server.url,
                "api_model": "judge",
                "api_key_env": key_env,
                "template": str(REPO / "configs/judges/pairwise.txt"),
                "cache": ".rlhf/judge_cache.sqlite",
                "retries": 1,
                "backoff_s": 0.01,
                "concurrency": 3,
                **llm,
            },
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "reports/rm_eval.json"
    r = subprocess.run(
        [sys.executable, str(REPO / "stages/rm_eval.py"), "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return r, out


def test_keyed_endpoint_gets_the_key_from_the_environment_and_no_file_holds_it(
    tmp_path, monkeypatch
):
    s = _Server(key=KEY)
    try:
        monkeypatch.setenv("JUDGE_KEY", KEY)
        r, out = _stage(tmp_path, s, key_env="JUDGE_KEY")
    finally:
        s.close()
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    llm = json.loads(out.read_text())["benchmark"]["llm"]
    assert llm["accuracy"]["mean"] == 1.0  # every verdict was the server's, none a tie
    # The key is in no file the stage wrote or read (params, cache, report, timings) nor in
    # its output; the params name only the variable.
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert tmp_path / ".rlhf/judge_cache.sqlite" in files and out in files
    assert [f for f in files if KEY.encode() in f.read_bytes()] == []
    assert KEY not in r.stdout + r.stderr
    assert "JUDGE_KEY" in (tmp_path / "params.yaml").read_text()


def test_wrong_key_stops_at_once_with_one_line(tmp_path, monkeypatch):
    s = _Server(key=KEY)
    try:
        monkeypatch.setenv("JUDGE_KEY", "sk-wrong")
        r, out = _stage(tmp_path, s, key_env="JUDGE_KEY", retries=3)
        # No retries, and no request starts after the first 401 (3 were in flight at once).
        assert 1 <= s.requests <= 3, s.requests
    finally:
        s.close()
    assert r.returncode != 0 and not out.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 401" in lines[0] and "$JUDGE_KEY" in lines[0], r.stderr
    assert "sk-wrong" not in r.stdout + r.stderr


@pytest.mark.parametrize("status", [401, 403])
def test_a_keyless_request_refused_says_the_endpoint_needs_a_key(tmp_path, status):
    s = _Server(key=KEY) if status == 401 else _Server(fail=403)
    try:
        r, out = _stage(tmp_path, s, retries=3)
        assert 1 <= s.requests <= 3, s.requests  # stopped at the first refusal, no retries
    finally:
        s.close()
    assert r.returncode != 0 and not out.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"HTTP {status}" in lines[0], r.stderr
    assert "it needs a key: set evaluate.llm.api_key_env" in lines[0]


def test_named_key_variable_that_is_not_set_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("JUDGE_KEY_UNSET", raising=False)
    cfg = LLMJudgeConfig(
        endpoint="http://127.0.0.1:9/v1", api_key_env="JUDGE_KEY_UNSET", cache=str(tmp_path / "c")
    )
    with pytest.raises(ConfigError, match="JUDGE_KEY_UNSET is not set"):
        LLMJudge(cfg)


def test_endpoint_failing_every_request_stops_the_stage_instead_of_writing_ties(tmp_path):
    s = _Server(fail=503)
    try:
        r, out = _stage(tmp_path, s)
    finally:
        s.close()
    assert r.returncode != 0 and not out.exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "12 of 12 verdicts" in lines[0] and "error:http_503 12" in lines[0], lines[0]
    assert "max_failed_share" in lines[0]


def test_failed_share_under_the_cap_is_kept_and_counted(server, tmp_path):
    """One question without a verdict in 24 (2 of 48 verdicts, 4%) is under the default 5%:
    a tie, counted; under a cap of 0 it stops the comparison."""
    from rlhf.evaluation.judges import JudgeFailed

    pairs = _crafted(23, 6)
    prompts = [p for p, _, _ in pairs] + [[{"role": "user", "content": "GARBLE"}]]
    chosen = [c for _, c, _ in pairs] + ["great x"]
    rejected = [r for _, _, r in pairs] + ["awful x"]
    cfg = LLMJudgeConfig(
        endpoint=server.url, api_model="judge", cache=str(tmp_path / "c.sqlite"), backoff_s=0.01
    )
    judge = LLMJudge(cfg)
    comp = judge.compare(prompts, chosen, rejected)
    assert comp.p_a[-1] == 0.5 and judge.counts["malformed"] == 2
    strict = LLMJudge(
        LLMJudgeConfig(**{**cfg.__dict__, "max_failed_share": 0.0, "cache": str(tmp_path / "d")})
    )
    with pytest.raises(JudgeFailed, match=r"2 of 48 verdicts .*\(malformed 2\)"):
        strict.compare(prompts, chosen, rejected)


def test_verdict_parsing_and_template_filling():
    assert parse_verdict("A is better. [[A]]") == "A"
    assert parse_verdict("[[A]] ... on reflection [[C]]") == "C"
    assert parse_verdict("assistant A") is None and parse_verdict(None) is None
    # Braces in the question or the answers are kept as they are.
    t = fill("Q: {question} A: {answer_a} B: {answer_b}", "f({x})", "{answer_b}", "b")
    assert t == "Q: f({x}) A: {answer_b} B: b"


def test_score_ranks_samples_with_the_preference_model(crafted_pm, tmp_path):
    from rlhf.core.config import ScoreConfig
    from rlhf.online.scoring import score

    rng = random.Random(5)
    rows = []
    for g in range(6):
        prompt = [{"role": "user", "content": f"tell me about the {WORDS[g]}"}]
        good = rng.randrange(4)
        for k in range(4):
            text = _answer(rng, "great" if k == good else "awful")
            rows.append(
                {"seed": g % 2, "prompt_id": f"p{g // 2}", "prompt": prompt, "response": text}
            )
    gens = pa.Table.from_pylist(rows)
    cfg = ScoreConfig(ranker="preference_model", shard_rows=64, batch_size=16)
    scored = score(cfg, "unused-rm", gens, workdir=tmp_path / "shards", pm_dir=crafted_pm)
    r = scored.column("reward").to_numpy()
    for g in range(6):
        block = r[4 * g : 4 * g + 4]
        texts = [rows[4 * g + k]["response"] for k in range(4)]
        assert "great" in texts[int(block.argmax())]
        assert block.min() >= 0.0 and block.max() <= 1.0


def test_pairwise_evaluation_with_follow_up_turns(crafted_pm, tmp_path, monkeypatch):
    from rlhf.core.config import EvaluateConfig
    from rlhf.evaluation import evaluate as ev
    from rlhf.evaluation.evaluate import EvalModels, evaluate_policy, policy_metrics

    prompts = pa.Table.from_pylist(
        [
            {
                "prompt_id": f"q{i}",
                "messages": [{"role": "user", "content": f"tell me about the {w}"}],
                "category": "chat",
                # MT-Bench style: a scripted second question for half the prompts.
                "follow_ups": ["and why?"] if i % 2 else None,
            }
            for i, w in enumerate(WORDS[:4])
        ]
    )
    cfg = EvaluateConfig(
        judge="preference_model", samples_per_prompt=2, max_new_tokens=6, bootstrap=100
    )
    run = dict(workdir=tmp_path / "shards", pm_dir=crafted_pm)
    base = evaluate_policy(cfg, "base", crafted_pm, prompts, 0, **run)
    loads = []
    real = ev.pairwise_judge
    monkeypatch.setattr(ev, "pairwise_judge", lambda *a, **k: loads.append(a) or real(*a, **k))
    models = EvalModels(cfg, pm_dir=crafted_pm)
    same = evaluate_policy(cfg, "same", crafted_pm, prompts, 0, baseline=base, models=models, **run)
    again = evaluate_policy(
        cfg, "same", crafted_pm, prompts, 0, baseline=base, models=models, **run
    )
    # The judge a stage passes in is loaded once and serves every seed it evaluates.
    assert len(loads) == 1
    assert again.column("judge_win").to_pylist() == same.column("judge_win").to_pylist()
    # Common random numbers: the same policy gives the same answers to both turns...
    assert same.column("response").to_pylist() == base.column("response").to_pylist()
    # ...and a pairwise judge that averages both orders scores a response against itself 0.5.
    # (to the last bits: a batch's padding moves logits by ~1e-16)
    assert same.column("judge_win").to_pylist() == pytest.approx([0.5] * same.num_rows, abs=1e-9)
    m = policy_metrics(same, base, cfg)
    assert m["win_rate_vs_sft"]["mean"] == pytest.approx(0.5) and m["gold_mean"] is None
    # The follow-up rows carry the answers to both turns, the others one answer.
    turns = {r["prompt_id"]: r["response"].count("\n\n") for r in same.to_pylist()}
    assert turns["q1"] >= 1 and turns["q3"] >= 1


def test_local_llm_judge_counts_unreadable_verdicts_and_caches(crafted_pm, tmp_path):
    # A template short enough for the tiny model's 256 positions.
    short = tmp_path / "short.txt"
    short.write_text("{question}\nA: {answer_a}\nB: {answer_b}\nBetter, [[A]] or [[B]]?")
    cfg = LLMJudgeConfig(
        model=str(crafted_pm),
        max_new_tokens=3,
        template=str(short),
        cache=str(tmp_path / "c.sqlite"),
    )
    pairs = _crafted(5, 6)
    args = ([p for p, _, _ in pairs], [c for _, c, _ in pairs], [r for _, _, r in pairs])
    judge = LLMJudge(cfg)
    comp = judge.compare(*args)
    # A model never taught the template writes no [[A]]/[[B]]: ties, each one counted.
    unread = judge.counts["malformed"]
    assert unread > 0 and "error:too_long" not in judge.counts
    assert unread == judge.counts["verdicts"] - int(
        (comp.p_a_first != 0.5).sum() + (comp.p_b_first != 0.5).sum()
    )
    again = LLMJudge(cfg)
    again.compare(*args)
    assert again.counts["asked"] == 0 and again.counts["cached"] == 10


def test_local_llm_judge_refuses_prompts_longer_than_its_context(crafted_pm, tmp_path, capsys):
    # The default MT-Bench-style template is longer than the tiny model's 256 positions: the
    # model is not asked (it would read past its last trained position), every question is
    # counted as too long and scored as a tie, and nothing is cached, so a judge with a longer
    # context asks them all.
    cfg = LLMJudgeConfig(model=str(crafted_pm), max_new_tokens=3, cache=str(tmp_path / "c.sqlite"))
    pairs = _crafted(4, 8)
    pairs.append(pairs[0])  # a question asked twice in one call is counted twice
    args = ([p for p, _, _ in pairs], [c for _, c, _ in pairs], [r for _, _, r in pairs])
    judge = LLMJudge(cfg)
    comp = judge.compare(*args)
    assert judge.counts["error:too_long"] == judge.counts["verdicts"] == 10
    assert judge.counts["malformed"] == 0
    assert list(comp.p_a) == [0.5] * 5
    assert "do not fit the judge's 256 positions" in capsys.readouterr().out
    again = LLMJudge(cfg)
    again.compare(*args)
    assert again.counts["cached"] == 0 and again.counts["error:too_long"] == 10


def test_llm_judge_template_without_its_fields_is_a_config_error(crafted_pm, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("Which is better? {answer_a} or {answer_b}")
    with pytest.raises(ConfigError, match=r"bad.txt: lacks \{question\}"):
        LLMJudge(LLMJudgeConfig(model=str(crafted_pm), template=str(bad)))
    with pytest.raises(ConfigError, match="no such file"):
        LLMJudge(LLMJudgeConfig(model=str(crafted_pm), template=str(tmp_path / "none.txt")))


def test_benchmark_file_per_subset_with_bad_rows_quarantined(crafted_pm, tmp_path):
    from rlhf.core.config import RMEvalConfig
    from rlhf.evaluation.rm_eval import benchmark

    lines = [
        json.dumps({"prompt": p[0]["content"], "chosen": c, "rejected": r, "subset": "xy"[i % 2]})
        for i, (p, c, r) in enumerate(_crafted(40, 7))
    ]
    lines += [json.dumps({"prompt": "q", "chosen": "great"}), "{not json"]
    f = tmp_path / "bench.jsonl"
    f.write_text("\n".join(lines) + "\n")
    cfg = RMEvalConfig(benchmark=str(f), bootstrap=100)
    out = benchmark(cfg, {"preference_model": PreferenceModel(crafted_pm)})
    assert out["rows"] == 40
    assert out["quarantined"] == {"missing_field:rejected": 1, "invalid_json": 1}
    acc = out["preference_model"]
    assert acc["accuracy"]["mean"] > 0.85
    assert set(acc["by_subset"]) == {"x", "y"}
    assert acc["accuracy"]["lo"] <= acc["accuracy"]["mean"] <= acc["accuracy"]["hi"]


@pytest.mark.slow
def test_benchmark_prompts_judged_by_the_preference_model_end_to_end(project, tmp_path):
    """A real prompt file (MT-Bench's question format, two turns) as the whole eval split,
    judged pairwise by the preference model, through the real `dvc repro`."""
    import shutil

    import yaml

    from ..conftest import deep_update, run_dvc

    dest = tmp_path / "run"
    shutil.copytree(project, dest, symlinks=True)
    questions = [
        {"question_id": i, "category": "writing", "turns": [f"tell me about the {w}", "and why?"]}
        for i, w in enumerate(["river", "stone", "road", "sky"])
    ]
    bench = dest / "data/external/mt_bench.jsonl"
    bench.parent.mkdir(parents=True, exist_ok=True)
    bench.write_text("".join(json.dumps(q) + "\n" for q in questions))
    params = yaml.safe_load((dest / "params.yaml").read_text())
    deep_update(
        params,
        {
            "prompts": {
                "external": {
                    "mtbench": {
                        "format": "questions",
                        "path": "data/external/mt_bench.jsonl",
                        "eval_only": True,
                    }
                }
            },
            "evaluate": {"judge": "preference_model"},
        },
    )
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    r = run_dvc(dest, "repro")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ev = pa.parquet.read_table(dest / "data/eval/iter_1.parquet").to_pylist()
    # The eval split is exactly the benchmark, both turns answered, each judged against SFT.
    assert {r["prompt"] for r in ev} == {q["turns"][0] for q in questions}
    assert all("\n\n" in r["response"] and 0.0 <= r["judge_win"] <= 1.0 for r in ev)
    m = json.loads((dest / "reports/eval/iter_1.json").read_text())
    assert m["judge"] == "preference_model" and m["gold_mean"] is None
    assert 0.0 <= m["win_rate_vs_sft"]["lo"] <= m["win_rate_vs_sft"]["hi"] <= 1.0
    report = (dest / "reports/report.md").read_text()
    assert "Preference-model" in report and "evaluate.judge is preference_model" in report
    assert json.loads((dest / "reports/rm_eval.json").read_text())["status"] == "not measured"
