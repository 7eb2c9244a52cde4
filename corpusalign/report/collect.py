"""Collect a build's numbers into ``report.json``, from its artefacts only.

Inputs: ``manifest.json``, ``stats.json``, the shards, the ``rejected/`` set and the
``quarantine/`` set of a finished build. Nothing is re-run: every number is counted from rows the
build wrote, or copied from the manifest and the step statistics.

The result is a plain dict (see :data:`REPORT_VERSION` and docs/report.md for every key). Its
``metrics`` are a flat ``name -> number`` mapping meant for CI gates
(``corpusalign report DIR --fail-under kept_ratio=0.8``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from corpusalign.langtags import lid_label, tag_fallbacks
from corpusalign.store.manifest import (
    NOT_IN_INPUT_REASONS,
    STATS,
    entry_path,
    language_warnings,
    read_manifest,
    rows_not_in_input,
)
from corpusalign.verify.scores import DOMAINS, SENTENCE_MAX_WORDS, SHORT_MAX_WORDS

#: Bumped when a key of report.json changes meaning or disappears (adding keys does not bump it).
REPORT_VERSION = 2  # 2: rejected_rows leaves out rows never in the input (not_in_input_rows)

#: Verification scores shown per language, with fixed histogram edges (values outside are counted
#: in the end bins), so that histograms of two builds line up bin for bin.
SCORE_EDGES: dict[str, list[float]] = {
    "verify_p": [round(i * 0.05, 2) for i in range(21)],
    "cos": [round(0.5 + i * 0.025, 3) for i in range(21)],
    "margin": [round(0.8 + i * 0.03, 2) for i in range(21)],
    "len_log_ratio": [round(-2.0 + i * 0.2, 1) for i in range(21)],
    "lid_expected": [round(i * 0.05, 2) for i in range(21)],
    "copy_sim": [round(i * 0.05, 2) for i in range(21)],
    "script_ok": [round(i * 0.05, 2) for i in range(21)],
    "num_agree": [round(i * 0.05, 2) for i in range(21)],
}

#: What each score means, for the report's captions.
SCORE_HELP: dict[str, str] = {
    "verify_p": "gate probability that the pair is a faithful translation",
    "cos": "cosine of source and target embeddings",
    "margin": "ratio margin among the batch's pairs (> 1: the pair stands out)",
    "len_log_ratio": "log(target length / source length), a Han character counting three",
    "lid_expected": "language-ID probability of the row's own language",
    "copy_sim": "character 3-gram overlap with the source (1.0: untranslated copy)",
    "script_ok": "share of letters in the language's scripts",
    "num_agree": "agreement of numbers between source and target",
}

#: Hard-rule names of the gate whose threshold is drawn on a score's histogram.
_RULE_OF_SCORE = {"margin": "margin_min", "copy_sim": "copy_sim_max", "script_ok": "script_min", "num_agree": "num_min"}

#: Pairs per language in the length plot.
LENGTH_SAMPLE = 1500

#: Examples shown per drop reason.
EXAMPLES_PER_REASON = 3

_DUPLICATE_REASONS = ("duplicate", "near_duplicate")

#: What each length domain (:data:`~corpusalign.verify.scores.DOMAINS`) covers, for the report's captions.
DOMAIN_HELP: dict[str, str] = {
    "short": f"source of at most {SHORT_MAX_WORDS} words",
    "sentence": f"source of {SHORT_MAX_WORDS + 1} to {SENTENCE_MAX_WORDS} words",
    "paragraph": f"source of more than {SENTENCE_MAX_WORDS} words",
}


def _ratio(a: float, b: float) -> float:
    return round(a / b, 6) if b else 0.0


def _files(root: Path, entries: list[dict[str, Any]]) -> list[str]:
    return [str(entry_path(root, e.get("path"))) for e in entries]  # refuses paths outside the corpus


def _scan(root: Path, entries: list[dict[str, Any]], columns: list[str | pl.Expr]) -> pl.DataFrame:
    """The named columns of the Parquet files listed in ``entries`` (an empty frame when none)."""
    paths = _files(root, entries)
    if not paths:
        return pl.DataFrame()
    return pl.scan_parquet(paths).select(columns).collect(engine="streaming")


def _histogram(values: np.ndarray, edges: list[float]) -> list[int]:
    values = values[~np.isnan(values)]
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=np.asarray(edges))
    return [int(c) for c in counts]


def _quantiles(values: np.ndarray) -> dict[str, float] | None:
    values = values[~np.isnan(values)]
    if not values.size:
        return None
    q = np.quantile(values, [0.05, 0.5, 0.95])
    return {"p05": round(float(q[0]), 4), "median": round(float(q[1]), 4), "p95": round(float(q[2]), 4)}


def _thresholds(manifest: dict[str, Any], lang: str) -> dict[str, float]:
    """Where the gate of ``lang`` cuts each score (the ``*`` gate when the language has none)."""
    verification = manifest.get("verification") or {}
    gates = verification.get("gates") or {}
    gate = next((gates[t] for t in tag_fallbacks(lang) if t in gates), None) or gates.get("*")  # pt-BR: pt, else *
    if not gate:
        return {}
    from corpusalign.verify.gate import DEFAULT_RULES

    rules = {**DEFAULT_RULES, **(gate.get("rules") or {})}
    out = {"verify_p": float(gate["threshold"])}
    for score, rule in _RULE_OF_SCORE.items():
        out[score] = float(rules[rule])
    return out


def _text(row: dict[str, Any], fields: list[str]) -> str | None:
    parts = [(f, row.get(f)) for f in fields if row.get(f) is not None]
    if not parts:
        return None
    if len(fields) == 1:
        return parts[0][1]
    return "\n".join(f"[{f}] {v}" for f, v in parts)


def collect(root: str | Path) -> dict[str, Any]:
    """All numbers of the build in ``root`` as a report dict (see the module docstring).

    Phases: read the manifest and stats, scan the shards once (kept rows without their texts), then
    one function per report section.
    """
    root = Path(root)
    manifest = read_manifest(root)
    stats_path = root / STATS
    stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.exists() else {"steps": {}}
    langs: list[str] = manifest["languages"]
    src: str = manifest["source_language"]
    targets = [lang for lang in langs if lang != src]
    fields: list[str] = manifest.get("fields", ["text"])

    score_cols = [c for c in SCORE_EDGES if c != "lid_expected"]
    base_cols = ["concept_id", "lang", "origin", "translator", "lid_lang", "lid_expected", *score_cols]
    # kept rows without their texts (their lengths only): the texts of a large corpus need not fit in memory
    kept = _scan(root, manifest["shards"], [*base_cols, _chars(fields).alias("_chars")])
    rejected = _scan(
        root, manifest["rejected"], [*base_cols, *fields, _chars(fields).alias("_chars"), "dup_of", "drop_reason", "drop_detail"]
    )
    quarantine = _scan(root, manifest["quarantine"], ["source_file", "source_line", "error"])

    headline, per_language, drop_reasons = _headline(manifest)
    report = {
        "report_version": REPORT_VERSION,
        "corpus": str(root.resolve()),
        "corpusalign_version": manifest.get("corpusalign_version"),
        "schema_version": manifest.get("schema_version"),
        "created": manifest.get("created"),
        "build_fingerprint": manifest.get("build_fingerprint"),
        "manifest_digest": manifest.get("digest"),
        "source_language": src,
        "languages": langs,
        "fields": fields,
        "verification": _verification_summary(manifest),
        "headline": headline,
        "per_language": per_language,
        "drop_reasons": drop_reasons,
        "kept_by_domain": _kept_by_domain(stats, targets),
        "completeness": _completeness(kept, langs),
        "scores": _score_histograms(kept, rejected, manifest, src, targets, langs),
        "lengths": _length_sample(kept, rejected, src, targets, fields),
        "language_id": _language_id(kept, langs),
        "provenance": {lang: dict(manifest["counts"].get("provenance_per_lang", {}).get(lang, {})) for lang in langs},
        "translators": manifest.get("translators", {}),
        "translation": manifest.get("translation"),
        "duplicates": _duplicate_clusters(rejected, src),
        "timings": _timings(stats),
        "examples": _examples(root, manifest["shards"], rejected, quarantine, src, fields),
        "warnings": language_warnings(manifest),  # e.g. "fr: 0 of 20 rows kept (top reason missing_target 20)"
    }
    report["metrics"] = metrics(report)
    return report


def _headline(manifest: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(headline, per_language, drop_reasons)``: the build's totals, kept and dropped rows per
    language, and each drop reason's rows and rate (quarantined rows as a reason of their own)."""
    acct, counts, langs = manifest["accounting"], manifest["counts"], manifest["languages"]
    absent = rows_not_in_input(manifest)
    input_rows = acct["input_rows"]
    concepts_in = acct["input_records"] - acct["quarantined_rows"]
    per_language: dict[str, Any] = {}
    for lang in langs:
        k = counts["rows_per_lang"].get(lang, 0)
        r = {
            reason: by_lang[lang]
            for reason, by_lang in manifest.get("drop_reasons", {}).items()
            if lang in by_lang and reason not in NOT_IN_INPUT_REASONS
        }
        per_language[lang] = {
            "input_rows": concepts_in,
            "kept_rows": k,
            "rejected_rows": sum(r.values()),
            "not_in_input_rows": absent[lang],
            "kept_ratio": _ratio(k, concepts_in),
            "drop_reasons": dict(sorted(r.items(), key=lambda kv: -kv[1])),
        }
    drop_reasons: dict[str, Any] = {}
    for reason, by_lang in sorted(manifest.get("drop_reasons", {}).items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(by_lang.values())
        drop_reasons[reason] = {"rows": n, "rate": _ratio(n, input_rows), "per_language": dict(by_lang)}
    if acct["quarantined_rows"]:
        drop_reasons["quarantined"] = {
            "rows": acct["quarantined_rows"],
            "rate": _ratio(acct["quarantined_rows"], input_rows),
            "per_language": {},
        }
    headline = {
        "input_records": acct["input_records"],
        "input_rows": input_rows,
        "concepts_in": concepts_in,
        "concepts_kept": counts["concepts"],
        "concepts_complete": counts["complete_concepts"],
        "kept_rows": acct["kept_rows"],
        "rejected_rows": acct["rejected_rows"] - sum(absent.values()),
        "not_in_input_rows": sum(absent.values()),
        "quarantined_rows": acct["quarantined_rows"],
        "kept_ratio": _ratio(acct["kept_rows"], input_rows),
        "concept_kept_ratio": _ratio(counts["concepts"], concepts_in),
        "complete_ratio": _ratio(counts["complete_concepts"], concepts_in),
        "accounting_ok": bool(acct["ok"]),
        "shards": len(manifest["shards"]),
    }
    return headline, per_language, drop_reasons


def _completeness(kept: pl.DataFrame, langs: list[str]) -> dict[str, Any]:
    """Concepts per combination of languages kept, and per language."""
    completeness: dict[str, Any] = {"languages": langs, "patterns": []}
    if kept.height:
        patterns = (
            kept.group_by("concept_id")
            .agg(pl.col("lang").unique().sort().alias("langs"))
            .with_columns(pl.col("langs").list.join(",").alias("key"))
            .group_by("key")
            .agg(pl.len().alias("concepts"))
            .sort(["concepts", "key"], descending=[True, False])
        )
        for key, n in patterns.iter_rows():
            present = key.split(",")
            completeness["patterns"].append({"languages": [lang for lang in langs if lang in present], "concepts": int(n)})
    completeness["concepts_per_language"] = {
        lang: int(kept.filter(pl.col("lang") == lang)["concept_id"].n_unique()) if kept.height else 0 for lang in langs
    }
    return completeness


def _score_histograms(
    kept: pl.DataFrame, rejected: pl.DataFrame, manifest: dict[str, Any], src: str, targets: list[str], langs: list[str]
) -> dict[str, Any]:
    """Histograms of each score per target language (``lid_expected``: every language), kept and
    rejected rows apart, with the kept rows' quantiles and the threshold the build applied."""
    scores: dict[str, Any] = {}
    for score, edges in SCORE_EDGES.items():
        per: dict[str, Any] = {}
        for lang in targets if score != "lid_expected" else langs:
            k = kept.filter(pl.col("lang") == lang)[score].cast(pl.Float64).to_numpy() if kept.height else np.array([])
            r = rejected.filter(pl.col("lang") == lang)[score].cast(pl.Float64).to_numpy() if rejected.height else np.array([])
            k, r = np.asarray(k, dtype=np.float64), np.asarray(r, dtype=np.float64)
            if not (np.isfinite(k).any() or np.isfinite(r).any()):
                continue
            per[lang] = {
                "kept": _histogram(k, edges),
                "rejected": _histogram(r, edges),
                "kept_quantiles": _quantiles(k),
                "threshold": _thresholds(manifest, lang).get(score) if lang != src else None,
            }
        if per:
            scores[score] = {"edges": edges, "help": SCORE_HELP[score], "per_language": per}
    return scores


def _language_id(kept: pl.DataFrame, langs: list[str]) -> dict[str, Any]:
    """Per language: kept rows language ID identified, and how many of them it put in their own language."""
    lid: dict[str, Any] = {}
    for lang in langs:
        rows = kept.filter(pl.col("lang") == lang) if kept.height else kept
        identified = rows.filter(pl.col("lid_lang").is_not_null()).height if rows.height else 0
        agree = rows.filter(pl.col("lid_lang") == lid_label(lang)).height if rows.height else 0  # pt-BR: pt
        lid[lang] = {"identified": identified, "agree": agree, "agreement": _ratio(agree, identified)}
    return lid


def _duplicate_clusters(rejected: pl.DataFrame, src: str) -> dict[str, Any]:
    """Per duplicate reason (exact, near): clusters of source rows, their size histogram and the largest."""
    duplicates: dict[str, Any] = {}
    if not rejected.height:
        return duplicates
    dups = rejected.filter(pl.col("drop_reason").is_in(_DUPLICATE_REASONS) & (pl.col("lang") == src))
    for reason in _DUPLICATE_REASONS:
        sizes = (
            dups.filter(pl.col("drop_reason") == reason)
            .group_by("dup_of")
            .agg((pl.len() + 1).alias("size"))
            .group_by("size")
            .agg(pl.len().alias("clusters"))
            .sort("size")
        )
        if sizes.height:
            duplicates[reason] = {
                "clusters": int(sizes["clusters"].sum()),
                "concepts_dropped": int(dups.filter(pl.col("drop_reason") == reason).height),
                "size_histogram": {str(s): int(c) for s, c in sizes.iter_rows()},
                "largest": int(sizes["size"].max()),
            }
    return duplicates


def _timings(stats: dict[str, Any]) -> dict[str, Any]:
    """The build's wall time and each step's seconds, rows and rows per second."""
    steps = {
        name: {
            "seconds": round(float(s.get("seconds") or 0.0), 4),
            "rows": int(s.get("rows", 0)),
            "rows_per_s": float(s.get("rows_per_s") or 0.0),
        }
        for name, s in stats.get("steps", {}).items()
    }
    return {"build_seconds": stats.get("build_seconds"), "steps": steps}


def _kept_by_domain(stats: dict[str, Any], targets: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Target rows kept per language and length domain of the source, from the select step's
    ``domain.<lang>.<domain>.kept`` / ``.dropped`` counters: ``{lang: {domain: {kept, total, share}}}``
    (``share`` null for no rows). Empty when the statistics hold no such counter (a build made before
    they were counted, or one without a target row to count)."""
    counters = ((stats.get("steps") or {}).get("select") or {}).get("counters") or {}
    found: dict[tuple[str, str], dict[str, int]] = {}
    for name, n in counters.items():
        if not name.startswith("domain."):
            continue
        parts = name[len("domain.") :].rsplit(".", 2)  # a language code may hold a dot; a domain never does
        if len(parts) == 3 and parts[1] in DOMAINS and parts[2] in ("kept", "dropped"):
            lang, domain, outcome = parts
            found.setdefault((lang, domain), {"kept": 0, "dropped": 0})[outcome] += int(n)
    if not found:
        return {}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for lang in targets:
        out[lang] = {}
        for domain in DOMAINS:
            c = found.get((lang, domain), {"kept": 0, "dropped": 0})
            total = c["kept"] + c["dropped"]
            out[lang][domain] = {"kept": c["kept"], "total": total, "share": _ratio(c["kept"], total) if total else None}
    return out


def domain_cell(c: dict[str, Any]) -> str:
    """A cell of the kept-per-domain table (one ``kept_by_domain[lang][domain]``): ``"37.0% (37/100)"``,
    or ``"-"`` when there are no rows."""
    return f"{100 * c['share']:.1f}% ({c['kept']:,}/{c['total']:,})" if c["total"] else "-"


def _chars(fields: list[str]) -> pl.Expr:
    return pl.sum_horizontal([pl.col(f).str.len_chars().fill_null(0) for f in fields])


def _length_sample(kept: pl.DataFrame, rejected: pl.DataFrame, src: str, targets: list[str], fields: list[str]) -> dict[str, Any]:
    """Source vs target length (characters) of up to :data:`LENGTH_SAMPLE` pairs per language."""
    frames = [
        f.select("concept_id", "lang", pl.col("_chars").alias("chars"), pl.lit(flag).alias("kept"))
        for f, flag in ((kept, True), (rejected, False))
        if f.height
    ]
    if not frames:
        return {}
    rows = pl.concat(frames).filter(pl.col("chars") > 0)
    source = rows.filter(pl.col("lang") == src).unique("concept_id", keep="first").select("concept_id", src_chars="chars")
    pairs = rows.filter(pl.col("lang") != src).join(source, on="concept_id")
    out: dict[str, Any] = {}
    for lang in targets:
        part = pairs.filter(pl.col("lang") == lang)
        if not part.height:
            continue
        sample = part.sample(min(LENGTH_SAMPLE, part.height), seed=0) if part.height > LENGTH_SAMPLE else part
        out[lang] = {
            "pairs": part.height,
            "src_chars": sample["src_chars"].to_list(),
            "tgt_chars": sample["chars"].to_list(),
            "kept": sample["kept"].to_list(),
        }
    return out


def _verification_summary(manifest: dict[str, Any]) -> dict[str, Any] | None:
    v = manifest.get("verification")
    if not v:
        return None
    gates = v.get("gates") or {}
    return {
        "embedder": v.get("embedder"),
        "model": v.get("model"),
        "thresholds": {lang: round(float(g["threshold"]), 4) for lang, g in gates.items()},
        "calibrated_precision": {lang: g.get("precision") for lang, g in gates.items()},
        "calibrated_recall": {lang: g.get("recall") for lang, g in gates.items()},
    }


def _examples(
    root: Path,
    shards: list[dict[str, Any]],
    rejected: pl.DataFrame,
    quarantine: pl.DataFrame,
    src: str,
    fields: list[str],
) -> dict[str, list[dict[str, Any]]]:
    """A few rejected rows per drop reason, each next to its concept's source text."""
    out: dict[str, list[dict[str, Any]]] = {}
    if rejected.height:
        # distinct concepts per reason, in a stable pseudo-random order; a target row over the source row
        picked = (
            rejected.with_columns(pl.col("concept_id").hash(seed=0).alias("_order"), (pl.col("lang") == src).alias("_is_src"))
            .sort(["_order", "_is_src", "lang"])
            .unique(["drop_reason", "concept_id"], keep="first", maintain_order=True)
            .group_by("drop_reason", maintain_order=True)
            .head(EXAMPLES_PER_REASON)
        )
        ids = picked["concept_id"].unique().to_list()
        cols = ["concept_id", "lang", *fields]
        is_source = (pl.col("lang") == src) & pl.col("concept_id").is_in(ids)
        paths = _files(root, shards)
        kept = pl.scan_parquet(paths).filter(is_source).select(cols).collect(engine="streaming") if paths else None
        found = [f for f in (kept, rejected.filter(is_source).select(cols)) if f is not None and f.height]
        sources = pl.concat(found, how="vertical_relaxed").unique("concept_id", keep="first") if found else pl.DataFrame()
        source_text = {row["concept_id"]: _text(row, fields) for row in sources.iter_rows(named=True)}
        for row in picked.sort(["drop_reason", "_order"]).iter_rows(named=True):
            scores = {s: round(float(row[s]), 4) for s in SCORE_EDGES if s in row and row[s] is not None and s != "lid_expected"}
            if row.get("lid_expected") is not None:
                scores["lid_expected"] = round(float(row["lid_expected"]), 4)
            out.setdefault(row["drop_reason"], []).append(
                {
                    "concept_id": row["concept_id"],
                    "lang": row["lang"],
                    "text": _text(row, fields),
                    "source_text": source_text.get(row["concept_id"]) if row["lang"] != src else None,
                    "detail": row["drop_detail"],
                    "lid_lang": row["lid_lang"],
                    "scores": scores,
                }
            )
    if quarantine.height:
        out["quarantined"] = [
            {"source_file": r["source_file"], "source_line": r["source_line"], "error": r["error"]}
            for r in quarantine.head(EXAMPLES_PER_REASON).iter_rows(named=True)
        ]
    return out


def metrics(report: dict[str, Any]) -> dict[str, float]:
    """The flat ``name -> number`` view of a report that ``--fail-under``/``--fail-over`` check.

    Names: ``kept_ratio``, ``concept_kept_ratio``, ``complete_ratio``, ``kept_rows``,
    ``concepts_kept``, ``concepts_complete``, ``quarantined_rows``; ``kept_ratio.<lang>``,
    ``kept_rows.<lang>``; ``drop_rate.<reason>``; ``lid_agreement.<lang>``;
    ``<score>.median.<lang>`` for each verification score.
    """
    h = report["headline"]
    m: dict[str, float] = {
        k: float(h[k])
        for k in (
            "kept_ratio",
            "concept_kept_ratio",
            "complete_ratio",
            "kept_rows",
            "concepts_kept",
            "concepts_complete",
            "quarantined_rows",
        )
    }
    for lang, d in report["per_language"].items():
        m[f"kept_ratio.{lang}"] = float(d["kept_ratio"])
        m[f"kept_rows.{lang}"] = float(d["kept_rows"])
    for reason, d in report["drop_reasons"].items():
        m[f"drop_rate.{reason}"] = float(d["rate"])
    for lang, d in report["language_id"].items():
        m[f"lid_agreement.{lang}"] = float(d["agreement"])
    for score, d in report["scores"].items():
        for lang, s in d["per_language"].items():
            if s["kept_quantiles"]:
                m[f"{score}.median.{lang}"] = float(s["kept_quantiles"]["median"])
    return m
