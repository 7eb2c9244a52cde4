"""Re-decide a finished build with new gates, thresholds or select options, from its stored scores.

``reselect(corpus, output, pipeline)`` writes a new corpus directory as ``build`` would have written it
with the new configuration, without translating, embedding or deduplicating again: every score it needs
is in the corpus (kept rows in ``shards/``, dropped rows in ``rejected/``, both with the score columns).

What is re-decided from what:

* **Row reasons** (:data:`~corpusalign.steps.select.ROW_REASONS`) run again with the new ``select``
  options. Those that come from earlier steps stay as the build decided them: ``duplicate_id``,
  ``duplicate`` and ``near_duplicate`` (dedup does not run again), ``translation_failed`` and
  ``missing_target``; quarantined records stay quarantined (the files are copied).
* **The verification gate** runs again on the stored scores (``cos``, ``margin``, ``nn_pair``,
  ``len_log_ratio``, ``num_agree``, ``placeholder_ok``, ``copy_sim``, ``script_ok``, ``lid_expected``,
  ``lid_lang``, ``lid_score``) plus the gate inputs that shards do not store but the texts determine
  (``src_chars``, ``src_words``, ``end_punct_ok``, ``sent_diff``, ``word_log_ratio``, ``neutral``;
  :func:`corpusalign.verify.features.text_features`). Two inputs need the embedder and are not stored:
  ``prefix_gain`` and ``source_gap``.

  - A gate whose probability model (weights, bias, imputed values, length model, per domain too) is the
    build's: the stored ``verify_p`` is its probability, exactly (it includes ``prefix_gain`` and
    ``source_gap``). Thresholds and hard rules may change freely.
  - A gate with another probability model: ``verify_p`` is computed anew, which is possible only when
    the gate gives ``prefix_gain`` and ``source_gap`` no weight (and the corpus has one text field);
    otherwise :class:`ReselectError` names what is missing: rebuild with ``build --overwrite``.
  - The ``misaligned`` hard rule reads ``source_gap`` (``>= gap_min``) for the rows whose margin and
    nearest-neighbour test already point that way. The build's own decision of the row tells on which
    side of the build's ``gap_min`` it lies; with an unchanged (or, in the right direction, changed)
    ``gap_min`` that settles it. A row it does not settle is an error, never a guess.
* **Concept rules** (``source_rejected``, ``incomplete_concept``, ``too_few_languages``) run again.

The output has the build's layout (rejected rows per input batch, shards by concept bucket, never a
concept across shards), accounting, ``stats.json`` (the select and shard steps' counters anew, the
earlier steps' as the build counted them) and a manifest with the new configuration and
``reselected_from`` (the corpus, its manifest digest and build fingerprint). Reselecting with the build's
own configuration gives byte-identical shards and rejected files.

Example::

    from corpusalign.reselect import reselect

    result = reselect("corpus/", "corpus-strict/", thresholds={"de": 0.6})
    result.manifest["accounting"]["ok"]  # True
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from corpusalign.config import BuildConfig, ConfigError, config_from_dict, read_parameter_file
from corpusalign.execute import ExecutorOptions, make_executor
from corpusalign.runner import WORK, AttachDuplicatesStep, BuildError, BuildResult, Plan, Runner, output_lock
from corpusalign.stats import RunStats
from corpusalign.steps.dedup import DUPLICATES_SCHEMA
from corpusalign.steps.select import SelectStep
from corpusalign.store import manifest as mf
from corpusalign.store.files import write_json, write_parquet
from corpusalign.store.schema import SCHEMA_VERSION
from corpusalign.store.shards import QUARANTINE_DIR, REJECTED_DIR, SHARD_DIR, bucket_count
from corpusalign.verify.features import EXTRA_COLUMNS, FEATURE_DTYPES, LENGTH_COLUMN, text_features
from corpusalign.verify.gate import REASONS, LanguageGate, hard_rules, predict_proba, rule_values
from corpusalign.verify.scores import DOMAINS

log = logging.getLogger(__name__)

#: Configuration that a reselect may change: the select step's options, the shard bounds and the gates.
CHANGEABLE = ("select.", "shards.", "verify.gates")
#: Configuration that changes how a build runs, not what it writes; a reselect keeps the build's values.
NO_EFFECT = (
    "verify.batch_size",
    "verify.device",
    "translate.device",
    "translate.dtype",
    "translate.batch_size",
    "translate.max_tokens_per_batch",
    "translate.cache",
    "translate.cache_path",
)
#: Gate inputs that need the embedder and are not stored in shards.
EMBEDDING_ONLY = ("prefix_gain", "source_gap")
#: Drop reasons that come from steps before select, kept as the build decided them.
DEDUP_REASONS = ("duplicate_id", "duplicate", "near_duplicate")
_KEY = ("source_file", "source_line", "concept_id")
#: The gate's hard-rule reasons, in the order they are tried.
HARD_REASONS = REASONS[:-1]


class ReselectError(BuildError):
    """The new configuration cannot be decided from the stored scores; the message says what is missing."""


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and not (prefix + k).startswith("verify.gates"):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set ``data[a][b] = value`` for ``key`` ``a.b`` (or ``a__b``)."""
    *sections, name = key.replace("__", ".").split(".")
    node = data
    for p in sections:
        if node.get(p) is None:
            node[p] = {}
        node = node[p]
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {p} is not a section")
    node[name] = value


