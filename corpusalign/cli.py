"""Command-line interface: a thin layer over :mod:`corpusalign.runner` and :mod:`corpusalign.store`.

Commands: ``build``, ``reselect``, ``export``, ``report``, ``card``, ``inspect``, ``validate``, ``calibrate``, ``align``,
``train``, ``eval``. Each has
``--help``; the README lists them all.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from corpusalign._version import __version__
from corpusalign.resolve import sample_dir

if TYPE_CHECKING:
    import polars as pl

#: Flags of the whole program that are also accepted after the command (``corpusalign build -v``).
GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet")


class _Group(TyperGroup):
    """The command group: ``-v``/``-q`` may come before or after the command.

    Click reads a group's options only before the command name, so ``corpusalign build -v`` would
    be an unknown option of ``build``. A global flag after the command is moved in front of it,
    unless the command has an option of that name itself (``build -q`` stays ``build``'s own
    ``--quiet``, which the global one also switches on). Nothing after ``--`` is moved.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        at = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
        command = self.commands.get(args[at]) if at is not None else None
        if command is not None:
            own = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
            end = args.index("--") if "--" in args[at:] else len(args)
            moved = [a for a in args[at + 1 : end] if a in GLOBAL_FLAGS and a not in own]
            if moved:
                rest = [a for a in args[at + 1 : end] if a not in moved]
                args = [*moved, *args[:at], args[at], *rest, *args[end:]]
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="corpusalign",
    cls=_Group,
    help="Build verified, concept-aligned multilingual corpora (Parquet shards keyed by concept_id).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"corpusalign {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log details to stderr (before or after the command).")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars or summaries (before or after the command).")
    ] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _QUIET[0] = quiet


#: The global ``--quiet`` of this invocation (set by :func:`main` on every run).
_QUIET = [False]


