"""From what a user asks for to what a build runs: shared by the command line and the Python API.

``corpusalign build`` (:mod:`corpusalign.cli`) and :func:`corpusalign.build` (:mod:`corpusalign.api`)
resolve their options here, so that the same options give the same build either way:

* :func:`build_config`: a pipeline file (or the defaults) with overrides applied, validated;
* :func:`build_inputs`: the given inputs, or the bundled sample (:func:`sample_dir`) when none are given;
* :func:`write_build_report`: report.json and report.html beside a finished build (skipped when current).

Only the standard library is imported at module level: the CLI imports this module at start-up.

Example::

    cfg = build_config("pipelines/default.yaml", tgt="de,ja", verify__enabled=False, translate__generation__num_beams=1)
    inputs = build_inputs(None)  # [sample_dir()]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corpusalign.config import BuildConfig
    from corpusalign.runner import BuildResult


def sample_dir() -> Path:
    """The bundled sample: UDHR paragraphs (en/de/ja/sw), Tatoeba sentences (en/de/ja) and CLDR names (en/de/ja/sw)."""
    return Path(str(files("corpusalign") / "data" / "sample"))


def _set_dotted(data: dict[str, Any], parts: Sequence[str], value: Any, key: str) -> None:
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, Mapping):
            from corpusalign.config import ConfigError

            raise ConfigError(f"override {key}: {'.'.join(parts[: i + 1])} is {child!r}, not a section")
        else:
            child = node[part] = dict(child)
        node = child
    node[parts[-1]] = value


def build_config(pipeline: str | Path | None = None, /, **overrides: Any) -> BuildConfig:
    """The build configuration: the pipeline file ``pipeline`` (None: the defaults) with ``overrides`` applied.

    An override is a configuration key with ``__`` for each dot, at any depth: ``tgt="de,ja"``,
    ``verify__enabled=False``, ``translate__generation__num_beams=1``; a value of None is skipped
    (an option left unset). List keys (``tgt``, ``fields``, ``translate__memory``) take a list or a
    comma-separated string. Raises :class:`~corpusalign.config.ConfigError` for an unknown key or a
    bad value and :class:`OSError` when the pipeline file cannot be read.
    """
    from corpusalign.config import config_from_dict, read_parameter_file

    data = read_parameter_file(pipeline, {})
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.split("__")
        if not all(parts):
            from corpusalign.config import ConfigError

            raise ConfigError(f"override {key!r}: use a configuration key with __ for each dot, e.g. verify__enabled")
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, Sequence) and not isinstance(value, str):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        _set_dotted(data, parts, value, key)
    return config_from_dict(data)


def build_inputs(inputs: str | Path | Sequence[str | Path] | None) -> list[Path]:
    """The inputs of a build as paths: ``inputs`` (one path or several), or ``[sample_dir()]`` when none are given."""
    if inputs is None or (not isinstance(inputs, str | Path) and len(inputs) == 0):
        return [sample_dir()]
    if isinstance(inputs, str | Path):
        return [Path(inputs)]
    return [Path(p) for p in inputs]


def write_build_report(result: BuildResult) -> Path:
    """Write report.json and report.html into a finished build's directory, unless the build was
    already up to date and its report is current; returns the path of report.html."""
    from corpusalign.report import REPORT_HTML, current_report, write_report

    current = (result.output / REPORT_HTML).exists() and current_report(result.output).get("manifest_digest")
    if not (result.up_to_date and current):
        write_report(result.output)
    return result.output / REPORT_HTML
