"""Training through TRL's trainers: pretraining and SFT (SFTTrainer), the Bradley-Terry
reward model (RewardTrainer) and DPO (DPOTrainer). No hand-written training loops."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile
from typing import Any

import datasets
import torch
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer
from trl.trainer.utils import pad

from rlhf.core.config import TrainConfig
from rlhf.models.checkpoints import is_peft


def _common_args(cfg: TrainConfig, out: str, seed: int) -> dict[str, Any]:
    on_gpu = torch.cuda.is_available()
    return dict(
        output_dir=out,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
        weight_decay=0.0,
        max_length=cfg.max_length,
        logging_steps=max(1, cfg.logging_steps),
        save_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        # TRL defaults to bf16 and activation checkpointing; on CPU both are ~10x slower.
        bf16=on_gpu and cfg.bf16_on_gpu,
        activation_checkpointing=cfg.gradient_checkpointing,
        dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        disable_tqdm=False,
        # Several CPU processes (torchrun): without use_cpu, transformers leaves the gloo group
        # unused and every process trains alone on all the data. One process: unchanged.
        use_cpu=not on_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1,
        ddp_find_unused_parameters=False,  # every parameter gets a gradient: skip the search
        # The models' buffers (rotary frequencies) never change: no broadcast every step.
        ddp_broadcast_buffers=False,
    )


def lora_config(cfg: TrainConfig, task: str):
    """PEFT's LoRA settings for `cfg` (`task`: PEFT's CAUSAL_LM or SEQ_CLS, whose new scalar
    head then trains in full), or None: full fine-tuning."""
    if not cfg.lora_rank:
        return None
    from peft import LoraConfig

    targets = cfg.lora_targets.strip()
    return LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets
        if targets == "all-linear"
        else [t.strip() for t in targets.split(",")],
        task_type=task,
    )


def _callbacks(curves, extra=None) -> list | None:
    """The trainer's callbacks: `extra` first (a KL budget adds its KL to the logs the curves
    then write), then the DVCLive curves into folder `curves` (None: none)."""
    from rlhf.models.curves import TrainingCurves

    out = list(extra or []) + ([TrainingCurves(curves)] if curves is not None else [])
    return out or None


_MICRO = "micro_batches"
_MICRO_SIZES = "micro_batch_sizes"


def _slices(order: list[int], parts: int) -> list[list[int]]:
    """`order` cut into `parts` consecutive slices of (nearly) equal count, none empty."""
    k = max(1, min(parts, len(order)))
    cuts = [len(order) * j // k for j in range(k + 1)]
    return [order[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def example_tokens(example: dict[str, Any]) -> int:
    """The padded width a tokenised example needs in its batch, tokens: a plain sequence
    (`input_ids`), or a preference pair (TRL's `prompt_ids`/`chosen_ids`/`rejected_ids`: the
    prompt plus the longer answer, since chosen and rejected rows share one padded width)."""
    if "input_ids" in example:
        return len(example["input_ids"])
    answer = max(len(example["chosen_ids"]), len(example["rejected_ids"]))
    return len(example.get("prompt_ids") or ()) + answer


class MicroBatchCollator:
    """The trainer's own collator applied to length-sorted slices of each batch.

    The batch is the one the Trainer's sampler drew (uniformly random, as without this), so every
    step sees the same examples; sorted by `example_tokens` and cut into `parts` slices of equal
    count, each slice is padded only to its own longest example instead of the batch's. With
    random batches of very different lengths most of a batch's FLOPs are padding; this removes
    most of them and changes only the order of float additions (bench/trainers.py)."""

    def __init__(self, collate, parts: int):
        self.collate, self.parts = collate, parts

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        order = sorted(range(len(examples)), key=lambda i: example_tokens(examples[i]))
        slices = _slices(order, self.parts)
        return {
            _MICRO: [self.collate([examples[i] for i in s]) for s in slices],
            _MICRO_SIZES: [len(s) for s in slices],
        }


def _micro_batched(cls, parts: int):
    """`cls` (a TRL trainer) whose training batches are cut into `parts` length-sorted
    micro-batches (`MicroBatchCollator`), their losses summed into the batch's loss.

    The sum weighs as one batch would: where the Trainer passes `num_items_in_batch` (token-
    level losses: pretraining, SFT) each micro-batch's loss is already its token sum over the
    whole batch's token count, so they add; otherwise (per-example means: the RM, DPO) each
    micro-batch's mean is weighted by its share of the batch's examples. One backward over the
    sum: peak activation memory is at most one batch's."""

    class Trainer(cls):
        def get_train_dataloader(self):
            collate = self.data_collator
            self.data_collator = MicroBatchCollator(collate, parts)
            try:
                return super().get_train_dataloader()
            finally:
                self.data_collator = collate

        def _get_num_items_in_batch(self, batch_samples, device):
            flat = [m for b in batch_samples for m in b.get(_MICRO, [b])]
            return super()._get_num_items_in_batch(flat, device)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if _MICRO not in inputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if return_outputs:
                raise ValueError("micro-batches give a training loss only, not model outputs")
            total = sum(inputs[_MICRO_SIZES])
            loss = 0.0
            for part, n in zip(inputs[_MICRO], inputs[_MICRO_SIZES], strict=True):
                weight = 1.0 if num_items_in_batch is not None else n / total
                part_loss = super().compute_loss(model, part, num_items_in_batch=num_items_in_batch)
                loss = loss + weight * part_loss
            return loss

    Trainer.__name__ = f"MicroBatched{cls.__name__}"
    return Trainer


