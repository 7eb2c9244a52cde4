"""The Python API: build a corpus, score translation pairs, train and evaluate (docs/api.md).

Each function runs the same code as its command: :func:`build` is ``corpusalign build`` (options
resolved by :mod:`corpusalign.resolve`, as the CLI does), :func:`score_pairs` runs the build's own
normalise, language-ID, verify and select steps on the given pairs, :func:`train` and
:func:`evaluate` are ``corpusalign train`` and ``corpusalign eval``. Errors are the library's
exceptions (:class:`~corpusalign.config.ConfigError`, :class:`~corpusalign.runner.BuildError`,
:class:`~corpusalign.extras.MissingExtraError`, ...), never an exit code.

Heavy modules (polars, the steps, torch) are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpusalign.corpus import Corpus, CorpusValidationError, ValidationResult

if TYPE_CHECKING:
    import polars as pl

    from corpusalign.embed.base import Embedder
    from corpusalign.execute import ExecutorOptions
    from corpusalign.training.config import TrainConfig
    from corpusalign.training.loop import TrainResult
    from corpusalign.verify.gate import LanguageGate

__all__ = ["Corpus", "CorpusValidationError", "ValidationResult", "build", "evaluate", "score_pairs", "train"]


def build(
    src: str | None = None,
    tgt: str | Sequence[str] | None = None,
    inputs: str | Path | Sequence[str | Path] | None = None,
    output: str | Path = "corpus",
    pipeline: str | Path | None = None,
    *,
    overwrite: bool = False,
    keep_work: bool = False,
    progress: bool = False,
    report: bool = True,
    executor: str | ExecutorOptions = "local",
    **overrides: Any,
) -> Corpus:
    """Build a corpus, exactly as ``corpusalign build`` does, and return it opened as a :class:`Corpus`.

    ``src``/``tgt``: the source language and the target languages (a list or a comma string such as
    ``"de,ja"``); None takes the pipeline file's values, else the defaults (``en``; ``de, ja, sw``).
    ``inputs``: a file or directory, or a list of them; None builds the bundled sample.
    ``pipeline``: a pipeline parameter file (YAML), e.g. ``pipelines/default.yaml``.
    ``overrides``: any configuration key, with ``__`` for each dot (``verify__enabled=False``,
    ``select__max_chars=2000``, ``translate__translator="seq2seq"``, ``translate__memory=["tm.tmx"]``,
    ``fields="prompt,response"``); they win over the pipeline file, as ``--set``-style CLI options do.
    ``overwrite``, ``keep_work`` and ``report`` are the CLI's ``--overwrite``, ``--keep-work`` and
    ``--report/--no-report``; ``progress=True`` shows the CLI's progress bars. ``executor``: ``local``,
    ``ray``, or an :class:`~corpusalign.execute.ExecutorOptions`.

    Re-running the same build resumes an interrupted one, or returns at once when the output is up to
    date. A failure raises (``ConfigError``, ``BuildError``, ``MissingExtraError``, ...); a report that
    cannot be written is logged as a warning, as the CLI does, since the corpus itself is built.
    """
    import logging

    from corpusalign.execute import ExecutorOptions
    from corpusalign.resolve import build_config, build_inputs, write_build_report
    from corpusalign.runner import Runner, make_plan

    cfg = build_config(pipeline, src=src, tgt=tgt, **overrides)
    where = executor if isinstance(executor, ExecutorOptions) else ExecutorOptions(name=executor)
    plan = make_plan(cfg, build_inputs(inputs), output)
    result = Runner(plan, overwrite=overwrite, keep_work=keep_work, progress=progress, executor=where).run()
    if report:
        try:
            write_build_report(result)
        except Exception as exc:  # the corpus is built; a report failure must not hide that
            logging.getLogger(__name__).warning("corpus built, but the report failed: %s", exc)
    corpus = Corpus(result.output)
    corpus.build_result = result
    return corpus


def _gate_dicts(gates: Mapping[str, Any]) -> dict[str, Any]:
    return {lang: g.to_dict() if hasattr(g, "to_dict") else dict(g) for lang, g in gates.items()}


def score_pairs(
    src_texts: Sequence[str],
    tgt_texts: Sequence[str],
    src: str = "en",
    tgt: str | Sequence[str] = "de",
    embedder: str | Embedder | None = None,
    gates: str | Path | Mapping[str, LanguageGate | Mapping[str, Any]] | None = None,
) -> pl.DataFrame:
    """Score translation pairs and decide them as a build would: one row per pair, in input order.

    The pairs go through the build's own steps as one batch: normalise, language ID, verify (the
    scores of :mod:`corpusalign.verify.features` and the gate's ``verify_p``) and select (the row
    rules and the calibrated gate). Dedup is left out: every pair is judged on its own.

    ``src_texts``/``tgt_texts``: equally long sequences of strings. ``src``: their source language;
    ``tgt``: the target language of every pair, or one language per pair. ``embedder``: an embedder
    name (``e5``, ``e5-native``, ``e5-torch``, ``st:<model>``), an
    :class:`~corpusalign.embed.base.Embedder`, or None for the build default (``verify.embedder``).
    ``gates``: None for the shipped gates, ``{lang: LanguageGate or its dict}`` (``"*"`` for other
    languages), or the path of a pipeline file: its ``verify`` and ``select`` settings then apply
    (what ``corpusalign calibrate`` writes).

    Returns a polars DataFrame: ``src_text``, ``tgt_text`` (normalised, as scored), ``lang``, the
    verification scores (``cos``, ``margin``, ``nn_pair``, ``len_log_ratio``, ``num_agree``,
    ``placeholder_ok``, ``copy_sim``, ``script_ok``, ``lid_expected`` and the gate's inputs
    ``src_chars`` ... ``word_log_ratio``), ``lid_lang``, ``lid_score``, ``verify_p``, ``keep``
    (bool), ``reason`` (the drop reason, null when kept) and ``detail`` (why, null when kept).
    ``margin`` and ``nn_pair`` compare each pair with the other pairs of its language in the call,
    as a build compares the pairs of a batch: they are null for a language with a single pair.
    """
    import polars as pl

    from corpusalign.config import replace
    from corpusalign.embed import Embedder, make_embedder
    from corpusalign.read.formats import RawItem
    from corpusalign.read.records import records_to_batch
    from corpusalign.resolve import build_config
    from corpusalign.stats import RunStats
    from corpusalign.steps.base import BATCH_COLUMNS, check_wiring
    from corpusalign.steps.langid import LanguageIdStep
    from corpusalign.steps.normalise import NormaliseStep
    from corpusalign.steps.select import SelectStep
    from corpusalign.steps.verify import VerifyStep
    from corpusalign.verify.features import EXTRA_COLUMNS, FEATURE_COLUMNS

    sources, targets = list(src_texts), list(tgt_texts)
    if isinstance(src_texts, str) or isinstance(tgt_texts, str):
        raise TypeError("score_pairs: give src_texts and tgt_texts as lists of strings, not single strings")
    if len(sources) != len(targets):
        raise ValueError(f"score_pairs: {len(sources)} source texts but {len(targets)} target texts")
    bad = [t for t in (*sources, *targets) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"score_pairs: every text must be a str, got {type(bad[0]).__name__} {bad[0]!r}")
    langs = [tgt] * len(sources) if isinstance(tgt, str) else list(tgt)
    if len(langs) != len(sources):
        raise ValueError(f"score_pairs: {len(langs)} target languages for {len(sources)} pairs")

    pipeline = gates if isinstance(gates, str | Path) else None
    cfg = build_config(
        pipeline, src=src, tgt=list(dict.fromkeys(langs)) or [tgt if isinstance(tgt, str) else "de"], fields=["text"]
    )
    verify = replace(cfg.verify, enabled=True, **({"gates": _gate_dicts(gates)} if isinstance(gates, Mapping) else {}))
    # each pair is a concept of two rows: the concept rules about other languages do not apply to it
    select = replace(cfg.select, on_missing_language="keep_partial", min_languages=2)
    cfg = replace(cfg, verify=verify, select=select)

    own = embedder is None or isinstance(embedder, str)
    if isinstance(embedder, Embedder):
        emb = embedder
    else:
        emb = make_embedder(embedder or cfg.verify.embedder, cfg.verify.batch_size, cfg.verify.device)
    items = [
        RawItem("<score_pairs>", i + 1, {"concept_id": str(i), src: s, lang: t})
        for i, (s, t, lang) in enumerate(zip(sources, targets, langs))
    ]
    batch, _, _ = records_to_batch(items, cfg, 0)
    # what dedup and translation would add: no duplicates (pairs are judged one by one), no failed translation
    unused = ("dup_of", "dup_kind", "translate_error")
    batch = batch.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in unused)
    steps = [NormaliseStep(cfg.normalise), LanguageIdStep(cfg), VerifyStep(emb, cfg), SelectStep(cfg)]
    check_wiring(steps, initial=(*BATCH_COLUMNS, *unused))
    run = RunStats()
    try:
        for step in steps:
            step.setup()
            batch = step.process(batch, run[step.name])
    finally:
        if own:
            emb.close()

    source_rows = batch.filter(pl.col("lang") == src).select("_seq", pl.col("text").alias("src_text"))
    wanted = pl.DataFrame({"_seq": range(len(langs)), "lang": langs}, schema={"_seq": pl.UInt64, "lang": pl.String})
    scored = wanted.join(batch, on=["_seq", "lang"], how="left", maintain_order="left").join(
        source_rows, on="_seq", how="left", maintain_order="left"
    )
    score_columns = [c for c in (*FEATURE_COLUMNS, *EXTRA_COLUMNS) if c in scored.columns]
    return scored.select(
        "src_text",
        pl.col("text").alias("tgt_text"),
        "lang",
        *score_columns,
        "lid_lang",
        "lid_score",
        "verify_p",
        pl.col("drop_reason").is_null().alias("keep"),
        pl.col("drop_reason").alias("reason"),
        pl.col("drop_detail").alias("detail"),
    )


def train(
    shards: str | Path | Corpus,
    output: str | Path = "run",
    config: str | Path | TrainConfig | None = None,
    *,
    resume: bool = False,
    progress: bool = False,
    **overrides: Any,
) -> TrainResult:
    """Fine-tune a causal LM on a corpus with concept-aligned batches: ``corpusalign train``.

    ``shards``: a corpus directory or a :class:`Corpus`. ``output``: the run directory (checkpoints,
    logs, summary). ``config``: a training parameter file (YAML, ``--params``, e.g.
    ``pipelines/train-sft.yaml``) or a :class:`~corpusalign.training.config.TrainConfig`; None: the
    defaults. ``overrides``: training keys, ``__`` for each dot, winning over ``config``: the CLI's
    options ``model``, ``objective``, ``langs``, ``sampler``, ``concepts_per_batch``, ``steps``, ``lr``,
    ``grad_accum``, ``consistency``, ``precision``, ``device``, ``seed``, ``lora__enabled``, and every
    other key of the parameter file. ``resume=True`` continues from the newest checkpoint in ``output``.
    Needs the ``train`` extra. Returns the :class:`~corpusalign.training.loop.TrainResult` (``checkpoint``:
    the final model's directory).
    """
    from corpusalign.training.config import TrainConfig, load_train_config, train_config_from_dict
    from corpusalign.training.loop import train as run_train

    if isinstance(config, TrainConfig):
        cfg = train_config_from_dict(_merge(config.to_dict(), overrides)) if overrides else config
    else:
        cfg = load_train_config(config, **overrides)
    path = shards.path if isinstance(shards, Corpus) else shards
    return run_train(cfg, path, output, resume=resume, progress=progress)


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` (a config as plain data) with ``{"lora__r": 8}``-style overrides applied (None skipped)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, name = key.partition("__")
        if name:
            out.setdefault(section, {})[name] = value
        else:
            out[key] = value
    return out


def evaluate(
    model: str | Path,
    shards: str | Path | Corpus,
    *,
    langs: str | Sequence[str] | None = None,
    num_choices: int = 4,
    max_concepts: int | None = None,
    eval_fraction: float | None = None,
    split: str = "eval",
    batch_size: int = 32,
    device: str = "auto",
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Per-language accuracy, the English gap, cross-lingual consistency and retrieval on held-out
    concepts: ``corpusalign eval``, with the same options.

    ``model``: a ``corpusalign train`` output directory or checkpoint (its training task, languages
    and held-out split are used), a local model directory, a hub id in the local cache, or
    ``smollm2``. ``shards``: a corpus directory or a :class:`Corpus`. Needs the ``train`` extra.
    Returns the JSON-ready dict that ``corpusalign eval --json`` writes (``acc``, ``acc_norm`` and
    ``retrieval`` per language, ``acc_norm_gap``, ``acc_norm_consistency``, ``acc_norm_all_correct``, ``model``, ...).
    """
    from corpusalign.training.evaluate import evaluate_model

    path = shards.path if isinstance(shards, Corpus) else shards
    lang_list = [v.strip() for v in langs.split(",") if v.strip()] if isinstance(langs, str) else langs
    return evaluate_model(
        model,
        path,
        langs=list(lang_list) if lang_list else None,
        num_choices=num_choices,
        max_concepts=max_concepts,
        eval_fraction=eval_fraction,
        split=split,
        batch_size=batch_size,
        device=device,
        seed=seed,
        progress=progress,
    )
