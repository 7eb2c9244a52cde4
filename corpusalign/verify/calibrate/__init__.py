"""Calibrate verification gates: fit, per target language, the model that turns scores into keep/drop.

Three modes, by what the input pairs carry:

* **labelled** (``pairs`` has a ``label`` column, ``True`` = good pair, and optionally ``kind``):
  the labels are used as they are.
* **synthetic** (no ``label`` column, ``labels=True``): the pairs are taken as good translations and
  :func:`corpusalign.verify.corrupt.make_noisy_set` corrupts half of them (``rounds`` times with
  different seeds for small languages), which gives labelled data with known fault kinds. A third of
  the truncations keep their final punctuation (:data:`~.run.KEEP_PUNCT_SHARE`), so that the gate
  also weighs length and similarity, not only the missing full stop.
* **unlabelled** (``labels=False``, :mod:`.unlabelled`): no labels at all; per language a
  two-component Gaussian mixture on the margin separates a "good" upper component from the rest and
  the gate keeps pairs more likely in the upper component. Precision and recall are then
  *estimated* from the mixture.

In the labelled and synthetic modes the concepts are split once (``heldout_share`` held out). On the
training part, per language:

1. **Hard rules per domain** (:func:`.rules._domain_rules`). Every pair falls into a length domain of
   its source (short string, sentence, paragraph: :data:`~corpusalign.verify.scores.DOMAINS`). For
   each domain with ``MIN_CELL_GOOD`` good pairs, each hard rule takes the strictest of its candidate
   settings (:data:`RULE_CANDIDATES`) that drops at most ``RULE_MAX_GOOD_DROP`` (0.5%) of the
   domain's good pairs: language ID's rule goes off for one-word Swahili labels, the length rule
   relaxes for terse Japanese, and so on. A thinner domain gets ``THIN_DOMAIN_RULES``.
2. **Weights** (:mod:`.fit`): one logistic regression over the pairs that pass the hard rules
   (scikit-learn, standardised inputs, classes balanced within each language): shared weights plus
   deviations that the L2 penalty pulls towards them, one per language with at least ``min_pairs``
   concepts and one per domain with as many (:func:`.fit._fit_joint`). Swahili, with 51 UDHR
   paragraphs and the CLDR names, stays close to the pooled model while German and Japanese fit
   their own.
3. **Thresholds, recall first** (:func:`.thresholds._choose_thresholds`): on 5-fold out-of-fold
   probabilities (folds by concept) of the final keep decision (hard rules included), each
   (language, domain) with ``MIN_THRESHOLD_GOOD`` good pairs gets the highest threshold that keeps
   ``recall_target`` (:data:`RECALL_TARGET`, 97%) of its good pairs: every domain and language keeps
   its data first, and the faults are then as few as that threshold allows. A thinner domain takes
   the lower of the language's own threshold and one that keeps :data:`THIN_DOMAIN_KEEP` (99%) of
   the domain's good pairs over all languages, or, where even those are too few, of all the
   language's good pairs: a cell that cannot show what its threshold costs keeps its data.
   ``recall_target=None`` chooses one threshold per language by the fault-bound rule instead
   (:func:`.thresholds._pick_threshold`: F1-optimal, then raised until the 95% Wilson upper bound
   of each fault kind's kept rate is at most ``max_kept``, for at most ``max_recall_loss`` of recall).

Which threshold each language and domain got, and why, is in ``metrics["thresholds"]``; the
relaxed rules in ``metrics["rules"]``. The ``"*"`` gate for unseen languages is a separate fit over
all languages with one pooled length model, as it meets them at run time. The held-out part is then
scored once with the finished gates (:mod:`.metrics`): its precision, recall and F1 per language,
per length domain and per fault kind are the reported metrics (``metrics``). Finally the weights,
length models and rules are refitted on all pairs (thresholds stay; ``refit=False`` keeps the
training-part weights), and every pair is scored with them once more: the dev pairs labelled good
that they still drop, by a hard rule or with a probability under :data:`DOUBT_P`, are ``result.doubtful``, the
references to read first (:func:`doubtful_references`).

==================  ===========================================================================
module              holds
==================  ===========================================================================
``run``             the driver, :func:`calibrate`
``data``            the bundled sample, ``concept_pairs`` (long pairs from a wide concept table),
                    the wide table back from pairs, the held-out split
``scoring``         ``score_pairs``: the score columns and language ID of the calibration pairs
``rules``           the base gate of a language: length model, imputed values, hard rules per domain
``design``          the design of scored pairs (inputs, labels, hard-rule verdicts, domains, kinds)
``thresholds``      the recall-first and fault-bound threshold rules and their constants
``fit``             the joint logistic fit, out-of-fold probabilities, finished gates, refit
``metrics``         ``CalibrationResult``, ``apply_gates``, the held-out ``evaluate``,
                    ``doubtful_references``
``unlabelled``      the unlabelled mode (Gaussian mixture on the margin)
``output``          ``write_pipeline``, ``write_gates_json``, ``summary_table``, ``cell_rows``
==================  ===========================================================================

Modules import one way, in the order ``data``, ``scoring``, ``rules`` < ``design`` < ``thresholds``
< ``fit``; ``metrics`` < ``unlabelled``, ``output``; ``run`` uses them all; none imports this package.

Example::

    result = calibrate(good_pairs, make_embedder("e5"), src="en")
    result.metrics["per_language"]["de"]  # {"precision": ..., "recall": ..., "f1": ..., ...}
    write_pipeline(result, "pipelines/my_gates.yaml", base_pipeline="pipelines/default.yaml")

The command line is ``corpusalign calibrate``. The shipped ``gates_e5_small.json`` came from the real
data in ``../shared/data/parallel`` (without ``--dev`` the bundled UDHR, Tatoeba and CLDR files are used)::

    corpusalign calibrate --dev udhr_en_de_ja_sw.blocks.jsonl --dev tatoeba_en_de_ja.dev.jsonl \
        --dev cldr_en_de_ja_sw.names.jsonl --dev gettext_en_de_ja.ui.jsonl --embedder e5 --seed 0 \
        --gates-json corpusalign/verify/gates_e5_small.json
"""