def _quiet(own: bool) -> bool:
    """A command's ``--quiet``, or the global one."""
    return own or _QUIET[0]


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@app.command()
def build(
    src: Annotated[str | None, typer.Option(help="Source (anchor) language, ISO 639-1. \\[default: en]")] = None,
    tgt: Annotated[str | None, typer.Option(help="Target languages, comma-separated. \\[default: de,ja,sw]")] = None,
    input: Annotated[
        list[Path] | None,
        typer.Option(
            "--input",
            "-i",
            help="Input file or directory (JSONL, CSV/TSV, Parquet, TMX, HF dataset). Repeatable. \\[default: bundled sample]",
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory for shards and manifest.")] = Path("corpus"),
    translator: Annotated[
        str | None,
        typer.Option(
            help="Translator for missing targets: tm (import existing translations), seq2seq (NLLB/M2M100/Marian), "
            "causal (instruct LLM) or openai (an OpenAI-compatible server). \\[default: tm]"
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Translation model: a Hugging Face id, a local directory, or the served model name for openai."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="Device for transformers translators: auto, cpu, cuda, cuda:N.")] = None,
    cache: Annotated[bool, typer.Option(help="Use the persistent translation cache (--no-cache bypasses it).")] = True,
    memory: Annotated[
        list[Path] | None,
        typer.Option("--memory", "-m", help="Translation memory for the tm translator (TMX, TSV/CSV, JSONL). Repeatable."),
    ] = None,
    fields: Annotated[
        str | None, typer.Option(help="Text fields, comma-separated: text | prompt,response | prompt,chosen,rejected.")
    ] = None,
    columns: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN=LANG,...",
            help="Read input columns as languages, e.g. English=en,German=de (CSV/TSV, Parquet, JSONL keys).",
        ),
    ] = None,
    pipeline: Annotated[
        Path | None, typer.Option("--pipeline", "-p", help="Pipeline parameter file (YAML), e.g. pipelines/default.yaml.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Input records per batch.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing corpus in --output.")] = False,
    keep_work: Annotated[bool, typer.Option(help="Keep the working files (_work/) after a successful build.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved plan and exit.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary.")] = False,
    report: Annotated[bool, typer.Option(help="Write report.json and report.html beside the shards.")] = True,
    executor: Annotated[
        str, typer.Option(help="Where batches run: local (this process) or ray (Ray Data; extra 'ray'). Same output either way.")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray: connect to this cluster (auto, ray://head:10001) instead of starting one.")
    ] = None,
    num_cpus: Annotated[
        int | None, typer.Option(help="Ray: CPUs of the local Ray instance started here. \\[default: all]")
    ] = None,
    model_workers: Annotated[int, typer.Option(help="Ray: actors per model stage (translation, embedding).")] = 1,
    gpus_per_worker: Annotated[float, typer.Option(help="Ray: GPUs each model actor asks for (0: CPU).")] = 0.0,
) -> None:
    """Build a corpus: read -> translate -> normalise -> language-ID -> dedup -> verify -> select -> shards -> report.

    Re-running an interrupted build with the same arguments resumes it (with either executor).
    """
    quiet = _quiet(quiet)
    from corpusalign.config import ConfigError, parse_columns
    from corpusalign.execute import ExecutorOptions
    from corpusalign.extras import MissingExtraError
    from corpusalign.resolve import build_config, build_inputs
    from corpusalign.runner import BuildError, Runner, make_plan
    from corpusalign.translate.base import TranslatorUnavailable

    try:
        cfg = build_config(
            pipeline,
            src=src,
            tgt=_split(tgt),
            fields=_split(fields),
            batch_size=batch_size,
            translate__translator=translator,
            translate__model=model,
            translate__device=device,
            translate__cache=None if cache else False,
            translate__memory=[str(m) for m in memory] if memory else None,
            columns=parse_columns(columns) if columns is not None else None,
        )
    except (ConfigError, OSError) as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        where = ExecutorOptions(
            name=executor,
            address=ray_address,
            num_cpus=num_cpus,
            model_workers=model_workers,
            gpus_per_worker=gpus_per_worker,
        )
    except ValueError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    inputs = build_inputs(input)
    if not input and not quiet:
        err.print(
            f"No --input given: building the bundled sample in {sample_dir()} "
            "(UDHR en/de/ja/sw, Tatoeba en/de/ja, CLDR names en/de/ja/sw; "
            "existing human translations imported by the tm translator)."
        )
    try:
        plan = make_plan(cfg, inputs, output)
    except (BuildError, ValueError, TranslatorUnavailable, MissingExtraError) as exc:
        err.print(f"[red]cannot build:[/red] {exc}")
        raise typer.Exit(2) from None
    if dry_run:
        console.print(plan.describe(), highlight=False, markup=False)
        console.print(f"  executor: {where.describe()}", highlight=False, markup=False)
        return
    try:
        result = Runner(plan, overwrite=overwrite, keep_work=keep_work, progress=not quiet, executor=where).run()
    except BuildError as exc:
        err.print(f"[red]build failed:[/red] {exc}")
        raise typer.Exit(1) from None
    except (TranslatorUnavailable, MissingExtraError) as exc:
        err.print(f"[red]cannot build:[/red] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted.[/yellow] Run the same command again to resume the build in {output}.")
        raise typer.Exit(130) from None
    _report_and_summary(result, report=report, quiet=quiet, seconds=None if result.up_to_date else result.seconds)
    if _report_lost_files(result.manifest, result.output):
        raise typer.Exit(1)


def _report_and_summary(result, *, report: bool, quiet: bool, seconds: float | None) -> None:
    """After a build or a reselect: report.json and report.html (unless ``report`` is off; a failure is
    a warning, the corpus is written), then the summary (unless ``quiet``)."""
    from corpusalign.resolve import write_build_report

    report_path = None
    if report:
        try:
            report_path = write_build_report(result)
        except Exception as exc:  # the corpus is written; a report failure must not hide that
            err.print(f"[yellow]corpus written, but the report failed:[/yellow] {exc}. Try: corpusalign report {result.output}")
    if not quiet:
        from corpusalign.summary import print_build_summary

        print_build_summary(result.manifest, result.output, seconds, console)
        if report_path:
            console.print(f"report: {report_path}")


def _report_lost_files(manifest: dict, output: Path) -> bool:
    """Say on stderr which input files had every record quarantined, with their first reasons as
    file:line; True when there is one (the build then exits 1, its corpus and accounting written)."""
    from corpusalign.store.quarantine import fully_quarantined_files

    lost = fully_quarantined_files(manifest, output)
    for name, reasons in lost.items():
        err.print(f"[red]every record of {name} was quarantined[/red]; first reasons:", highlight=False)
        for line, error in reasons:
            err.print(f"  {name}:{line} {error}", highlight=False, markup=False, soft_wrap=True)
    if lost:
        err.print(
            f"the corpus in {output} was written without them; every quarantined record is in {output / 'quarantine'}",
            highlight=False,
        )
    return bool(lost)


def _other_languages(paths: list[Path], src: str, tgt: list[str]) -> list[str]:
    """The language columns of the parallel dev records other than ``src`` and ``tgt`` (known language
    tags holding text: Tatoeba's ``fr`` and ``es``), in the order first seen."""
    from corpusalign.langtags import is_known
    from corpusalign.read.formats import read_all

    seen: dict[str, None] = {}
    skip = {src, *tgt, "concept_id", "id"}  # an "id" key is a record id far more often than Indonesian text
    for item in read_all(paths):
        rec = item.record
        if rec is None or {"lang", "src_text", "tgt_text"} <= rec.keys():
            continue
        for key, value in rec.items():
            if key not in seen and key not in skip and isinstance(value, str) and value.strip() and is_known(key):
                seen[key] = None
    return list(seen)


def _donor_languages(option: str | None, paths: list[Path], src: str, tgt: list[str]) -> list[str]:
    """The languages of ``--wrong-language-from`` besides ``src`` and ``tgt``: the ones named, none for
    ``none``, and without the option every other language column of the dev records (:func:`_other_languages`)."""
    if option is None:
        named = _other_languages(paths, src, tgt)
    else:
        named = [] if option.strip().lower() == "none" else _split(option) or []
    return [lang for lang in named if lang not in tgt and lang != src]


def _read_dev_pairs(paths: list[Path], src: str, tgt: list[str]):
    """Dev pairs from parallel records ({concept_id, en, de, ...}) or labelled pairs
    ({concept_id, lang, src_text, tgt_text, label[, kind]}), each with the name of its file (``dataset``)."""
    import polars as pl

    from corpusalign.read.formats import read_all
    from corpusalign.verify.corrupt import PAIR_SCHEMA

    rows: list[dict] = []
    for item in read_all(paths):
        rec = item.record
        if rec is None:
            continue
        dataset = Path(item.source_file).name
        if {"lang", "src_text", "tgt_text"} <= rec.keys():
            keys = ("concept_id", "lang", "src_text", "tgt_text", "label", "kind")
            rows.append({**{k: rec.get(k) for k in keys}, "dataset": dataset})
            continue
        source = rec.get(src)
        if not isinstance(source, str) or not source.strip():
            continue
        for lang in tgt:
            target = rec.get(lang)
            if isinstance(target, str) and target.strip():
                cid = str(rec.get("concept_id", f"{item.source_file}:{item.line}"))
                row = {"concept_id": cid, "lang": lang, "src_text": source, "tgt_text": target, "label": None, "kind": None}
                rows.append({**row, "dataset": dataset})
    pairs = pl.DataFrame(rows, schema={**PAIR_SCHEMA, "dataset": pl.String})
    if pairs["label"].null_count() == pairs.height:
        pairs = pairs.drop("label", "kind")
    return pairs


@app.command()
def calibrate(
    dev: Annotated[
        list[Path] | None,
        typer.Option("--dev", "-d", help="Dev set: parallel records or labelled pairs. Repeatable. \\[default: bundled sample]"),
    ] = None,
    src: Annotated[str, typer.Option(help="Source language.")] = "en",
    tgt: Annotated[str, typer.Option(help="Target languages, comma-separated.")] = "de,ja,sw",
    embedder: Annotated[str, typer.Option(help="Embedder: e5, e5-native, e5-torch or st:<model>.")] = "e5",
    unlabelled: Annotated[
        bool, typer.Option("--unlabelled", help="No labels and no generated corruptions: thresholds from score distributions.")
    ] = False,
    recall_target: Annotated[
        str,
        typer.Option(
            metavar="<float|none>",
            help="Share of good pairs each language and length domain keeps out of fold (a domain with too few dev "
            "pairs for a threshold of its own keeps 99%); 'none': the fault-bound rule of --max-kept instead.",
        ),
    ] = "0.97",
    target_precision: Annotated[
        float | None,
        typer.Option(help="Instead of --recall-target: thresholds that reach this precision (then the fault-kind bound)."),
    ] = None,
    max_kept: Annotated[
        str,
        typer.Option(
            metavar="<float|none>",
            help="Fault-bound rule: kept-rate target per fault kind ('none': thresholds for F1 only).",
        ),
    ] = "0.03",
    max_recall_loss: Annotated[
        float, typer.Option(help="Fault-bound rule: the most good-pair recall the kept-rate target may cost.")
    ] = 0.05,
    kept_confidence: Annotated[
        str,
        typer.Option(
            metavar="<float|none>",
            help="Fault-bound rule: confidence of the upper bound of each kind's kept rate that must stay under --max-kept "
            "('none': the point estimate and the earlier fewest-kinds rule).",
        ),
    ] = "0.95",
    wrong_language_from: Annotated[
        str | None,
        typer.Option(
            help="Languages (comma-separated) whose texts in the dev records may also fill generated wrong_language "
            "faults, besides --tgt; 'none' for none. \\[default: every other language column of the dev records]"
        ),
    ] = None,
    gates_json: Annotated[
        Path | None,
        typer.Option(help="Also write the gates, metrics and provenance as JSON (the format of gates_e5_small.json)."),
    ] = None,
    pipeline: Annotated[
        Path | None, typer.Option("--pipeline", "-p", help="Base pipeline file to copy the other parameters from.")
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Pipeline file to write, with the calibrated verify.gates.")
    ] = Path("pipelines/calibrated.yaml"),
    seed: Annotated[int, typer.Option(help="Seed for generated corruptions and the split.")] = 0,
    doubtful_out: Annotated[
        Path | None,
        typer.Option(
            help="Write every dev pair labelled good that the calibrated gates still drop, by a hard rule or with p < 0.01, "
            "to this JSONL file (the command prints the first 10): references to check."
        ),
    ] = None,
) -> None:
    """Fit the verification gate per language on a dev set and write it into a pipeline file.

    With good pairs only, corruptions (misaligned, untranslated, wrong language, truncated, ...) are
    generated from them to learn from; labelled pairs are used as given. Each language gets weights,
    hard-rule settings and a threshold per length domain (short strings, sentences, paragraphs); the
    thresholds keep --recall-target of the good pairs of each language and domain. Prints the held-out
    precision and recall per language that the gate is expected to reach. With --recall-target none
    (or --target-precision) each language gets one threshold by the fault-bound rule instead:
    F1-optimal, then raised until every fault kind's kept rate is provably under --max-kept, for at
    most --max-recall-loss of recall.
    """
    import datetime
    import sys

    import polars as pl
    from rich.table import Table

    from corpusalign.embed import make_embedder
    from corpusalign.verify.calibrate import calibrate as run_calibrate
    from corpusalign.verify.calibrate import cell_rows, write_gates_json, write_pipeline

    def optional_float(name: str, text: str) -> float | None:
        if text.strip().lower() in ("none", "off", ""):
            return None
        try:
            return float(text)
        except ValueError:
            err.print(f"[red]{name} must be a number or 'none', got {text!r}[/red]")
            raise typer.Exit(2) from None

    recall = optional_float("--recall-target", recall_target)
    kept_max = optional_float("--max-kept", max_kept)
    confidence = optional_float("--kept-confidence", kept_confidence)
    from corpusalign.config import ConfigError, _check_lang

    try:  # BCP-47 tags in canonical case, as a build writes them (pt-br -> pt-BR)
        src = _check_lang(src, "--src")
        langs = [_check_lang(lang, "--tgt") for lang in _split(tgt) or []]
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]", highlight=False)
        raise typer.Exit(2) from None
    paths = list(dev) if dev else [sample_dir()]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        err.print(f"[red]dev set not found: {', '.join(missing)}[/red]", highlight=False)
        raise typer.Exit(2)
    if pipeline is not None:  # read before the calibration runs: a bad file would fail only after it
        from corpusalign.config import read_parameter_file

        try:
            read_parameter_file(pipeline, {})
        except ConfigError as exc:
            err.print(f"[red]configuration error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
    if doubtful_out is not None and doubtful_out.is_dir():  # found before the calibration, not after it
        err.print(f"[red]--doubtful-out is a directory: {doubtful_out} (give a file path)[/red]", highlight=False)
        raise typer.Exit(2)
    pairs = _read_dev_pairs(paths, src, langs)
    if pairs.height == 0:
        err.print("[red]the dev set holds no usable pairs[/red]")
        raise typer.Exit(2)
    if unlabelled and "label" in pairs.columns:
        pairs = pairs.drop("label", "kind")
    if recall is not None and not 0.5 <= recall < 1.0:
        err.print(f"[red]--recall-target must be in [0.5, 1) or 'none', got {recall_target}[/red]")
        raise typer.Exit(2)
    synthetic = not unlabelled and "label" not in pairs.columns  # corruptions are generated, wrong_language among them
    if wrong_language_from is not None and not synthetic:  # nothing to fill: say so rather than ignore the option
        why = "--unlabelled generates no faults" if unlabelled else "the dev set holds labelled pairs, no faults are generated"
        err.print(f"[red]--wrong-language-from applies to generated faults only: {why}[/red]", highlight=False)
        raise typer.Exit(2)
    extra = _donor_languages(wrong_language_from, paths, src, langs) if synthetic else []
    if extra:  # texts that only fill wrong_language faults
        more = _read_dev_pairs(paths, src, extra).filter(pl.col("lang").is_in(extra))
        absent = sorted(set(extra) - set(more["lang"].unique().to_list()))
        if wrong_language_from is not None and absent:  # a language the user named that the dev records lack
            err.print(f"[red]--wrong-language-from: no text in the dev records for {', '.join(absent)}[/red]", highlight=False)
            raise typer.Exit(2)
        if more.height:
            wide = more.unique(["concept_id", "lang"], keep="first", maintain_order=True)
            wide = wide.pivot(on="lang", index="concept_id", values="tgt_text")
            pairs = pairs.join(wide, on="concept_id", how="left", maintain_order="left")
    model = make_embedder(embedder)
    result = run_calibrate(
        pairs,
        model,
        src,
        target_precision=target_precision,
        recall_target=None if target_precision is not None else recall,
        seed=seed,
        labels=not unlabelled,
        max_kept=kept_max,
        max_recall_loss=max_recall_loss,
        kept_confidence=confidence,
    )
    write_pipeline(result, output, base_pipeline=pipeline, embedder=embedder)
    if gates_json is not None:
        provenance = {
            "command": "corpusalign " + " ".join(sys.argv[1:]),
            "data": [path.name for path in paths],
            "src": src,
            "tgt": langs,
            "date": datetime.date.today().isoformat(),
            "embedder": model.describe(),
            "corpusalign_version": __version__,
        }
        write_gates_json(result, gates_json, provenance)
    table = Table(title=f"calibrated gates ({embedder}) -> {output}", title_justify="left")
    for col in ("language", "threshold", "precision", "recall"):
        table.add_column(col, justify="left" if col == "language" else "right")
    for lang, gate in sorted(result.gates.items()):
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        table.add_row(lang, f"{gate.threshold:.3f}", fmt(gate.precision), fmt(gate.recall))
    console.print(table)
    cells = cell_rows(result.metrics)
    if cells:  # where the gate cuts: good pairs kept per domain of each language, on the held-out concepts
        held = Table(title="held-out concepts, per domain and language", title_justify="left")
        for col in ("cell", "good pairs", "good kept", "faulty pairs", "faulty kept"):
            held.add_column(col, justify="left" if col == "cell" else "right")
        share = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
        for name, n_good, good_kept, n_bad, bad_kept in cells:
            held.add_row(name, str(n_good), share(good_kept), str(n_bad), share(bad_kept))
        console.print(held)
    _print_doubtful(result.doubtful, doubtful_out)


def _print_doubtful(doubtful: pl.DataFrame | None, path: Path | None, show: int = 10) -> None:
    """The dev pairs labelled good that the calibrated gates drop by a hard rule or with p < ``DOUBT_P``
    (surest first): the first ``show`` printed, all of them written to ``path`` (JSONL) when given."""
    from corpusalign.verify.calibrate import DOUBT_P

    if doubtful is None:
        return
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        doubtful.write_ndjson(path)
    if doubtful.height == 0:
        console.print(
            f"no dev pair labelled good is dropped by a hard rule or with p < {DOUBT_P} by the calibrated gates", soft_wrap=True
        )
        return
    where = f" (all in {path})" if path is not None else " (--doubtful-out FILE lists them all)"
    console.print(
        f"{doubtful.height} dev pairs labelled good are dropped by a hard rule or with p < {DOUBT_P} by the calibrated "
        f"gates, even after learning from them: check these references{where}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    cut = lambda text: text if len(text) <= 60 else text[:59] + "…"  # noqa: E731
    for row in doubtful.head(show).iter_rows(named=True):
        console.print(
            f"  {row['lang']} {row['concept_id']}: {row['reason']} (p {row['verify_p']:.1e}) "
            f"{cut(row['src_text'])!r} -> {cut(row['tgt_text'])!r}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@app.command()
def align(
    source: Annotated[Path, typer.Option("--source", help="Source-language file: one segment per line (or JSONL/TSV).")],
    target: Annotated[list[str], typer.Option("--target", "-t", help="LANG=PATH of a target-language file. Repeatable.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Aligned JSONL, ready for corpusalign build.")],
    src: Annotated[str, typer.Option(help="Source language.")] = "en",
    embedder: Annotated[str, typer.Option(help="Embedder: e5, e5-native, e5-torch or st:<model>.")] = "e5",
    window: Annotated[int | None, typer.Option(help="Only match lines at most this far from the diagonal.")] = None,
    min_margin: Annotated[float | None, typer.Option(help="Least ratio margin of a kept match. \\[default: 1.0]")] = None,
    drop_unmatched: Annotated[bool, typer.Option(help="Leave out source lines that matched no target line.")] = False,
) -> None:
    """Recover concept tuples from parallel files whose lines are shifted, missing or extra.

    Lines are matched by embedding similarity with margin scoring, each target language against the
    source (the pivot); the output is parallel JSONL that ``corpusalign build`` reads.
    """
    from corpusalign.read.align import align_command

    targets: dict[str, Path] = {}
    for spec in target:
        lang, sep, path = spec.partition("=")
        if not sep or not lang or not path:
            err.print(f"[red]--target expects LANG=PATH, got {spec!r}[/red]")
            raise typer.Exit(2)
        targets[lang.strip()] = Path(path)
    missing = [str(p) for p in [source, *targets.values()] if not p.exists()]
    if missing:
        err.print(f"[red]not found: {', '.join(missing)}[/red]")
        raise typer.Exit(2)
    extra = {"min_margin": min_margin} if min_margin is not None else {}
    summary = align_command(
        source, targets, output, embedder_spec=embedder, src_lang=src, window=window, keep_unmatched=not drop_unmatched, **extra
    )
    console.print_json(data=summary)


@app.command()
def report(
    corpus: Annotated[list[Path], typer.Argument(help="A built corpus directory; give two to compare builds (A B).")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write (default: the corpus directory; for A B, the current directory)."),
    ] = None,
    fail_under: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE: exit 1 when metric NAME of report.json is below VALUE. Repeatable.")
    ] = None,
    fail_over: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE: exit 1 when metric NAME of report.json is above VALUE. Repeatable.")
    ] = None,
) -> None:
    """Write report.html and report.json from a build's artefacts (never re-runs the pipeline).

    Metric names for --fail-under/--fail-over: kept_ratio, concept_kept_ratio, complete_ratio,
    kept_ratio.<lang>, drop_rate.<reason>, lid_agreement.<lang>, verify_p.median.<lang>, ...
    (the "metrics" of report.json).
    """
    from corpusalign.report import write_report
    from corpusalign.report.checks import CheckError, evaluate, parse
    from corpusalign.report.compare import write_compare

    if len(corpus) not in (1, 2):
        err.print("[red]give one corpus directory, or two to compare[/red]")
        raise typer.Exit(2)
    try:
        checks = parse(fail_under or [], "under") + parse(fail_over or [], "over")
        if len(corpus) == 2:
            if checks:
                raise CheckError("--fail-under/--fail-over apply to one corpus, not to a comparison")
            cmp, json_path, html_path = write_compare(corpus[0], corpus[1], output or Path("."))
            console.print(f"compared {corpus[0]} (A) with {corpus[1]} (B): {html_path}  {json_path}")
            return
        rep, json_path, html_path = write_report(corpus[0], output)
        passed, failed = evaluate(checks, rep["metrics"])
    except (FileNotFoundError, CheckError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    h = rep["headline"]
    console.print(
        f"{corpus[0]}: {h['concepts_kept']:,} of {h['concepts_in']:,} concepts kept, {h['concepts_complete']:,} with every "
        f"language; rows kept {h['kept_rows']:,} ({100 * h['kept_ratio']:.1f}%)"
    )
    console.print(f"report: {html_path}  {json_path}")
    for line in passed:
        console.print(f"[green]✓[/green] {line}", highlight=False)
    for line in failed:
        err.print(f"[red]✗[/red] {line}", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command()
def card(
    corpus: Annotated[Path, typer.Argument(help="A built corpus directory.")],
    meta: Annotated[
        Path | None,
        typer.Option(help="Card file (YAML) with sources, licences and limitations. \\[default: card.yaml beside the inputs]"),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Card name: data_cards/NAME.md. \\[default: the corpus directory name]")
    ] = None,
    cards_dir: Annotated[Path, typer.Option(help="Folder for the copy of the card.")] = Path("data_cards"),
) -> None:
    """Write a Hugging Face dataset card: CORPUS/README.md and data_cards/NAME.md."""
    from corpusalign.report.card import CardError, write_card

    try:
        _, paths = write_card(corpus, meta_path=meta, name=name, cards_dir=cards_dir)
    except (FileNotFoundError, CardError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print("card: " + "  ".join(str(p) for p in paths))


@app.command()
def inspect(
    corpus: Annotated[Path, typer.Argument(help="A built corpus directory.")],
    samples: Annotated[int, typer.Option(help="Sample concepts to show side by side.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed for picking samples.")] = 0,
) -> None:
    """Summarise a corpus: counts per language, drop reasons, and sample concepts side by side."""
    from corpusalign.store.manifest import read_manifest
    from corpusalign.summary import print_build_summary, print_samples

    try:
        manifest = read_manifest(corpus)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    print_build_summary(manifest, corpus, None, console)
    print_samples(manifest, corpus, samples, seed, console)


@app.command()
def validate(corpus: Annotated[Path, typer.Argument(help="A built corpus directory.")]) -> None:
    """Check schema, checksums, shard completeness and accounting; exit 1 on any problem."""
    from corpusalign.store.validate import validate as run_validate

    problems = run_validate(corpus)
    if problems:
        for p in problems:
            err.print(f"[red]✗[/red] {p}", highlight=False)
        err.print(f"[red]{len(problems)} problem(s) in {corpus}[/red]")
        raise typer.Exit(1)
    console.print(f"[green]✓[/green] {corpus}: schema, checksums, shard completeness and accounting all hold")


@app.command()
def reselect(
    corpus: Annotated[Path, typer.Argument(help="A finished corpus directory (built with build).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the new corpus.")],
    pipeline: Annotated[
        Path | None,
        typer.Option(
            "--pipeline", "-p", help="Pipeline file with the new select options or gates. \\[default: the build's configuration]"
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE on top of the pipeline, e.g. select.min_languages=3 (YAML value). Repeatable."),
    ] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold",
            help="LANG=P: one verify_p threshold for every length domain of LANG's gate ('*': the fallback). Repeatable.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a corpus already in --output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or summary.")] = False,
    report: Annotated[bool, typer.Option(help="Write report.json and report.html beside the shards.")] = True,
) -> None:
    """Apply new select options, gates or thresholds to a finished build from its stored scores, into a new corpus.

    No translator, embedder or dedup runs: rows dropped as duplicates, missing or failed translations
    stay dropped; the select options, the verification gate and the concept rules are decided again.
    The gate reads the stored scores and verify_p plus the inputs its texts determine; prefix_gain
    and source_gap need the embedder and are not stored, so a gate with new weights for them, or a
    misaligned-rule change the build's own decisions do not settle, is refused (exit 2): build again.
    Only select.*, shards.* and verify.gates may differ from the build's configuration.
    """
    quiet = _quiet(quiet)
    import yaml

    from corpusalign.config import ConfigError
    from corpusalign.reselect import ReselectError
    from corpusalign.reselect import reselect as run_reselect
    from corpusalign.runner import BuildError

    overrides: dict[str, object] = {}
    thresholds: dict[str, float] = {}
    try:
        for item in set_ or []:
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
            overrides[key.strip()] = yaml.safe_load(value)
        for item in threshold or []:
            lang, eq, value = item.partition("=")
            if not eq:
                raise ConfigError(f"--threshold {item!r}: expected LANG=P")
            thresholds[lang.strip()] = float(value)
        result = run_reselect(
            corpus, output, pipeline, thresholds=thresholds, overwrite=overwrite, progress=not quiet, **overrides
        )
    except (ConfigError, ReselectError, ValueError, OSError) as exc:
        err.print(f"[red]cannot reselect:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except BuildError as exc:
        err.print(f"[red]cannot reselect:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    _report_and_summary(result, report=report, quiet=quiet, seconds=result.seconds)


def _quiet_transformers() -> None:
    """transformers' own loading/saving bars would interleave with ours."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


@app.command()
def train(
    shards: Annotated[Path, typer.Option("--shards", "-s", help="A corpus built by `corpusalign build`.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output directory: checkpoints, logs, summary.")] = Path("run"),
    model: Annotated[
        str | None,
        typer.Option(
            help="Causal LM: hub id in the local cache, local directory, .gguf file, or smollm2 (bundled). \\[default: smollm2]"
        ),
    ] = None,
    objective: Annotated[
        str | None, typer.Option(help="sft | dpo | orpo | dco (cross-lingual consistency; aligned batches). \\[default: sft]")
    ] = None,
    langs: Annotated[str | None, typer.Option(help="Languages, comma-separated. \\[default: the corpus's]")] = None,
    sampler: Annotated[
        str | None,
        typer.Option(
            help="aligned | no-anchor (aligned, without the anchor language) | random | homogeneous (ablation baselines). "
            "\\[default: aligned]"
        ),
    ] = None,
    concepts_per_batch: Annotated[
        int | None, typer.Option("--concepts-per-batch", "-k", help="Concepts per batch. \\[default: 4]")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Optimizer steps. \\[default: 100]")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate. \\[default: 2e-5]")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Batches per optimizer step. \\[default: 1]")] = None,
    consistency: Annotated[str | None, typer.Option(help="Cross-lingual consistency term: none | kl | contrastive.")] = None,
    lora: Annotated[bool | None, typer.Option("--lora/--no-lora", help="Train LoRA adapters (extra lora).")] = None,
    precision: Annotated[str | None, typer.Option(help="auto | bf16 | fp16 | fp32.")] = None,
    weights: Annotated[
        str | None, typer.Option(help="fp32 (master weights, autocast per --precision) | bf16 (bf16 weights). \\[default: fp32]")
    ] = None,
    compile_model: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model. \\[default: no-compile]")
    ] = None,
    pack: Annotated[
        bool | None,
        typer.Option("--pack/--no-pack", help="Pack a batch's rows into rows of max_length tokens. \\[default: no-pack]"),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda (accelerate launch decides under torchrun).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of sampling, initialisation and dropout. \\[default: 0]")] = None,
    params: Annotated[
        Path | None, typer.Option("--params", "-p", help="Training parameter file (YAML), e.g. pipelines/train-sft.yaml.")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the newest checkpoint in --output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Fine-tune a causal LM on a corpus with concept-aligned batches (SFT, DPO, ORPO or DCO).

    Trains on the corpus's train split (held-out concepts are never seen). Under
    `accelerate launch` or `torchrun` it runs data-parallel with whole concepts per rank.
    """
    quiet = _quiet(quiet)
    from corpusalign.config import ConfigError
    from corpusalign.extras import MissingExtraError
    from corpusalign.training.config import load_train_config
    from corpusalign.training.data import CorruptCorpusError
    from corpusalign.training.models import ModelUnavailable

    try:
        cfg = load_train_config(
            params,
            model=model,
            objective=objective,
            langs=_split(langs),
            sampler=sampler,
            concepts_per_batch=concepts_per_batch,
            steps=steps,
            lr=lr,
            grad_accum=grad_accum,
            consistency=consistency,
            precision=precision,
            weights=weights,
            compile=compile_model,
            pack=pack,
            device=device,
            seed=seed,
            lora__enabled=lora,
        )
    except (ConfigError, OSError) as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    _quiet_transformers()
    try:
        from corpusalign.training.loop import train as run_train

        result = run_train(cfg, shards, output, resume=resume, progress=not quiet)
    except (CorruptCorpusError, ModelUnavailable, MissingExtraError, ValueError, FileNotFoundError) as exc:
        err.print(f"[red]cannot train:[/red] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print(
            f"[yellow]interrupted.[/yellow] `corpusalign train ... --resume` continues from the newest checkpoint in {output}."
        )
        raise typer.Exit(130) from None
    if not quiet:
        losses = " ".join(f"{lg}={v:.3f}" for lg, v in result.loss_by_lang.items())
        console.print(
            f"trained {result.steps - result.resumed_from} steps ({result.resumed_from} -> {result.steps}) "
            f"in {result.seconds:.1f} s, "
            f"{result.tokens_per_s:.0f} tokens/s; loss {result.first_loss:.4f} -> {result.last_loss:.4f}; per language: {losses}",
            highlight=False,
        )
        console.print(f"model: {result.checkpoint}")


@app.command(name="eval")
def eval_(
    model: Annotated[str, typer.Option(help="A `corpusalign train` output or checkpoint, a local model, a hub id, or smollm2.")],
    shards: Annotated[Path, typer.Option("--shards", "-s", help="A corpus built by `corpusalign build`.")],
    langs: Annotated[
        str | None, typer.Option(help="Languages, comma-separated. \\[default: training's, else the corpus's]")
    ] = None,
    num_choices: Annotated[int, typer.Option(help="Candidates per question (chance = 1/N).")] = 4,
    max_concepts: Annotated[int | None, typer.Option(help="Evaluate at most this many held-out concepts.")] = None,
    eval_fraction: Annotated[
        float | None, typer.Option(help="Held-out share of concepts. \\[default: training's, else 0.1]")
    ] = None,
    split: Annotated[str, typer.Option(help="eval (held-out concepts) | all.")] = "eval",
    batch_size: Annotated[int, typer.Option(help="Sequences per forward pass.")] = 32,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the distractor draw.")] = 0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON here.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Per-language multiple-choice accuracy, the English gap, cross-lingual consistency and retrieval
    on held-out concepts (the task and split of the model's training run when it has one)."""
    quiet = _quiet(quiet)
    import json

    from corpusalign.extras import MissingExtraError
    from corpusalign.training.data import CorruptCorpusError
    from corpusalign.training.evaluate import evaluate_model, format_table
    from corpusalign.training.models import ModelUnavailable

    _quiet_transformers()
    try:
        result = evaluate_model(
            model,
            shards,
            langs=_split(langs),
            num_choices=num_choices,
            max_concepts=max_concepts,
            eval_fraction=eval_fraction,
            split=split,
            batch_size=batch_size,
            device=device,
            seed=seed,
            progress=not quiet,
        )
    except (CorruptCorpusError, ModelUnavailable, MissingExtraError, ValueError, FileNotFoundError) as exc:
        err.print(f"[red]cannot evaluate:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(format_table(result), highlight=False, markup=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        console.print(f"results: {json_out}")


@app.command(name="export")
def export_command(
    corpus: Annotated[Path, typer.Argument(help="A built corpus directory.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="hf-translation, jsonl or tmx (docs/export.md).")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The output file; for hf-translation with --pairs anchor, a directory."),
    ],
    field: Annotated[
        str | None, typer.Option(help="Text field to export (prompt, response, ...); needed for a corpus of several.")
    ] = None,
    pairs: Annotated[
        str | None,
        typer.Option(help="hf-translation: anchor (one SRC-TGT.jsonl per target language) or all (one line per concept)."),
    ] = None,
    layout: Annotated[
        str | None, typer.Option(help="jsonl: concepts (one line per concept) or rows (one line per row, every column).")
    ] = None,
    validate: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Run corpusalign validate's checks first (hashes every file).")
    ] = True,
) -> None:
    """Export the kept rows: Hugging Face translation JSONL, plain JSONL or TMX 1.4, streamed shard by shard.

    Exit 2 for an unknown format, an option that does not fit or a directory that holds no corpus;
    exit 1 for a corpus that fails validation.
    """
    from corpusalign.corpus import Corpus, CorpusValidationError
    from corpusalign.export import FORMATS, ExportCorpusError, ExportError

    if fmt not in FORMATS:
        err.print(f"[red]unknown format {fmt!r}; formats: {', '.join(FORMATS)}[/red]")
        raise typer.Exit(2)
    try:
        result = Corpus(corpus).export(fmt, output, field=field, pairs=pairs, layout=layout, validate=validate)
    except (CorpusValidationError, ExportCorpusError) as exc:
        err.print(f"[red]cannot export, the corpus fails validation:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    except (ExportError, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]cannot export:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    for path, n in result.files.items():
        unit = "units" if fmt == "tmx" else "lines"
        console.print(f"export: {path} ({n:,} {unit})", highlight=False)
    if not result.files:
        console.print(f"export: nothing to write ({result.concepts:,} concepts, none with a translation)", highlight=False)
    if result.replaced_chars:
        err.print(f"[yellow]{result.replaced_chars:,} character(s) XML cannot hold written as U+FFFD[/yellow]")


if __name__ == "__main__":  # pragma: no cover (every command is registered above)
    app()