def _trainer_class(cls, cfg: TrainConfig):
    """The TRL trainer class `cfg` asks for: length-grouped batches keep their `length` column;
    micro-batches wrap the collator and the loss."""
    if cfg.group_by_length:
        cls = _keeping_length(cls)
    if cfg.micro_batches > 1:
        cls = _micro_batched(cls, cfg.micro_batches)
    return cls


def pretrain(model, tokenizer, texts: list[str], cfg: TrainConfig, seed: int, curves=None):
    """Causal-LM pretraining on plain text (full loss); `curves`: DVCLive folder or None."""
    ds = datasets.Dataset.from_dict({"text": texts})
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(**_common_args(cfg, out, seed), dataset_text_field="text", packing=False)
        trainer = _trainer_class(SFTTrainer, cfg)(
            model=model,
            args=args,
            train_dataset=ds,
            processing_class=tokenizer,
            callbacks=_callbacks(curves),
        )
        _refuse_sharded_lora(trainer)
        result = trainer.train()
    return _finish(trainer), _summary(result, trainer)


_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


def sft(
    model, tokenizer, conversations: list[list[dict]], cfg: TrainConfig, seed: int, curves=None
):
    """Supervised fine-tuning on chat conversations, loss on assistant tokens only; with
    `cfg.lora_rank`, LoRA adapters (TRL's peft_config) merged into the returned model's save.

    With a chat template that marks assistant turns (`{% generation %}`) every assistant turn
    is learned; with any other template (most real checkpoints) the conversation becomes a
    prompt/completion pair and the last assistant turn is learned, which needs no markers.
    """
    if _GENERATION_TAG.search(tokenizer.chat_template or ""):
        ds = datasets.Dataset.from_dict({"messages": conversations})
        kind = dict(assistant_only_loss=True)
    else:
        ds = datasets.Dataset.from_dict(
            {
                "prompt": [c[:-1] for c in conversations],
                "completion": [c[-1:] for c in conversations],
            }
        )
        kind = dict(completion_only_loss=True)
    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(**_common_args(cfg, out, seed), **kind, packing=False)
        trainer = _trainer_class(SFTTrainer, cfg)(
            model=model,
            args=args,
            train_dataset=ds,
            processing_class=tokenizer,
            peft_config=lora_config(cfg, "CAUSAL_LM"),
            callbacks=_callbacks(curves),
        )
        _refuse_sharded_lora(trainer)
        result = trainer.train()
    return _finish(trainer), _summary(result, trainer)


