"""The params' external sources (`mix.external`, `prompts.external`): their format names
checked against a registry, their rows loaded. Apart from the readers, so that the prompts
stage depends on no preference reader."""

from __future__ import annotations

from collections.abc import Mapping

from rlhf.core.config import ConfigError, ExternalSource
from rlhf.core.datafiles import load_rows
from rlhf.preferences.adapters import Row


def check_formats(section: str, sources: Mapping[str, ExternalSource], known: Mapping) -> None:
    """Refuse a params source whose format the registry `known` lacks, naming its key
    (`mix.external.<name>.format`). The registries check their own names so that loading
    params (config) imports none of them."""
    for name, src in sources.items():
        if src.format not in known:
            raise ConfigError(
                f"{section}.external.{name}.format: unknown format {src.format!r}; "
                f"known: {', '.join(known)}"
            )


def load_external(src) -> list[Row]:
    """Rows of a params `ExternalSource` (a local path or a hub id)."""
    return load_rows(src.path or src.hub, src.split, src.revision, src.max_rows)
