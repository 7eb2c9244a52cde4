"""The trainer data-parallel in two CPU processes (torchrun, gloo): batches, checkpoint, weights, resume.

The test builds the tiny corpus and model of ``tests/test_train_loop.py`` and launches this file as
the training script with ``python -m torch.distributed.run --standalone --nproc_per_node 2`` twice:

1. a straight run of 3 optimizer steps (2 micro-batches each, so ``no_sync`` is used) and an
   interrupted run of the same configuration (``stop_after=1``) in another output directory;
2. one step with ``device="auto"`` (the default; CUDA is hidden from the processes, so it must mean
   data parallelism over CPU processes, not two independent single-process runs), then the
   interrupted run resumed in these two fresh processes.

Resuming that checkpoint in one process is refused (its sampler position and RNG states are per rank).

In the launched processes (``__main__`` below) ``corpusalign.training.loop.batch_loss`` is wrapped to
record the rows of every micro-batch and the model it was handed, ``save_pretrained`` to record who
wrote which checkpoint; after each run every rank writes its records and its final weights to a file
of its own. Nothing in the package is patched for the test beyond these two wrappers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

LANGS = ("en", "de", "ja")
WORLD = 2
STEPS, GRAD_ACCUM, K = 3, 2, 2
#: Configuration of every run (the straight, the interrupted and the resumed one are the same).
CFG: dict[str, Any] = dict(
    steps=STEPS,
    grad_accum=GRAD_ACCUM,
    concepts_per_batch=K,
    lr=3e-3,
    log_every=1,
    eval_fraction=0.25,
    device="cpu",
)


# --------------------------------------------------------------------------- the launched script
def _worker(spec: dict[str, Any]) -> None:
    """One rank: the runs of ``spec`` in order, each followed by this rank's records and weights."""
    import torch
    from transformers import PreTrainedModel

    import corpusalign.training.loop as loop
    from corpusalign.training.config import load_train_config

    rank = int(os.environ["RANK"])
    records: dict[str, Any] = {"batches": [], "saves": [], "model": None}
    real_loss, real_save = loop.batch_loss, PreTrainedModel.save_pretrained

    def batch_loss(model: Any, batch: dict[str, Any], cfg: Any, ref: Any = None) -> Any:
        records["model"] = model
        records["batches"].append({"rows": batch["row"].tolist(), "groups": batch["group"].tolist()})
        return real_loss(model, batch, cfg, ref)

    def save_pretrained(self: Any, path: Any, *args: Any, **kwargs: Any) -> Any:
        records["saves"].append(str(path))
        return real_save(self, path, *args, **kwargs)

    loop.batch_loss = batch_loss
    PreTrainedModel.save_pretrained = save_pretrained
    logs = Path(spec["logs"])
    for run in spec["runs"]:
        records.update(batches=[], saves=[], model=None)
        cfg = load_train_config(model=spec["model"], **{**CFG, **run.get("cfg", {})})
        result = loop.train(
            cfg, spec["corpus"], run["output"], resume=run["resume"], stop_after=run["stop_after"], progress=False
        )
        model = records["model"]
        report = {
            "rank": rank,
            "wrapped": type(model).__name__,
            "batches": records["batches"],
            "saves": records["saves"],
            "result": result.to_dict(),
        }
        (logs / f"{run['name']}-rank{rank}.json").write_text(json.dumps(report), encoding="utf-8")
        torch.save(getattr(model, "module", model).state_dict(), logs / f"{run['name']}-rank{rank}.pt")


# ------------------------------------------------------------------------------------- the test
def _write_corpus(tmp: Path, records: list[dict[str, Any]], fields: tuple[str, ...] = ("text",)) -> Path:
    """As in tests/test_train_loop.py."""
    from corpusalign.config import load_config
    from corpusalign.runner import build

    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    cfg = load_config(src="en", tgt=("de", "ja"), fields=fields, verify__enabled=False, shards__max_rows=40)
    return Path(build(cfg, [src], tmp / "corpus", progress=False).output)