def _keeping_length(cls):
    """`cls` (a TRL trainer) keeping the dataset's `length` column past the Trainer's filter of
    unused columns, which runs before the sampler is built: LengthGroupedSampler infers lengths
    only from an `input_ids` column, and a preference example has two or three sequences."""

    class Trainer(cls):
        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if "length" not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, "length"]

    Trainer.__name__ = f"LengthGrouped{cls.__name__}"
    return Trainer


def _chars(turns: list[dict]) -> int:
    return sum(len(m["content"]) for m in turns)


def pair_length(example: dict[str, Any]) -> dict[str, int]:
    """A preference example's size for the length-grouped sampler: prompt plus the longer
    answer. Characters, not tokens: the sampler only sorts by it, and counting characters
    costs nothing where tokenising the pairs an extra time would not."""
    answer = max(_chars(example["chosen"]), _chars(example["rejected"]))
    return {"length": _chars(example.get("prompt") or []) + answer}


def _with_lengths(pairs: datasets.Dataset, cfg: TrainConfig) -> datasets.Dataset:
    if not cfg.group_by_length or "length" in pairs.column_names:
        return pairs
    return pairs.map(pair_length)


PROMPT_GROUP = "prompt_group"
"""Column of a preference dataset naming its prompt (an integer key) for `PromptChunkSampler`."""


def prompt_groups(pairs: datasets.Dataset) -> datasets.Dataset:
    """`pairs` (explicit-prompt preference examples) with a `PROMPT_GROUP` key per prompt: a
    hash of the prompt's messages, so that equal prompts get equal keys whatever their ids."""

    def key(example: dict[str, Any]) -> dict[str, int]:
        text = json.dumps(example["prompt"], sort_keys=True, ensure_ascii=False)
        return {PROMPT_GROUP: int(hashlib.blake2b(text.encode(), digest_size=7).hexdigest(), 16)}

    return pairs.map(key)


class PromptChunkSampler(torch.utils.data.Sampler[int]):
    """Pair indices in which the pairs of one prompt come together, in chunks of at most
    `chunk` pairs: each epoch the chunks are shuffled, and the pairs inside each chunk, from
    `seed + epoch` (the Trainer calls `set_epoch`), so every pair is seen once per epoch as
    with a uniformly random order. Consecutive indices form the batches, so most of a prompt's
    pairs share one batch, where `SharedSequenceCollator` computes each distinct answer once."""

    def __init__(self, groups: list[int], chunk: int, seed: int):
        members: dict[int, list[int]] = {}
        for i, g in enumerate(groups):
            members.setdefault(g, []).append(i)
        self.groups = [members[g] for g in sorted(members)]
        self.chunk, self.seed, self.epoch, self.n = chunk, seed, 0, len(groups)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        rng = random.Random(self.seed + self.epoch)
        chunks = []
        for pairs in self.groups:
            pairs = list(pairs)
            rng.shuffle(pairs)
            chunks += [pairs[i : i + self.chunk] for i in range(0, len(pairs), self.chunk)]
        rng.shuffle(chunks)
        return iter([i for c in chunks for i in c])


