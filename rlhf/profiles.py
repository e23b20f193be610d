"""Profiles: named settings of the one pipeline, switched with one command.

``profiles/embedded.yaml`` is the embedded default in full (the synthetic world, a tiny model
trained from scratch). Every other ``profiles/<name>.yaml`` is an overlay on it::

    description: one line shown by `rlhf profile list`
    extends: paper               # optional: overlay another profile's result instead
    setup: shell command(s) the profile needs first (printed by `rlhf profile use`; default:
           the extended profile's)
    replace: [iterations]        # keys replaced wholesale instead of merged
    params: {...}                # merged into the embedded default, mapping by mapping

``rlhf profile use <name>`` validates the result and writes it to params.yaml (atomically,
comments kept); ``dvc repro`` then runs that profile. params.yaml stays the single source of
truth: a profile is only a way to write it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from rlhf.core import paths
from rlhf.core.config import ConfigError, parse_params
from rlhf.core.io import write_text

PROFILES_DIR = Path("profiles")
EMBEDDED = "embedded"
_HEADER = "# profile: {name} (written by `rlhf profile use {name}`: profiles/embedded.yaml + profiles/{name}.yaml)\n"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    setup: str
    replace: tuple[str, ...]
    overlay: dict[str, Any]
    extends: str = ""


def _yaml() -> YAML:
    y = YAML()  # round-trip: keeps comments and key order
    y.width = 100
    y.preserve_quotes = True
    return y


def names(root: Path = Path(".")) -> list[str]:
    return sorted(p.stem for p in (root / PROFILES_DIR).glob("*.yaml"))


def load(name: str, root: Path = Path("."), _seen: tuple[str, ...] = ()) -> Profile:
    path = root / PROFILES_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown profile {name!r}; known: {', '.join(names(root))}")
    if name == EMBEDDED:
        return Profile(name, "the embedded synthetic world (default)", "", (), {})
    raw = _yaml().load(path.read_text()) or {}
    unknown = set(raw) - {"description", "extends", "setup", "replace", "params"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}")
    if not isinstance(raw.get("params", {}), dict):
        raise ConfigError(f"{path}: params: must be a mapping")
    extends = str(raw.get("extends", "") or "").strip()
    setup = str(raw.get("setup", "")).strip()
    if extends in (*_seen, name, EMBEDDED):
        raise ConfigError(f"profile {name}: extends {extends!r} in a loop or the default")
    if extends and not setup:
        setup = load(extends, root, (*_seen, name)).setup
    return Profile(
        name,
        str(raw.get("description", "")).strip(),
        setup,
        tuple(raw.get("replace", []) or []),
        raw.get("params", {}) or {},
        extends,
    )


def _chain(prof: Profile, root: Path) -> list[Profile]:
    """`prof` and the profiles it extends, the furthest first."""
    chain = [prof]
    while chain[0].extends:
        if chain[0].extends in (p.name for p in chain):
            raise ConfigError(f"profile {prof.name}: extends {chain[0].extends!r} in a loop")
        chain.insert(0, load(chain[0].extends, root))
    return chain


# ruamel keeps the comments after a key's value in one token: the end-of-line comment, then the
# blank and comment lines up to the next key. So a key's own comment is the first line of its
# token, and the comment block above a key lives in the previous key's token.


def _token(m: CommentedMap, key: Any) -> Any:
    item = m.ca.items.get(key)
    return item[2] if item and len(item) > 2 else None


def _eol(m: CommentedMap, key: Any) -> str:
    tok = _token(m, key)
    return tok.value.partition("\n")[0] if tok else ""


def _above(m: CommentedMap, key: Any) -> list[str]:
    """Comment lines directly above `key` (stripped), from the previous key's token."""
    keys = list(m)
    i = keys.index(key)
    if i == 0:
        toks = (m.ca.comment or [None, None])[1] or []
        text = "".join(t.value for t in toks)
    else:
        tok = _token(m, keys[i - 1])
        text = tok.value.partition("\n")[2] if tok else ""
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("#")]