def _launch(spec: dict[str, Any], tmp: Path, name: str) -> None:
    """This file as the training script of ``WORLD`` CPU processes; fails with their output."""
    spec_path = tmp / f"{name}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU processes with gloo, also on a machine with a GPU
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}", __file__, str(spec_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"{name}: exit {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"


def _rank_files(logs: Path, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import torch

    reports = [json.loads((logs / f"{name}-rank{r}.json").read_text()) for r in range(WORLD)]
    weights = [torch.load(logs / f"{name}-rank{r}.pt", weights_only=True) for r in range(WORLD)]
    return reports, weights


def _latest_name(output: Path) -> str | None:
    from corpusalign.training.loop import latest_checkpoint

    found = latest_checkpoint(output)
    return found.name if found else None


def _log(output: Path) -> tuple[list[int], list[float]]:
    """Steps and losses of ``train_log.jsonl``."""
    entries = [json.loads(line) for line in (output / "train_log.jsonl").read_text().splitlines()]
    return [e["step"] for e in entries], [e["loss"] for e in entries]


def test_two_process_training_splits_concepts_syncs_weights_saves_once_and_resumes(
    tmp_path: Path, tatoeba_rows: list[dict[str, Any]]
) -> None:
    import torch
    from tiny_models import build_causal
    from transformers import AutoModelForCausalLM

    from corpusalign.training.config import load_train_config
    from corpusalign.training.data import ShardDataset
    from corpusalign.training.loop import make_sampler, train
    from corpusalign.training.models import load_causal_lm

    records = [{k: r[k] for k in ("concept_id", *LANGS)} for r in tatoeba_rows[:48] if all(r.get(k) for k in LANGS)]
    corpus = _write_corpus(tmp_path, records)
    model_dir = build_causal(tmp_path / "lm", hidden=64, ffn=128, init_std=0.02, vocab_size=800)
    logs = tmp_path / "logs"
    logs.mkdir()
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = {"model": str(model_dir), "corpus": str(corpus), "logs": str(logs)}
    _launch(
        {
            **common,
            "runs": [
                {"name": "straight", "output": str(straight), "resume": False, "stop_after": None},
                {"name": "first", "output": str(resumed), "resume": False, "stop_after": 1},
            ],
        },
        tmp_path,
        "launch1",
    )

    # ---- batches: the same number on both ranks, disjoint concepts, exactly the sampler's shares
    reports, weights = _rank_files(logs, "straight")
    n_batches = STEPS * GRAD_ACCUM
    assert [len(r["batches"]) for r in reports] == [n_batches] * WORLD
    assert {r["wrapped"] for r in reports} == {"DistributedDataParallel"}
    cfg = load_train_config(model=str(model_dir), **CFG)
    ds = ShardDataset(corpus, split="train", eval_fraction=cfg.eval_fraction)
    held_out = set(range(ds.num_concepts)) - set(ds.row_concept.tolist())
    seen: set[int] = set()
    for i in range(n_batches):
        groups = [set(r["batches"][i]["groups"]) for r in reports]
        assert all(len(g) == K for g in groups)
        assert not groups[0] & groups[1], f"micro-batch {i}: both ranks trained on concepts {groups[0] & groups[1]}"
        assert all(len(r["batches"][i]["rows"]) == K * len(LANGS) for r in reports)
        assert not (groups[0] | groups[1]) & seen  # one epoch: no concept twice over all ranks
        seen |= groups[0] | groups[1]
    assert not seen & held_out
    for rank, report in enumerate(reports):
        expected = list(make_sampler(cfg, ds, num_replicas=WORLD, rank=rank))[:n_batches]
        assert [b["rows"] for b in report["batches"]] == expected
        assert report["result"]["steps"] == STEPS

    # ---- weights: identical on both ranks (DDP), trained, and what the checkpoint holds
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), f"{key} differs between the ranks"
    base = load_causal_lm(model_dir).state_dict()
    assert any(not torch.equal(weights[0][k], base[k]) for k in base)
    ckpt = straight / f"checkpoint-{STEPS:06d}"
    assert sorted(p.name for p in straight.iterdir()) == [ckpt.name, "train_log.jsonl", "train_summary.json"]
    # written once, by rank 0 (into a temporary directory renamed when complete)
    assert reports[0]["saves"] == [str(straight / f".{ckpt.name}.tmp")] and reports[1]["saves"] == []
    assert all(r["result"]["checkpoint"] == str(ckpt) for r in reports)
    saved = AutoModelForCausalLM.from_pretrained(ckpt).state_dict()  # plain transformers: Hugging Face format
    for key, value in saved.items():
        assert torch.equal(value, weights[0][key]), f"checkpoint {key} is not the trained weight"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["num_processes"] == WORLD and state["step"] == STEPS and state["batches_consumed"] == n_batches
    assert len(torch.load(ckpt / "rng.pt", weights_only=False)) == WORLD
    assert _log(straight)[0] == list(range(1, STEPS + 1))  # one log, by rank 0

    # ---- resuming in two fresh processes continues exactly like the straight run
    first, _ = _rank_files(logs, "first")
    assert [len(r["batches"]) for r in first] == [GRAD_ACCUM] * WORLD
    assert _latest_name(resumed) == "checkpoint-000001"
    auto = {
        "name": "auto",
        "output": str(tmp_path / "auto"),
        "resume": False,
        "stop_after": None,
        "cfg": {"device": "auto", "steps": 1},
    }
    second_run = {"name": "second", "output": str(resumed), "resume": True, "stop_after": None}
    _launch({**common, "runs": [auto, second_run]}, tmp_path, "launch2")  # "auto" first: it sets up accelerate

    # ---- device="auto" on a machine without CUDA: still two data-parallel processes
    by_auto, _ = _rank_files(logs, "auto")
    assert {r["wrapped"] for r in by_auto} == {"DistributedDataParallel"}
    assert not set(by_auto[0]["batches"][0]["groups"]) & set(by_auto[1]["batches"][0]["groups"])
    assert by_auto[0]["saves"] and not by_auto[1]["saves"]

    second, after = _rank_files(logs, "second")
    for rank in range(WORLD):
        assert second[rank]["result"]["resumed_from"] == 1 and second[rank]["result"]["steps"] == STEPS
        assert [b["rows"] for b in first[rank]["batches"] + second[rank]["batches"]] == [
            b["rows"] for b in reports[rank]["batches"]
        ]
        for key in weights[0]:
            torch.testing.assert_close(after[rank][key], weights[0][key], rtol=0, atol=1e-6)
    assert second[0]["saves"] == [str(resumed / f".{ckpt.name}.tmp")] and second[1]["saves"] == []
    assert _log(resumed)[0] == _log(straight)[0]
    assert _log(resumed)[1] == pytest.approx(_log(straight)[1], abs=1e-6)

    # ---- a checkpoint of two processes is not resumed by one (its data position is per rank)
    with pytest.raises(ValueError, match="on 1 process.*written by 2"):
        train(
            load_train_config(model=str(model_dir), **{**CFG, "steps": STEPS + 1}), corpus, resumed, resume=True, progress=False
        )


if __name__ == "__main__":  # launched by the test: one rank of the training processes
    _worker(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))
