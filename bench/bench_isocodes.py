"""Good short strings kept, on translations the gates never saw: Debian's iso-codes catalogs.

The iso-codes package translates ISO names (countries, languages, currencies, scripts) through
gettext, by its own translators, independently of the Unicode CLDR that corpusalign calibrates on.
Every pair here is a human translation, so the only question is how many the gate keeps: the
headline problem of short strings (1-6 words), where the previous gates kept about half of the
Swahili ones. Each catalogue and language is its own margin pool, scored like a build (language ID
of the langid step, the verify scores, the select step's language-ID rule, the gate), with the
shipped gates and with the previous gates, in one run.

    apt-get download iso-codes && dpkg-deb -x iso-codes_*.deb /tmp/iso-codes   # or: apt-get install iso-codes
    python bench/bench_isocodes.py --root /tmp/iso-codes/usr/share/locale

Per catalogue and language, at most ``--limit`` names (the first ones of the catalogue).
"""

from __future__ import annotations

import argparse
import gettext
import json
import sys
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_quality import PREVIOUS_GATES, CachingEmbedder, gate_keep, language_id  # noqa: E402

CATALOGS = ("iso_3166-1", "iso_639-2", "iso_4217", "iso_15924")
LANGS = ("de", "ja", "sw")


def load_pairs(root: Path, limit: int) -> pl.DataFrame:
    rows = []
    for catalog in CATALOGS:
        for lang in LANGS:
            path = root / lang / "LC_MESSAGES" / f"{catalog}.mo"
            if not path.is_file():
                continue
            with open(path, "rb") as f:
                entries = gettext.GNUTranslations(f)._catalog  # noqa: SLF001 - the msgid -> msgstr table
            pairs = [(str(k), str(v)) for k, v in entries.items() if isinstance(k, str) and k and v and "\x00" not in k]
            for i, (src, tgt) in enumerate(pairs[:limit]):
                rows.append({"concept_id": f"{catalog}.{i}", "catalog": catalog, "lang": lang, "src_text": src, "tgt_text": tgt})
    if not rows:
        raise SystemExit(f"no iso-codes catalogs under {root}: see the module docstring")
    return pl.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=Path("/usr/share/locale"), help="locale folder of iso-codes")
    ap.add_argument("--limit", type=int, default=600, help="names per catalogue and language at most (default 600)")
    ap.add_argument("--embedder", default="e5")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "isocodes.json")
    args = ap.parse_args(argv)

    from corpusalign.embed import make_embedder
    from corpusalign.verify.calibrate import score_pairs
    from corpusalign.verify.gate import DEFAULT_GATES, load_gates
    from corpusalign.verify.scores import domain_of

    pairs = load_pairs(args.root, args.limit)
    pairs = pairs.with_columns(pl.col("src_text").map_elements(domain_of, return_dtype=pl.String).alias("domain"))
    lid = language_id(pairs["tgt_text"].to_list(), pairs["lang"].to_list())
    embedder = CachingEmbedder(make_embedder(args.embedder))
    feats = score_pairs(pl.concat([pairs, lid], how="horizontal"), embedder, margin_k=4, pool="catalog", src="en")
    methods = {"shipped gates": dict(DEFAULT_GATES), "previous gates": load_gates(str(PREVIOUS_GATES))}
    keeps = {name: gate_keep(feats, gates) for name, gates in methods.items()}
    table = []
    for (catalog, lang), part in feats.with_row_index("_i").group_by("catalog", "lang", maintain_order=True):
        idx = part["_i"].to_numpy()
        row = {"catalog": catalog, "lang": lang, "pairs": len(idx), "short": int((part["domain"] == "short").sum())}
        for name, (keep, _) in keeps.items():
            row[name] = round(float(keep[idx].mean()), 4)
        reasons = [keeps["shipped gates"][1][i] for i in idx if keeps["shipped gates"][1][i]]
        row["shipped: top reasons dropped"] = dict(
            pl.Series(reasons, dtype=pl.String).value_counts(sort=True).head(3).iter_rows()
        )
        table.append(row)
    totals = {}
    for lang in LANGS:
        rows = [r for r in table if r["lang"] == lang]
        n = sum(r["pairs"] for r in rows)
        if n:
            totals[lang] = {name: round(sum(r[name] * r["pairs"] for r in rows) / n, 4) for name in methods} | {"pairs": n}
    print(f"\n{'catalog':<12}{'lang':<6}{'pairs':>6}{'short':>7}{'shipped':>10}{'previous':>10}  shipped: top reasons dropped")
    for r in table:
        print(
            f"{r['catalog']:<12}{r['lang']:<6}{r['pairs']:>6}{r['short']:>7}"
            f"{r['shipped gates']:>10.1%}{r['previous gates']:>10.1%}  {r['shipped: top reasons dropped']}"
        )
    print(
        "\nall catalogues:",
        ", ".join(
            f"{lang}: shipped {t['shipped gates']:.1%}, previous {t['previous gates']:.1%} of {t['pairs']}"
            for lang, t in totals.items()
        ),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": "python bench/bench_isocodes.py " + " ".join(sys.argv[1:] if argv is None else argv),
                "embedder": embedder.describe(),
                "table": table,
                "totals": totals,
            },
            indent=1,
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