def resolve_config(
    manifest: Mapping[str, Any],
    pipeline: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> BuildConfig:
    """The configuration of a reselect: the pipeline file (default: the build's own configuration) with
    ``overrides`` (``select.min_languages`` or ``select__min_languages``) and ``thresholds`` applied.

    ``thresholds`` (``{lang: p}``, ``"*"`` for the fallback gate) sets one probability threshold for every
    length domain of the language's gate. Raises :class:`ReselectError` when the result changes anything
    but the select options, the shard bounds and the gates (that needs a build).
    """
    built = manifest["config"]
    if pipeline is None:
        data: dict[str, Any] = json.loads(json.dumps(built))
    else:
        data = read_parameter_file(pipeline, {})
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    cfg = config_from_dict(data)
    if thresholds:
        gates = {lang: g.to_dict() for lang, g in cfg.verify.language_gates().items()}
        for lang, p in thresholds.items():
            if lang not in gates:
                raise ConfigError(f"threshold for {lang!r}: the configuration has no gate for it (gates: {', '.join(gates)})")
            gates[lang]["threshold"] = float(p)
            for d in (gates[lang].get("domains") or {}).values():
                d["threshold"] = float(p)
        data = cfg.to_dict()
        data["verify"]["gates"] = gates
        cfg = config_from_dict(data)
    new, old = _flat(cfg.to_dict()), _flat(built)
    differ = sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k) and not k.startswith(CHANGEABLE))
    blocking = [k for k in differ if k not in NO_EFFECT]
    if blocking:
        shown = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in blocking[:8])
        more = f" and {len(blocking) - 8} more" if len(blocking) > 8 else ""
        raise ReselectError(
            f"the new configuration changes {shown}{more}: only select.*, shards.* and verify.gates can change "
            "without re-running the earlier steps; build again (corpusalign build --overwrite)"
        )
    if differ:  # runtime-only settings: the build's values are what produced the scores
        data = cfg.to_dict()
        for k in differ:
            _set_dotted(data, k, old.get(k))
        cfg = config_from_dict(data)
    return cfg


def _probability_model(g: LanguageGate) -> dict[str, Any]:
    """The parts of a gate that determine its probability (not its threshold, rules or calibration notes)."""
    d = g.to_dict()
    for k in ("threshold", "rules", "precision", "recall", "n_train"):
        d.pop(k, None)
    d["domains"] = {
        name: {k: v for k, v in dg.items() if k not in ("threshold", "rules")} for name, dg in (d.get("domains") or {}).items()
    }
    return d


def _embedding_weights(g: LanguageGate) -> list[str]:
    """Inputs of :data:`EMBEDDING_ONLY` that ``g`` weighs (for any domain)."""
    used = []
    for c in EMBEDDING_ONLY:
        base = g.weights.get(c, 0.0)
        if base != 0.0 or any(base + g.domains[d].weights.get(c, 0.0) != 0.0 for d in g.domains if d in DOMAINS):
            used.append(c)
    return used