class SharedSequenceCollator:
    """A batch of tokenised pairs (TRL's `chosen_ids`/`rejected_ids`) as its distinct sequences,
    each once, sorted by length and cut into `parts` micro-batches padded (right, as TRL's
    collator) to their own longest; `chosen`/`rejected` index each pair's two sequences in that
    sorted order. A prompt's answers recur across its pairs (the mix's 58 K pair sides are 42 K
    distinct sequences), so a batch of a prompt's pairs has fewer sequences than sides."""

    def __init__(self, pad_token_id: int, parts: int):
        self.pad, self.parts = pad_token_id, parts

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        index: dict[tuple[int, ...], int] = {}

        def at(ids) -> int:
            return index.setdefault(tuple(ids), len(index))

        chosen = [at(e["chosen_ids"]) for e in examples]
        rejected = [at(e["rejected_ids"]) for e in examples]
        seqs = list(index)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        rank = {j: r for r, j in enumerate(order)}
        micro = []
        for piece in _slices(order, self.parts):
            part = [torch.tensor(seqs[j]) for j in piece]
            micro.append(
                {
                    "input_ids": pad(part, padding_value=self.pad, padding_side="right"),
                    "attention_mask": pad(
                        [torch.ones_like(t) for t in part], padding_value=0, padding_side="right"
                    ),
                }
            )
        return {
            _MICRO: micro,
            "chosen": torch.tensor([rank[i] for i in chosen]),
            "rejected": torch.tensor([rank[i] for i in rejected]),
        }