from __future__ import annotations

from corpusalign.verify.calibrate.data import concept_pairs, sample_files
from corpusalign.verify.calibrate.fit import MIN_PAIRS
from corpusalign.verify.calibrate.metrics import DOUBT_P, CalibrationResult, apply_gates, doubtful_references, evaluate
from corpusalign.verify.calibrate.output import cell_rows, summary_table, write_gates_json, write_pipeline
from corpusalign.verify.calibrate.rules import MIN_CELL_GOOD, RULE_CANDIDATES, RULE_MAX_GOOD_DROP, hard_rules
from corpusalign.verify.calibrate.run import calibrate
from corpusalign.verify.calibrate.scoring import LidSpec, score_pairs
from corpusalign.verify.calibrate.thresholds import (
    KEPT_CONFIDENCE,
    MAX_KEPT,
    MAX_RECALL_LOSS,
    MIN_KIND_PAIRS,
    MIN_THRESHOLD_GOOD,
    RECALL_TARGET,
    THIN_DOMAIN_KEEP,
    wilson_upper,
)

__all__ = [
    "DOUBT_P",
    "KEPT_CONFIDENCE",
    "MAX_KEPT",
    "MAX_RECALL_LOSS",
    "MIN_CELL_GOOD",
    "MIN_KIND_PAIRS",
    "MIN_PAIRS",
    "MIN_THRESHOLD_GOOD",
    "RECALL_TARGET",
    "RULE_CANDIDATES",
    "RULE_MAX_GOOD_DROP",
    "THIN_DOMAIN_KEEP",
    "CalibrationResult",
    "LidSpec",
    "apply_gates",
    "calibrate",
    "cell_rows",
    "concept_pairs",
    "doubtful_references",
    "evaluate",
    "hard_rules",
    "sample_files",
    "score_pairs",
    "summary_table",
    "wilson_upper",
    "write_gates_json",
    "write_pipeline",
]