class _Reselector:
    """Turns a finished corpus into the staged batches of a build (``_work/stage1``) and its duplicates."""

    def __init__(self, corpus: Path, manifest: dict[str, Any], cfg: BuildConfig, work: Path) -> None:
        self.corpus = corpus
        self.manifest = manifest
        self.cfg = cfg
        self.old_cfg = config_from_dict(manifest["config"])
        self.work = work
        self.verified = bool(manifest.get("verification")) and self.old_cfg.verify.enabled
        self.old_gates: dict[str, LanguageGate] = {}
        self.new_gates: dict[str, LanguageGate] = {}
        self.same_model: dict[str, bool] = {}
        if self.verified:
            self.old_gates = {lang: LanguageGate.from_dict(g) for lang, g in manifest["verification"]["gates"].items()}
            self.new_gates = cfg.verify.language_gates()
            for lang in cfg.tgt:
                old, new = _gate(self.old_gates, lang), _gate(self.new_gates, lang)
                self.same_model[lang] = _probability_model(old) == _probability_model(new)
                if not self.same_model[lang]:
                    used = _embedding_weights(new)
                    if used:
                        raise ReselectError(
                            f"verify.gates: the gate for {lang} has another probability model than the build's and weighs "
                            f"{', '.join(used)}, which need the embedder and are not stored in the corpus; change only "
                            "thresholds and rules, or build again (corpusalign build --overwrite)"
                        )
                    if len(cfg.fields) > 1:
                        raise ReselectError(
                            f"verify.gates: the gate for {lang} has another probability model than the build's; with several "
                            "text fields the weakest field's scores are stored, and another model may pick another field: "
                            "build again (corpusalign build --overwrite)"
                        )
        self.old_select = SelectStep(self.old_cfg)
        self.new_select = SelectStep(cfg)

    # ------------------------------------------------------------------ layout
    def files(self, key: str) -> list[Path]:
        return [mf.entry_path(self.corpus, e["path"]) for e in self.manifest.get(key, [])]

    def plan_batches(self) -> tuple[pl.DataFrame, int, int]:
        """``(records, n_batches, n_items)``: each record's key, ``_seq`` and ``_batch``.

        Input order is rebuilt from the manifest's input list and ``source_line``; a record with a rejected
        row (or a quarantined one) keeps the batch its ``rejected/part-N`` (``quarantine/part-N``) file names.
        """
        inputs = [str(p) for p in self.manifest.get("inputs", [])]
        order = {p: i for i, p in enumerate(inputs)}
        parts: list[pl.DataFrame] = []
        for key, known in (("shards", False), ("rejected", True), ("quarantine", True)):
            for path in self.files(key):
                cols = ["source_file", "source_line"] + ([] if key == "quarantine" else ["concept_id", "lang"])
                t = pl.read_parquet(path, columns=cols)
                if key == "quarantine":
                    t = t.with_columns(
                        pl.lit(None, dtype=pl.String).alias("concept_id"), pl.lit(None, dtype=pl.String).alias("lang")
                    )
                batch = int(path.stem.split("-")[-1]) if known else None
                parts.append(
                    t.with_columns(
                        pl.lit(batch, dtype=pl.Int64).alias("_known"),
                        pl.lit(key == "quarantine").alias("_quarantined"),
                    )
                )
        rows = pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()
        n_items = int(self.manifest["accounting"]["input_records"])
        n_batches = math.ceil(n_items / self.cfg.batch_size) if n_items else 0
        if not rows.height:
            return (
                pl.DataFrame(schema={**dict.fromkeys(_KEY, pl.String), "_seq": pl.UInt64, "_batch": pl.Int64}),
                n_batches,
                n_items,
            )
        records = rows.filter(~pl.col("_quarantined"))
        n_langs = len(self.cfg.langs)
        sizes = records.group_by(_KEY).agg(pl.len().alias("n"), pl.col("lang").n_unique().alias("u"))
        bad = sizes.filter((pl.col("n") != n_langs) | (pl.col("u") != n_langs))
        if bad.height:
            raise ReselectError(
                f"{bad.height} record(s) of the corpus cannot be told apart by (source_file, source_line, concept_id) "
                f"(e.g. {bad.row(0)[:3]}): reselect needs one row per language for each; build again instead"
            )

        def input_index(name: str) -> int:
            if name in order:
                return order[name]
            base = name.rsplit("[", 1)[0] if name.endswith("]") else name  # a Hugging Face dataset split
            return order.get(base, len(inputs))

        keyed = (
            rows.group_by([*_KEY, "_quarantined"])
            .agg(pl.col("_known").max())
            .with_columns(pl.col("source_file").map_elements(input_index, return_dtype=pl.Int64).alias("_input"))
            .sort("_input", "source_line", "concept_id", nulls_last=True)
            .with_row_index("_ordinal")
        )
        if keyed.height != n_items:
            raise ReselectError(f"the corpus holds {keyed.height} records, its manifest says {n_items} input records")
        bs = self.cfg.batch_size
        keyed = keyed.with_columns(
            pl.coalesce("_known", (pl.col("_ordinal") // bs).cast(pl.Int64)).alias("_batch"),
            pl.col("_ordinal").cast(pl.UInt64).alias("_seq"),
        )
        moved = keyed.filter(pl.col("_known").is_not_null() & (pl.col("_known") != pl.col("_ordinal") // bs)).height
        if moved:
            log.warning("input order rebuilt with %d record(s) out of their batch: the rejected/ layout may differ", moved)
        return keyed.filter(~pl.col("_quarantined")).select(*_KEY, "_seq", "_batch"), n_batches, n_items

    def gather(self, records: pl.DataFrame) -> None:
        """Every kept and rejected row, with its ``_seq``, into ``_work/gather/bNNNNNN/`` by batch."""
        k = 0
        for key in ("shards", "rejected"):
            for path in self.files(key):
                t = pl.read_parquet(path)
                if key == "shards":
                    t = t.with_columns(
                        pl.lit(None, dtype=pl.String).alias("drop_reason"), pl.lit(None, dtype=pl.String).alias("drop_detail")
                    )
                t = t.join(records, on=list(_KEY), how="left")
                for (b,), part in t.group_by("_batch"):
                    table = part.drop("_batch").to_arrow()
                    write_parquet(table, self.work / "gather" / f"b{b:06d}" / f"{k:06d}.parquet", table.schema)
                    k += 1

    # ------------------------------------------------------------------ one batch
    def stage(self, i: int) -> pl.DataFrame:
        """Batch ``i`` as the build staged it for the select step (``_work/stage1/part-i.parquet``)."""
        files = sorted((self.work / "gather" / f"b{i:06d}").glob("*.parquet"))
        lang_order = pl.DataFrame({"lang": list(self.cfg.langs), "_lang_i": list(range(len(self.cfg.langs)))})
        batch = (
            pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")
            .join(lang_order, on="lang", how="left")
            .sort("_seq", "_lang_i")
            .drop("_lang_i")
        )
        old_reason = batch["drop_reason"]
        batch = batch.with_columns(
            pl.when(pl.col("drop_reason").is_in(DEDUP_REASONS)).then(pl.col("drop_reason")).alias("dup_kind"),
            pl.when(pl.col("drop_reason") == "translation_failed").then(pl.col("drop_detail")).alias("translate_error"),
        )
        # the build's row reasons: rows they dropped never reached the gate
        # the build's row reasons and the new ones: rows they drop never reach the gate
        scored = batch["verify_p"].is_not_null()
        gated = self.old_select.row_rules(batch)["drop_reason"].is_null() & scored
        gated_new = self.new_select.row_rules(batch)["drop_reason"].is_null() & scored
        batch = batch.with_columns(
            gated.alias("_gated"),
            gated_new.alias("_gated_new"),
            old_reason.alias("_old_reason"),
            batch["drop_detail"].alias("_old_detail"),
        ).drop("drop_reason", "drop_detail")
        if self.verified:
            batch = self._gate_inputs(batch)
        else:
            batch = batch.with_columns(*(pl.lit(None, dtype=FEATURE_DTYPES[c]).alias(c) for c in EXTRA_COLUMNS))
        return batch.drop("_gated", "_gated_new", "_old_reason", "_old_detail")

    def _gate_inputs(self, batch: pl.DataFrame) -> pl.DataFrame:
        """Add :data:`EXTRA_COLUMNS` to the scored target rows: text-derived inputs recomputed, ``prefix_gain``
        null, ``source_gap`` a stand-in that settles the ``misaligned`` rule as the real value would."""
        src = self.cfg.src
        sources = batch.filter(pl.col("lang") == src).select("_seq", *(pl.col(f).alias(f"_src_{f}") for f in self.cfg.fields))
        batch = batch.with_row_index("_row")
        scored = batch.filter(pl.col("verify_p").is_not_null() & (pl.col("lang") != src)).join(sources, on="_seq", how="left")
        pieces: list[pl.DataFrame] = []
        for (lang,), part in scored.group_by("lang", maintain_order=True):
            pieces.append(self._language_inputs(str(lang), part))
        schema = {"_row": pl.UInt32, **{c: FEATURE_DTYPES[c] for c in EXTRA_COLUMNS}, "_verify_p": pl.Float32}
        extra = pl.concat([p.cast(schema) for p in pieces]) if pieces else pl.DataFrame(schema=schema)
        batch = batch.join(extra, on="_row", how="left", maintain_order="left")
        return batch.with_columns(pl.coalesce("_verify_p", "verify_p").alias("verify_p")).drop("_row", "_verify_p")

    def _language_inputs(self, lang: str, part: pl.DataFrame) -> pl.DataFrame:
        langs = [lang] * part.height
        texts = None
        for f in self.cfg.fields:  # the stored scores are the weakest field's: find it by its text scores
            cand = text_features(part[f"_src_{f}"].to_list(), part[f].to_list(), langs, self.cfg.src)
            match = np.isclose(cand["len_log_ratio"], part["len_log_ratio"].cast(pl.Float32).to_numpy(), atol=1e-6) & np.isclose(
                cand["copy_sim"], part["copy_sim"].cast(pl.Float32).to_numpy(), atol=1e-6
            )
            if texts is None:
                texts, found = {k: np.asarray(v).copy() for k, v in cand.items()}, match
            else:
                take = match & ~found
                for k in texts:
                    texts[k][take] = np.asarray(cand[k])[take]
                found = found | match
        assert texts is not None
        if not found.all():
            raise ReselectError(
                f"{int((~found).sum())} {lang} row(s) have stored scores that this version's text scores do not reproduce "
                f"(len_log_ratio, copy_sim): the corpus was built by another corpusalign version; build again"
            )
        feats = part.select(
            "cos",
            "margin",
            "nn_pair",
            "num_agree",
            "placeholder_ok",
            "script_ok",
            "lid_expected",
            "verify_p",
            "len_log_ratio",
            "copy_sim",
        )
        feats = feats.with_columns(
            *(
                pl.Series(c, texts[c], dtype=FEATURE_DTYPES[c])
                for c in (LENGTH_COLUMN, "end_punct_ok", "sent_diff", "src_words", "neutral", "word_log_ratio")
            ),
            pl.lit(None, dtype=pl.Float32).alias("prefix_gain"),
            pl.lit(None, dtype=pl.Float32).alias("source_gap"),
        )
        old, new = _gate(self.old_gates, lang), _gate(self.new_gates, lang)
        verify_p = part["verify_p"]
        if not self.same_model[lang]:
            verify_p = pl.Series(predict_proba(feats.drop("verify_p"), new), dtype=pl.Float32)
        gap = self._source_gap(lang, feats, part, old, new)
        return pl.DataFrame(
            {
                "_row": part["_row"],
                **{c: feats[c] for c in EXTRA_COLUMNS if c != "source_gap"},
                "source_gap": pl.Series(gap, dtype=pl.Float32).fill_nan(None),
                "_verify_p": verify_p.cast(pl.Float32),
            }
        ).select("_row", *EXTRA_COLUMNS, "_verify_p")

    def _source_gap(self, lang: str, feats: pl.DataFrame, part: pl.DataFrame, old: LanguageGate, new: LanguageGate) -> np.ndarray:
        """A ``source_gap`` for each row that the ``misaligned`` rule reads as the real one (NaN where it is not read).

        The rule fires when ``nn_pair`` is false, ``margin < margin_min`` and ``source_gap >= gap_min``. For the
        rows where the new gate would read ``source_gap``, the build's decision of the row tells its side of the
        build's ``gap_min``: it was dropped by the hard rule (``>=``), or passed it with the margin test true (``<``).
        """
        lid_lang, lid_score = part["lid_lang"].to_list(), part["lid_score"].to_list()
        n = part.height
        hard_new = hard_rules(feats, new, lid_lang, lang, lid_score)
        earlier_new = np.zeros(n, dtype=bool)
        for reason in HARD_REASONS[: HARD_REASONS.index("misaligned")]:
            earlier_new |= hard_new[reason]
        need = hard_new["misaligned"] & ~earlier_new & part["_gated_new"].to_numpy()  # NaN source_gap: the margin test alone
        gap = np.full(n, np.nan)
        if not need.any():
            return gap
        reason = np.array(part["_old_reason"].to_list(), dtype=object)
        detail = part["_old_detail"].fill_null("").to_list()
        soft = np.array([d.startswith("p=") for d in detail])
        gated = part["_gated"].to_numpy()
        gate_reason = np.isin(reason, REASONS)
        hard_misaligned = gated & (reason == "misaligned") & ~soft
        passed = gated & (~gate_reason | soft)  # kept by the gate, or dropped for its probability alone
        margin_test_old = hard_rules(feats, old, lid_lang, lang, lid_score)["misaligned"]
        g_old, g_new = rule_values(feats, old, "gap_min"), rule_values(feats, new, "gap_min")
        at_least = hard_misaligned & (g_new <= g_old)  # source_gap >= g_old >= g_new
        below = passed & margin_test_old & (g_new >= g_old)  # source_gap < g_old <= g_new
        unknown = need & ~at_least & ~below
        if unknown.any():
            raise ReselectError(
                f"{int(unknown.sum())} {lang} row(s) would be judged by the misaligned rule on source_gap, which needs the "
                "embedder and is not stored, and the build's decision does not settle them (a changed gap_min or margin_min, "
                "or rows the build dropped before the gate); keep those rules, or build again (corpusalign build --overwrite)"
            )
        gap[need & at_least] = g_new[need & at_least]
        gap[need & below] = g_new[need & below] - 1.0
        return gap


def _gate(gates: Mapping[str, LanguageGate], lang: str) -> LanguageGate:
    from corpusalign.steps.verify import gate_for

    try:
        return gate_for(dict(gates), lang)
    except KeyError as exc:
        raise ReselectError(str(exc.args[0])) from None


class _ReselectRunner(Runner):
    """The build's stages 3 and 4 and its manifest, on batches staged from a finished corpus."""

    def __init__(
        self, corpus: Path, manifest: dict[str, Any], cfg: BuildConfig, output: Path, *, keep_work: bool, progress: bool
    ) -> None:
        self.source = corpus
        self.source_manifest = manifest
        plan = Plan(
            cfg,
            [Path(p) for p in manifest.get("inputs", [])],
            output,
            [],
            [AttachDuplicatesStep(pl.DataFrame(schema=DUPLICATES_SCHEMA)), SelectStep(cfg)],
        )
        super().__init__(plan, keep_work=keep_work, progress=progress)

    def _make_fingerprint(self) -> str:
        parts = ["reselect", self.source_manifest.get("build_fingerprint"), self.cfg.to_dict(), SCHEMA_VERSION]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _manifest_extra(self) -> dict[str, Any]:
        m = self.source_manifest
        return {
            "reselected_from": {
                "corpus": str(self.source.resolve()),
                "digest": m.get("digest"),
                "build_fingerprint": m.get("build_fingerprint"),
            }
        }

    def _translation_summary(self, drop_reasons: dict[str, dict[str, int]]) -> tuple[dict[str, Any], dict[str, int]]:
        translation = dict(self.source_manifest.get("translation") or {})
        translation["failed"] = sum(drop_reasons.get("translation_failed", {}).values())
        return dict(self.source_manifest.get("translators") or {}), translation

    def _verification_summary(self) -> dict[str, Any] | None:
        built = self.source_manifest.get("verification")
        if not built:
            return None
        gates = self.cfg.verify.language_gates()
        return {
            "embedder": built.get("embedder"),
            "model": built.get("model"),
            "gates": {lang: g.to_dict() for lang, g in sorted(gates.items())},
        }

    def reselect(self) -> BuildResult:
        start = time.perf_counter()
        with output_lock(self.out):
            for d in (SHARD_DIR, REJECTED_DIR, QUARANTINE_DIR, WORK):
                shutil.rmtree(self.out / d, ignore_errors=True)
            for f in (mf.MANIFEST, mf.STATS, "report.html", "report.json"):
                (self.out / f).unlink(missing_ok=True)
            prep = _Reselector(self.source, self.source_manifest, self.cfg, self.work)
            with self.progress.task("read scores", unit="batches", total=1) as bar:
                records, n_batches, n_items = prep.plan_batches()
                prep.gather(records)
                bar.advance(1)
            with self.progress.task("stage batches", unit="batches", total=n_batches) as bar:
                for i in range(n_batches):
                    staged = prep.stage(i).drop("dup_of", "dup_kind").to_arrow()
                    write_parquet(staged, self.work / "stage1" / f"part-{i:06d}.parquet", staged.schema)
                    bar.advance(1)
            shutil.rmtree(self.work / "gather", ignore_errors=True)
            self._write_duplicates(records)
            for path in prep.files("quarantine"):
                (self.out / QUARANTINE_DIR).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, self.out / QUARANTINE_DIR / path.name)
            self.stats = self._earlier_stats()
            rows = sum(e["rows"] for e in self.source_manifest.get("shards", [])) + sum(
                e["rows"] for e in self.source_manifest.get("rejected", [])
            )
            write_json({"buckets": bucket_count(rows, self.cfg.shards)}, self.work / "buckets.json")
            with make_executor(ExecutorOptions()) as executor:
                n_buckets, n_files = self._stage3(executor, n_batches)
                shards = self._stage4(executor, n_files, n_buckets)
            manifest = self._finish(n_batches, n_items, shards, time.perf_counter() - start)
        return BuildResult(self.out, manifest, time.perf_counter() - start, resumed=False)

    def _write_duplicates(self, records: pl.DataFrame) -> None:
        """``_work/duplicates.parquet`` as stage 2 found it: from the dedup reasons and ``dup_of`` of the rows."""
        found = []
        for path in [mf.entry_path(self.source, e["path"]) for e in self.source_manifest.get("rejected", [])]:
            t = pl.read_parquet(path, columns=[*_KEY, "drop_reason", "dup_of"]).filter(pl.col("drop_reason").is_in(DEDUP_REASONS))
            found.append(t)
        dups = (
            pl.concat(found)
            if found
            else pl.DataFrame(schema={**dict.fromkeys(_KEY, pl.String), "drop_reason": pl.String, "dup_of": pl.String})
        )
        dups = (
            dups.with_columns(pl.col("source_line").cast(pl.Int64))
            .join(records, on=list(_KEY), how="inner")
            .group_by("_seq")
            .agg(pl.col("dup_of").drop_nulls().first(), pl.col("drop_reason").first().alias("dup_kind"))
            .sort("_seq")
            .select(pl.col("_seq").cast(pl.UInt64), pl.col("dup_of").cast(pl.String), pl.col("dup_kind").cast(pl.String))
        )
        table = dups.to_arrow()
        write_parquet(table, self.work / "duplicates.parquet", table.schema)

    def _earlier_stats(self) -> RunStats:
        """The build's statistics of the steps before select (select and shard writing are counted anew)."""
        path = self.source / mf.STATS
        steps = json.loads(path.read_text()).get("steps", {}) if path.exists() else {}
        return RunStats.from_dict({k: v for k, v in steps.items() if k not in ("attach_duplicates", "select", "write_shards")})


def reselect(
    corpus: str | Path,
    output: str | Path,
    pipeline: str | Path | None = None,
    *,
    thresholds: Mapping[str, float] | None = None,
    overwrite: bool = False,
    keep_work: bool = False,
    progress: bool = False,
    **overrides: Any,
) -> BuildResult:
    """Write to ``output`` the corpus a build with the new configuration would write, from ``corpus``'s stored scores.

    ``pipeline``: a pipeline file (default: the build's own configuration); ``overrides``: settings on top of
    it (``select__min_languages=3``); ``thresholds``: ``{lang: p}``, one probability threshold for every length
    domain of the language's gate. No embedder, translator or dedup runs (see the module docstring for what is
    re-decided from what). Raises :class:`ReselectError` when the change needs them, and :class:`BuildError`
    for an unsound corpus or an occupied ``output``.
    """
    corpus, output = Path(corpus), Path(output)
    from corpusalign.store.validate import validate

    problems = validate(corpus)
    if problems:
        raise BuildError(
            f"{corpus} is not a sound corpus ({len(problems)} problem(s), first: {problems[0]}); run corpusalign validate"
        )
    if output.resolve() == corpus.resolve() or output.resolve().is_relative_to(corpus.resolve()):
        raise BuildError(f"the output {output} must be outside the corpus {corpus}")
    if not overwrite and any((output / d).exists() for d in (mf.MANIFEST, SHARD_DIR, REJECTED_DIR, QUARANTINE_DIR)):
        raise BuildError(f"{output} already holds a corpus; pass overwrite (--overwrite) to replace it or pick another output")
    manifest = mf.read_manifest(corpus)
    cfg = resolve_config(manifest, pipeline, overrides, thresholds)
    return _ReselectRunner(corpus, manifest, cfg, output, keep_work=keep_work, progress=progress).reselect()


__all__ = ["ReselectError", "reselect", "resolve_config"]
