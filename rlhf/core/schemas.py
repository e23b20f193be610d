"""One pyarrow schema per Parquet table, and the only reader/writer of those tables.

Writers validate against the schema (column names, types, non-null columns) and write
atomically: a temporary file in the same folder, then ``os.replace``. A reader never sees a
half-written table. Errors name the file, the row and the field.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rlhf.core.io import atomic_path

MESSAGE = pa.struct([pa.field("role", pa.string(), False), pa.field("content", pa.string(), False)])
MESSAGES = pa.list_(pa.field("item", MESSAGE, False))


def _f(name: str, tp: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, tp, nullable)


# --- standard tables --------------------------------------------------------------------

PREFERENCES = pa.schema(
    [
        _f("pair_id", pa.string()),
        _f("prompt_id", pa.string()),
        _f("source", pa.string()),
        _f("chosen", MESSAGES),
        _f("rejected", MESSAGES),
        _f("chosen_score", pa.float64(), True),
        _f("rejected_score", pa.float64(), True),
        _f("margin", pa.float64(), True),
        _f("annotator", pa.string()),
        _f("source_row", pa.int64()),
    ],
    metadata={
        "doc": "RLHFlow standard preference format: chosen/rejected share all turns but the last."
    },
)

QUARANTINE = pa.schema(
    [
        _f("source", pa.string()),
        _f("source_row", pa.int64()),
        _f("reason", pa.string()),
        _f("field", pa.string()),
        _f("detail", pa.string()),
        _f("raw_json", pa.string()),
    ],
    metadata={"doc": "Rows dropped by an adapter or filter, with the reason and the raw row."},
)

PROMPT_POOL = pa.schema(
    [
        _f("pool_row", pa.int64()),
        _f("messages", MESSAGES),
        _f("category", pa.string()),
        _f("source", pa.string()),
        _f("follow_ups", pa.list_(pa.field("item", pa.string(), False)), True),
    ],
    metadata={
        "doc": "Raw prompt pool, duplicates included, in draw order. follow_ups: scripted "
        "later user turns of a multi-turn question (MT-Bench), null for single-turn prompts."
    },
)

PROMPTS = pa.schema(
    [
        _f("prompt_id", pa.string()),
        _f("messages", MESSAGES),
        _f("category", pa.string()),
        _f("source", pa.string()),
        _f("split", pa.string()),
        _f("follow_ups", pa.list_(pa.field("item", pa.string(), False)), True),
    ],
    metadata={"doc": "Deduplicated prompts with disjoint splits: eval, train_1 ... train_N."},
)

DEMONSTRATIONS = pa.schema(
    [
        _f("prompt_id", pa.string()),
        _f("messages", MESSAGES),
        _f("category", pa.string()),
    ],
    metadata={"doc": "SFT conversations ending in an assistant turn of mixed quality."},
)


def failed_sample(finish_reason: str) -> bool:
    """Whether a generation row is a sample the engine failed to give (`error:<why>`, server
    backend): kept in the table and counted, never paired, scored into a ranking or judged."""
    return finish_reason.startswith("error")


GENERATIONS = pa.schema(
    [
        _f("iteration", pa.string()),
        _f("seed", pa.int64()),
        _f("prompt_id", pa.string()),
        _f("sample_idx", pa.int32()),
        _f("prompt", MESSAGES),
        _f("response", pa.string()),
        _f("n_tokens", pa.int32()),
        _f("finish_reason", pa.string()),
        _f("policy", pa.string()),
        _f("backend", pa.string()),
        _f("sampling_seed", pa.int64()),
        _f("temperature", pa.float64()),
        _f("top_p", pa.float64()),
        _f("top_k", pa.int32()),
        _f("max_new_tokens", pa.int32()),
        _f("stop", pa.string()),
    ],
    metadata={"doc": "n sampled responses per prompt, with the sampling settings that made them."},
)

SCORED = pa.schema(
    [
        *[GENERATIONS.field(n) for n in GENERATIONS.names],
        _f("reward", pa.float64()),
        _f("length", pa.int64()),
        _f("length_unit", pa.string()),
        _f("length_penalty", pa.float64()),
        _f("penalized_reward", pa.float64()),
    ],
    metadata={"doc": "Generations with reward-model score, length and length-penalised reward."},
)

PAIRS = pa.schema(
    [
        _f("iteration", pa.string()),
        _f("seed", pa.int64()),
        _f("prompt_id", pa.string()),
        _f("prompt", MESSAGES),
        _f("chosen", pa.string()),
        _f("rejected", pa.string()),
        _f("chosen_reward", pa.float64()),
        _f("rejected_reward", pa.float64()),
        _f("chosen_length", pa.int64()),
        _f("rejected_length", pa.int64()),
        _f("selection", pa.string()),
    ],
    metadata={"doc": "On-policy DPO pairs: chosen/rejected responses picked by reward."},
)

EVALUATIONS = pa.schema(
    [
        _f("policy", pa.string()),
        _f("seed", pa.int64()),
        _f("prompt_id", pa.string()),
        _f("sample_idx", pa.int32()),
        _f("category", pa.string()),
        _f("prompt", pa.string()),
        _f("response", pa.string()),
        _f("n_words", pa.int64()),
        _f("gold", pa.float64()),
        _f("correctness", pa.float64(), nullable=True),
        _f("proxy", pa.float64(), nullable=True),
        _f("kl_to_sft", pa.float64()),
        _f("judge_win", pa.float64(), nullable=True),
    ],
    metadata={
        "doc": "A policy's responses to the eval prompts with their judge's scores: the gold "
        "judge's (correctness set), or the reward model's under evaluate.judge=reward_model "
        "(correctness null); under a pairwise judge (preference_model, llm) gold is NaN and "
        "judge_win is P(this response beats the baseline's to the same prompt and sample), "
        "both orders averaged. Also the reward model's score (proxy) and the response's KL to "
        "SFT (kl_to_sft, nats: summed exact next-token KL along the response). A multi-turn "
        "question's response is the policy's answers to every turn, joined by blank lines."
    },
)

SCORED_GOLD = pa.schema(
    [
        _f("iteration", pa.string()),
        _f("seed", pa.int64()),
        _f("prompt_id", pa.string()),
        _f("sample_idx", pa.int32()),
        _f("n_words", pa.int64()),
        _f("gold", pa.float64()),
        _f("correctness", pa.float64()),
    ],
    metadata={
        "doc": "Gold-judge scores of every generated response (analysis only; never trained on)."
    },
)

TABLES: dict[str, pa.Schema] = {
    "preferences": PREFERENCES,
    "quarantine": QUARANTINE,
    "prompt_pool": PROMPT_POOL,
    "prompts": PROMPTS,
    "demonstrations": DEMONSTRATIONS,
    "generations": GENERATIONS,
    "scored": SCORED,
    "pairs": PAIRS,
    "evaluations": EVALUATIONS,
    "scored_gold": SCORED_GOLD,
}

# --- raw sources of the embedded world, each in its own native shape ----------------------

_TURN = pa.struct([pa.field("from", pa.string()), pa.field("value", pa.string())])
_UF_COMPLETION = pa.struct(
    [
        pa.field("model", pa.string()),
        pa.field("response", pa.string()),
        pa.field("overall_score", pa.float64()),
    ]
)

RAW_SOURCES: dict[str, pa.Schema] = {
    # Anthropic HH-RLHF: whole transcripts as strings.
    "hh": pa.schema([_f("chosen", pa.string(), True), _f("rejected", pa.string(), True)]),
    # UltraFeedback (binarised upstream by RLHFlow): one prompt, several rated completions.
    "ultrafeedback": pa.schema(
        [
            _f("source", pa.string(), True),
            _f("prompt", pa.string(), True),
            _f("completions", pa.list_(_UF_COMPLETION), True),
        ]
    ),
    # HelpSteer: one response per row with 0-4 attribute scores.
    "helpsteer": pa.schema(
        [
            _f("prompt", pa.string(), True),
            _f("response", pa.string(), True),
            *[
                _f(a, pa.int64(), True)
                for a in ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
            ],
        ]
    ),
    # Stanford Human Preferences: two replies to a post with their vote scores.
    "shp": pa.schema(
        [
            _f("post_id", pa.string(), True),
            _f("domain", pa.string(), True),
            _f("history", pa.string(), True),
            _f("human_ref_A", pa.string(), True),
            _f("human_ref_B", pa.string(), True),
            _f("labels", pa.int64(), True),
            _f("score_A", pa.int64(), True),
            _f("score_B", pa.int64(), True),
            _f("score_ratio", pa.float64(), True),
        ]
    ),
    # PKU-SafeRLHF: two responses with safety flags and better/safer ids.
    "pku_safe": pa.schema(
        [
            _f("prompt", pa.string(), True),
            _f("response_0", pa.string(), True),
            _f("response_1", pa.string(), True),
            _f("is_response_0_safe", pa.bool_(), True),
            _f("is_response_1_safe", pa.bool_(), True),
            _f("better_response_id", pa.int64(), True),
            _f("safer_response_id", pa.int64(), True),
        ]
    ),
    # UltraInteract pairs: a trajectory of turns, then a correct and an incorrect answer.
    "ultrainteract": pa.schema(
        [
            _f("id", pa.string(), True),
            _f("parent_id", pa.string(), True),
            _f("task", pa.string(), True),
            _f("trajectory", pa.list_(_TURN), True),
            _f("chosen", pa.string(), True),
            _f("rejected", pa.string(), True),
        ]
    ),
}


class SchemaError(ValueError):
    """A table does not match its declared schema."""


def schema_for(name: str) -> pa.Schema:
    if name in TABLES:
        return TABLES[name]
    if name.startswith("raw/") and name[4:] in RAW_SOURCES:
        return RAW_SOURCES[name[4:]]
    raise KeyError(f"unknown table {name!r}; known: {sorted(TABLES)} and raw/<source>")


def validate(name: str, table: pa.Table, origin: str | Path) -> pa.Table:
    """Check `table` against the schema `name`; return it cast to the exact schema.

    Raises SchemaError naming `origin` (a file path or a description), the field and,
    for nulls in a non-null field, the first offending row.
    """
    schema = schema_for(name)
    missing = [n for n in schema.names if n not in table.column_names]
    extra = [n for n in table.column_names if n not in schema.names]
    if missing or extra:
        raise SchemaError(
            f"{origin}: table {name!r} has missing columns {missing} and unexpected columns {extra}"
        )
    table = table.select(schema.names)
    for f in schema:
        col = table.column(f.name)
        if not f.nullable and col.null_count:
            row = _first_null(col)
            raise SchemaError(f"{origin}: row {row}, field {f.name!r}: null in a non-null column")
        _check_nested_nulls(f, col, origin)
        if col.type != f.type:
            try:
                table = table.set_column(schema.get_field_index(f.name), f, col.cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise SchemaError(
                    f"{origin}: field {f.name!r} has type {col.type}, expected {f.type}: {e}"
                ) from None
    return pa.Table.from_arrays(table.columns, schema=schema)


def _first_null(col: pa.ChunkedArray) -> int:
    offset = 0
    for chunk in col.chunks:
        nulls = chunk.is_null()
        for i, v in enumerate(nulls.to_pylist()):
            if v:
                return offset + i
        offset += len(chunk)
    return -1


def _check_nested_nulls(f: pa.Field, col: pa.ChunkedArray, origin) -> None:
    """Message lists must not contain null messages, roles or contents."""
    if f.type != MESSAGES:
        return
    flat = pa.concat_arrays([c.flatten() for c in col.chunks]) if col.num_chunks else None
    if flat is None or len(flat) == 0:
        return
    for sub in ("role", "content"):
        part = flat.field(sub)
        if part.null_count:
            raise SchemaError(f"{origin}: field '{f.name}.{sub}': null inside a message list")
    if flat.null_count:
        raise SchemaError(f"{origin}: field {f.name!r}: null message inside a message list")


def write_table(name: str, table: pa.Table, path: str | Path) -> Path:
    """Validate and write atomically. Returns the path written."""
    path = Path(path)
    table = validate(name, table, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        # Fixed writer options so the same rows give byte-identical files.
        pq.write_table(table, tmp, compression="zstd", use_dictionary=True, write_statistics=True)
    return path


def read_table(name: str, path: str | Path) -> pa.Table:
    """Read and validate a table written by :func:`write_table`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such table ({name}); run the stage that writes it")
    return validate(name, pq.read_table(path), path)


def empty(name: str) -> pa.Table:
    return schema_for(name).empty_table()