def _set_comments(
    base: CommentedMap, over: CommentedMap, key: Any, depth: int, replaced: bool
) -> None:
    """The comments of a key the profile changes. A replaced value's end-of-line comment
    described the old value, so the profile's (or none) takes its place; the block above a key
    is replaced only where the profile writes its own, since it often documents the key."""
    tok = _token(base, key)
    eol = _eol(over, key)
    if tok is not None and (replaced or eol):
        tok.value = eol + "\n" + tok.value.partition("\n")[2]
    elif eol:
        base.yaml_add_eol_comment(eol, key)
    above = _above(over, key)
    if not above:
        return
    indent = "  " * depth
    keys = list(base)
    i = keys.index(key)
    prev = _token(base, keys[i - 1]) if i else None
    if prev is not None:
        head, _, rest = prev.value.partition("\n")
        blank = "\n" if rest.startswith("\n") else ""  # keep a paragraph break above
        prev.value = head + "\n" + blank + "".join(f"{indent}{ln}\n" for ln in above)
    else:
        if i == 0 and base.ca.comment:
            base.ca.comment[1] = []
        base.yaml_set_comment_before_after_key(
            key, before="\n".join(ln.lstrip("# ") for ln in above), indent=len(indent)
        )


def _merge(
    base: CommentedMap, over: dict[str, Any], replace: tuple[str, ...], prefix: str, depth=0
):
    for key, value in over.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        merge = isinstance(value, dict) and isinstance(base.get(key), dict)
        if merge and path not in replace:
            _merge(base[key], value, replace, path, depth + 1)
        else:
            base[key] = value
        if isinstance(base, CommentedMap) and isinstance(over, CommentedMap):
            _set_comments(base, over, key, depth, replaced=not merge or path in replace)


def render(name: str, root: Path = Path(".")) -> str:
    """params.yaml text for profile `name`, validated against rlhf.core.config."""
    base_text = (root / PROFILES_DIR / f"{EMBEDDED}.yaml").read_text()
    prof = load(name, root)
    if name == EMBEDDED:
        text = base_text
    else:
        y = _yaml()
        data = y.load(base_text)
        for p in _chain(prof, root):
            _merge(data, p.overlay, p.replace, "")
        buf = io.StringIO()
        y.dump(data, buf)
        text = _HEADER.format(name=name) + buf.getvalue()
    try:
        parse_params(_yaml().load(text))
    except ConfigError as e:
        raise ConfigError(f"profile {name}: {e}") from None
    return text


class EditsKept(ConfigError):
    """`use` refused: params.yaml holds edits no profile reproduces (exit 2, nothing written)."""


def use(name: str, root: Path = Path("."), force: bool = False) -> tuple[Profile, Path | None]:
    """Write profile `name` to params.yaml; (the profile, the backup of the old params.yaml or
    None). A params.yaml that no profile renders (hand edits since the last `use`) would be
    lost: refused (:class:`EditsKept`) unless `force`, which first copies it to a new
    ``params.yaml.bak-<n>`` and names it."""
    text = render(name, root)
    target = root / paths.PARAMS
    backup = None
    if target.is_file() and current(root) is None:
        if not force:
            raise EditsKept(
                f"{paths.PARAMS} has edits since the last `rlhf profile use` (it matches no "
                f"profile); nothing written: keep them in a profile of your own, or rerun with "
                f"--force to switch anyway (the edited file is then kept as a backup)"
            )
        n = 1
        while (backup := target.with_name(f"{target.name}.bak-{n}")).exists():
            n += 1
        write_text(backup, target.read_text())
    write_text(target, text)
    return load(name, root), backup


def current(root: Path = Path(".")) -> str | None:
    """The profile params.yaml was written from, or None if it has been edited since."""
    text = (root / paths.PARAMS).read_text()
    for n in names(root):
        try:
            if render(n, root) == text:
                return n
        except ConfigError:
            continue
    return None
