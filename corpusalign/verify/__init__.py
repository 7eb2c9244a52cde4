"""Semantic-equivalence verification of translation pairs: scores, a calibrated gate, and its calibration.

==================  ===========================================================================
module              holds
==================  ===========================================================================
``scores``          pure numpy/text scoring functions (cosine, ratio margin, numbers, placeholders,
                    copies, scripts, sentence structure, competing sources, prefix coverage, word
                    counts, length domains, language-neutral texts); no model calls
``numerals``        spelled-out numbers read as digits, for ``scores.number_agreement``
``features``        ``FEATURE_COLUMNS`` and ``pair_features``: the score columns of a batch of pairs
                    (target prefixes embedded in one call); ``lid_expected_probability`` and
                    ``neutral_copies`` (fastText)
``gate``            ``LanguageGate`` and its per-domain ``DomainGate``, ``design_matrix``,
                    ``predict_proba``, ``hard_rules``, ``decide`` (keep/drop with a reason) and the
                    shipped ``DEFAULT_GATES`` (``gates_e5_small.json``)
``corrupt``         ``make_noisy_set``: labelled corruptions of real parallel data
``calibrate``       ``calibrate``: fits gates per language and length domain (weights, hard-rule
                    settings, recall-first thresholds); ``write_pipeline`` (a pipeline YAML with
                    the gates); a package (scoring, rules, fits, thresholds, output); its
                    command line is ``corpusalign calibrate``
==================  ===========================================================================

Nothing here is imported by ``import corpusalign``; scikit-learn is needed by ``calibrate`` only.
"""