class _PairBatchRewardTrainer(RewardTrainer):
    """TRL's RewardTrainer with training batches from its own collator (`_train_collator`), as
    micro-batches that `_margins` turns into each pair's r_chosen - r_rejected: the same
    Bradley-Terry loss, the mean of -log sigmoid(margin) over the batch's pairs, and TRL's
    training metrics. Evaluation batches keep TRL's collator and loss."""

    _what = "these batches"

    def __init__(self, *args, micro_batches: int, **kwargs):
        self._parts = micro_batches
        super().__init__(*args, **kwargs)
        if self.args.center_rewards_coefficient:
            raise ValueError(f"{self._what} compute the plain BT loss: no reward centring")

    def _train_collator(self):
        raise NotImplementedError

    def _margins(self, model, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each pair's reward margin and the batch's token count."""
        raise NotImplementedError

    def get_train_dataloader(self):
        collate = self.data_collator
        self.data_collator = self._train_collator()
        try:
            return super().get_train_dataloader()
        finally:
            self.data_collator = collate

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if "margin" in self.train_dataset.column_names:
            raise ValueError(f"{self._what} compute the plain BT loss: no per-pair margin")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if _MICRO not in inputs:  # evaluation batches come from TRL's own collator
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if return_outputs:
            raise ValueError(f"{self._what} give a training loss only")
        margin, tokens = self._margins(model, inputs)
        loss = -torch.nn.functional.logsigmoid(margin).mean()
        self._total_train_tokens += self.accelerator.gather_for_metrics(tokens).sum().item()
        self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            accuracy = self.accelerator.gather_for_metrics((margin > 0).float().mean())
            self._metrics["train"]["accuracy"].append(accuracy.mean().item())
            self._metrics["train"]["margin"].append(margin.mean().item())
        return loss


class PromptChunkRewardTrainer(_PairBatchRewardTrainer):
    """`_PairBatchRewardTrainer` with `PromptChunkSampler` batches and `SharedSequenceCollator`:
    each distinct sequence of a batch computed once."""

    _what = "prompt-chunk batches"

    def __init__(self, *args, chunk: int, **kwargs):
        self._chunk = chunk
        super().__init__(*args, **kwargs)

    def _train_collator(self):
        return SharedSequenceCollator(self.processing_class.pad_token_id, self._parts)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if PROMPT_GROUP not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, PROMPT_GROUP]

    def _get_train_sampler(self, train_dataset=None):
        ds = train_dataset if train_dataset is not None else self.train_dataset
        return PromptChunkSampler(ds[PROMPT_GROUP], self._chunk, self.args.data_seed)

    def _margins(self, model, inputs):
        micro = inputs[_MICRO]
        rewards = torch.cat([model(**m, use_cache=False).logits.squeeze(-1) for m in micro])
        tokens = sum(m["attention_mask"].sum() for m in micro)
        return rewards[inputs["chosen"]] - rewards[inputs["rejected"]], tokens


def _common_prefix(a: list[int], b: list[int]) -> int:
    """Tokens `a` and `b` share at their start, leaving each at least its last token."""
    k, top = 0, min(len(a), len(b)) - 1
    while k < top and a[k] == b[k]:
        k += 1
    return k


class SharedPrefixCollator:
    """A batch of tokenised pairs (TRL's `chosen_ids`/`rejected_ids`) as one row per pair: the
    tokens both sides share (the prompt, at least), then the chosen side's own tokens, then the
    rejected side's, with the positions each token has in its own sequence and a mask under
    which each side sees only the shared part and its own earlier tokens. Each side's last
    token then computes what it computes alone (Wang et al. 2024's prefix sharing), and the
    prompt is computed once instead of twice: the default mix's pairs are 24 prompt tokens
    before answers of 34 and 36, so about a fifth fewer tokens a pair. Rows sorted by length
    and cut into `parts` micro-batches, each padded (right) to its own longest."""

    def __init__(self, pad_token_id: int, parts: int):
        self.pad, self.parts = pad_token_id, parts

    def _row(self, chosen: list[int], rejected: list[int]):
        k = _common_prefix(chosen, rejected)
        ids = chosen + rejected[k:]
        positions = list(range(len(chosen))) + list(range(k, len(rejected)))
        side = [0] * k + [1] * (len(chosen) - k) + [2] * (len(rejected) - k)
        return ids, positions, side, len(chosen) - 1, len(ids) - 1

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [self._row(e["chosen_ids"], e["rejected_ids"]) for e in examples]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        micro = []
        for piece in _slices(order, self.parts):
            width = max(len(rows[i][0]) for i in piece)
            ids = torch.full((len(piece), width), self.pad, dtype=torch.long)
            positions = torch.zeros((len(piece), width), dtype=torch.long)
            mask = torch.zeros((len(piece), 1, width, width), dtype=torch.bool)
            for b, i in enumerate(piece):
                row_ids, pos, side, _, _ = rows[i]
                n = len(row_ids)
                ids[b, :n], positions[b, :n] = torch.tensor(row_ids), torch.tensor(pos)
                s = torch.tensor(side)
                same = (s[:, None] == s[None, :]) | (s[None, :] == 0)
                mask[b, 0, :n, :n] = torch.tril(torch.ones(n, n, dtype=torch.bool)) & same
                # Padding sees itself only: no query without a key (SDPA gives NaN there).
                mask[b, 0, range(n, width), range(n, width)] = True
            micro.append(
                {
                    "input_ids": ids,
                    "attention_mask": mask,
                    "position_ids": positions,
                    "chosen_at": torch.tensor([rows[i][3] for i in piece]),
                    "rejected_at": torch.tensor([rows[i][4] for i in piece]),
                    "tokens": sum(len(rows[i][0]) for i in piece),
                }
            )
        return {_MICRO: micro}


class SharedPrefixRewardTrainer(_PairBatchRewardTrainer):
    """`_PairBatchRewardTrainer` with TRL's sampler and `SharedPrefixCollator` rows: each
    pair's shared prefix computed once. The rewards are read from the model's scalar head at
    each side's last token (a hook on `score`, so the forward still passes through any
    wrapper the Trainer put around the model)."""

    _what = "shared-prefix rows"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        head = getattr(self.accelerator.unwrap_model(self.model), "score", None)
        if head is None:
            raise ValueError("shared-prefix rows need a model with a `score` head")
        self._head = head

    def _train_collator(self):
        return SharedPrefixCollator(self.processing_class.pad_token_id, self._parts)

    def _margins(self, model, inputs):
        margins, seen = [], []
        for m in inputs[_MICRO]:
            hook = self._head.register_forward_hook(lambda _m, _i, out: seen.append(out))
            try:
                model(
                    input_ids=m["input_ids"],
                    attention_mask=m["attention_mask"],
                    position_ids=m["position_ids"],
                    use_cache=False,
                )
            finally:
                hook.remove()
            rewards = seen.pop().squeeze(-1)  # every position's reward, before the model pools
            rows = torch.arange(rewards.shape[0], device=rewards.device)
            margins.append(rewards[rows, m["chosen_at"]] - rewards[rows, m["rejected_at"]])
        margin = torch.cat(margins)
        tokens = torch.tensor(sum(m["tokens"] for m in inputs[_MICRO]), device=margin.device)
        return margin, tokens


def tokenized_pairs(prefs: datasets.Dataset, tokenizer, cfg: TrainConfig) -> datasets.Dataset:
    """`prefs` (conversational prompt/chosen/rejected examples) with TRL's `chosen_ids` and
    `rejected_ids` beside them, tokenised by RewardTrainer's own `_prepare_dataset` (a method
    that reads no trainer state) without its length filter, which each trainer still applies.
    An ensemble's members then share one tokenisation of the mix instead of each making its
    own (about 17 s a member on the default's 29 K pairs), and train on the same tokens."""
    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(**{**_common_args(cfg, out, 0), "max_length": None})
        ids = RewardTrainer._prepare_dataset(None, prefs, tokenizer, args, "train")
    # Only the ids: TRL's tokenisation rewrites `chosen` in place (prompt + answer).
    ids = ids.select_columns(["chosen_ids", "rejected_ids"])
    return datasets.concatenate_datasets([prefs, ids], axis=1)


def freeze_bottom(model, layers: int) -> None:
    """Keep `model`'s token embeddings and its first `layers` transformer blocks as they are:
    no gradient for them and no backward pass below the first trained block (about 0.18 s a
    step instead of 0.29 for the default RM with 2 of 4 blocks kept). 0 = train everything."""
    if layers <= 0:
        return
    blocks = getattr(model.base_model, "layers", None)
    if blocks is None or layers > len(blocks):
        have = "no" if blocks is None else len(blocks)
        raise ValueError(f"cannot keep {layers} transformer blocks: the model has {have}")
    model.get_input_embeddings().weight.requires_grad_(False)
    for block in blocks[:layers]:
        block.requires_grad_(False)


def reward_model(
    model,
    tokenizer,
    prefs: datasets.Dataset,
    cfg: TrainConfig,
    seed: int,
    prompt_chunk: int = 0,
    curves=None,
    shared_prefix: bool = False,
):
    """Bradley-Terry reward model on conversational prompt/chosen/rejected examples; with
    `prompt_chunk` > 0, batches of whole prompts' pairs (`PromptChunkRewardTrainer`); with
    `shared_prefix`, each pair's prompt computed once (`SharedPrefixRewardTrainer`); with
    `cfg.lora_rank`, LoRA adapters and a fully trained scalar head."""
    common = dict(peft_config=lora_config(cfg, "SEQ_CLS"), callbacks=_callbacks(curves))
    with tempfile.TemporaryDirectory() as out:
        args = RewardConfig(**_common_args(cfg, out, seed))
        if prompt_chunk and shared_prefix:
            raise ValueError(
                "prompt-chunk batches and shared-prefix rows exclude each other: set one off"
            )
        if prompt_chunk:
            if cfg.group_by_length:
                raise ValueError("prompt-chunk batches and group_by_length exclude each other")
            trainer = PromptChunkRewardTrainer(
                model=model,
                args=args,
                train_dataset=prompt_groups(prefs),
                processing_class=tokenizer,
                chunk=prompt_chunk,
                micro_batches=cfg.micro_batches,
                **common,
            )
        elif shared_prefix:
            if cfg.group_by_length:
                raise ValueError("shared-prefix rows exclude group_by_length: set one off")
            trainer = SharedPrefixRewardTrainer(
                model=model,
                args=args,
                train_dataset=prefs,
                processing_class=tokenizer,
                micro_batches=cfg.micro_batches,
                **common,
            )
        else:
            trainer = _trainer_class(RewardTrainer, cfg)(
                model=model,
                args=args,
                train_dataset=_with_lengths(prefs, cfg),
                processing_class=tokenizer,
                **common,
            )
        _refuse_sharded_lora(trainer)
        result = trainer.train()
    return _finish(trainer), _summary(result, trainer)


def dpo(
    model,
    ref_model,
    tokenizer,
    pairs: datasets.Dataset,
    cfg: TrainConfig,
    beta: float,
    seed: int,
    precompute_ref: bool = False,
    callbacks: list | None = None,
    curves=None,
):
    """DPO from `model` against the frozen `ref_model` on prompt/chosen/rejected examples;
    `precompute_ref`: the reference's log-probs once before training (TRL's
    precompute_ref_log_probs) instead of in every step of every epoch; `callbacks`: the
    trainer's extra TrainerCallbacks (e.g. a KL budget that stops the round); `curves`: the
    DVCLive folder.

    LoRA: `model` a PEFT model (rlhf.models.policy.lora_policy) and `ref_model` None: the
    reference is `model` with its adapters disabled, i.e. its base (no second copy)."""
    if ref_model is None and not is_peft(model):
        raise ValueError(
            "DPO without a reference model needs a PEFT model (its base is the reference)"
        )
    if ref_model is None and precompute_ref:
        # TRL would precompute with its copy of the adapters (the previous policy), in __init__.
        raise ValueError("LoRA DPO computes the reference from the disabled adapters each step")
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(
            **_common_args(cfg, out, seed), beta=beta, precompute_ref_log_probs=precompute_ref
        )
        trainer = _trainer_class(DPOTrainer, cfg)(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=_with_lengths(pairs, cfg),
            processing_class=tokenizer,
            callbacks=_callbacks(curves, callbacks),
        )
        if ref_model is None and "ref" in trainer.model.peft_config:
            # TRL makes a frozen copy of a given adapter the reference; ours is the base itself.
            trainer.model.delete_adapter("ref")
        _refuse_sharded_lora(trainer)
        result = trainer.train()
        history = [h for h in trainer.state.log_history if "loss" in h]
    summary = _summary(result, trainer)
    summary["log"] = history
    return _finish(trainer), summary


def _refuse_sharded_lora(trainer) -> None:
    """LoRA under DeepSpeed ZeRO-3 would merge and save adapters over sharded, empty weights:
    refused before training (LoRA needs no sharding: the paper_lora profile runs plain DDP)."""
    plugin = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    if is_peft(trainer.model) and plugin is not None and plugin.zero_stage == 3:
        raise ValueError("LoRA under DeepSpeed ZeRO-3 is not supported: use DDP (paper_lora)")


def _finish(trainer):
    """The trained model, ready for models.save_model. Under DeepSpeed ZeRO-3 each rank holds
    a shard of every parameter: the full weights are gathered here (a collective, so every
    rank calls it) and saved by rank 0 only."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if getattr(trainer, "is_deepspeed_enabled", False):
        model._full_state_dict = trainer.accelerator.get_state_dict(trainer.deepspeed)
    return model


def _summary(result, trainer=None) -> dict[str, Any]:
    """The run's mean training loss and steps, and `final`: the last logged value of each
    training curve (rlhf.models.curves), which `dvc exp show` lists from the stage's metrics."""
    from rlhf.models.curves import kept

    m = dict(result.metrics)
    out: dict[str, Any] = {
        "train_loss": float(m.get("train_loss", float("nan"))),
        "steps": int(result.global_step),
    }
    if trainer is not None:
        final = {}
        for entry in trainer.state.log_history:
            final.update({k: v for k, v in entry.items() if k != "step" and kept(k, v)})
        out["final"] = final
    return out
