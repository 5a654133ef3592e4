"""One-line definitions of every metric key and column a report table shows (issue 13, point 6).

A reader who meets "DCI-D 0.58" or "gbt_pruned.mean_test_accuracy" in a table finds here what
was computed, on which rows, and which way is better, without opening the code. :func:`glossary`
returns the entries for the keys actually shown, and the keys it cannot define (a new column
added without a definition), which the report lists as such instead of leaving them silent.
"""

from __future__ import annotations

import re

_GBT = ("gradient-boosted trees trained on the first 2/3 of the evaluated rows, test accuracy on "
        "the rest (split by whole combinations/lines)")
_MLP = "an MLP (hidden layers 256, 256) trained and scored like the GBT"
_PRUNED = ("the code restricted to the dimensions OMES associates with some factor (Dapueto et al. "
           "2024, §4: does the factor-aligned part of the code suffice?)")

#: exact keys (flat metric keys of results.json, and transfer-table headers)
DEFINITIONS: dict[str, str] = {
    "omes.score": "OMES (Dapueto et al. 2024, Eq. 3) at α = 0.5, avg pooling: mean over factors of "
                  "½·OS + ½·MES from pairs of rows differing in one factor only; 1 = one factor "
                  "per dimension and one dimension per factor.",
    "omes.os": "OMES at α = 1: the overlap score alone — does each dimension move with one factor "
               "only (modularity).",
    "omes.mes": "OMES at α = 0: the multiple-encoding score alone — is each factor carried by one "
                "dimension only (compactness).",
    "dci.disentanglement": "DCI disentanglement (Eastwood & Williams 2018): 1 − entropy over "
                           "factors of each dimension's GBT feature importances, weighted by its "
                           "total importance; 1 = each dimension predicts one factor.",
    "dci.completeness": "DCI completeness: 1 − entropy over dimensions of each factor's GBT "
                        "importances, weighted; 1 = each factor predicted by one dimension.",
    "dci.informativeness_test": "DCI informativeness: mean test accuracy of the per-factor GBT "
                                "classifiers whose importances DCI reads.",
    "mig.score": "MIG (Chen et al. 2018): per factor, the gap between the two largest mutual "
                 "informations with single dimensions (20 bins) over the factor's entropy; mean.",
    "sap.score": "SAP (Kumar et al. 2018): per factor, the gap between the two best one-dimension "
                 "linear-SVM test accuracies; mean over factors.",
    "modularity.score": "Modularity (Ridgeway & Zemel 2018): 1 − how much each dimension's mutual "
                        "information spreads beyond its main factor; mean over dimensions.",
    "explicitness.score_test": "Explicitness (Ridgeway & Zemel 2018): test macro ROC-AUC of a "
                               "logistic regression per factor on the standardised code; mean.",
    "beta_vae.eval_accuracy": "BetaVAE score (Higgins et al. 2017): accuracy of a logistic "
                              "regression naming the factor shared within batches of row pairs, "
                              "from mean |z1 − z2|.",
    "factor_vae.eval_accuracy": "FactorVAE score (Kim & Mnih 2018): majority-vote accuracy naming "
                                "the fixed factor from the active dimension of least relative "
                                "variance.",
    "gbt.mean_test_accuracy": f"GBT explicitness: {_GBT}, predicting each factor from the full "
                              "code; mean over factors.",
    "gbt_pruned.mean_test_accuracy": f"As gbt.mean_test_accuracy on {_PRUNED}.",
    "mlp.mean_test_accuracy": f"MLP explicitness: {_MLP}, on the full code; mean over factors.",
    "mlp_pruned.mean_test_accuracy": f"As mlp.mean_test_accuracy on {_PRUNED}.",
    "gbt_single.mean_test_accuracy": "GBT accuracy of each factor from its OMES-associated "
                                     "dimension alone; mean over factors.",
    # transfer-table headers
    "code": "Which code the row reads: full = every latent dimension; pruned = only the dimensions "
            "OMES associates with a factor; untrained floor = the full code of an untrained "
            "network of the same architecture on the same target rows.",
    "n (rows evaluated)": "Rows encoded and scored per evaluation, each a distinct factor "
                          "combination (fewer than asked when the evaluated part holds fewer).",
    "All": "Mean over the target's factors of the GBT test accuracies in the factor columns.",
    "OS": "= omes.os, the overlap score (α = 1).",
    "MES": "= omes.mes, the multiple-encoding score (α = 0).",
    "OMES": "= omes.score (α = 0.5).",
    "DCI-D": "= dci.disentanglement.",
    "MIG": "= mig.score.",
}

#: keys with a factor name in them: (pattern, definition with {factor})
PATTERNS: tuple[tuple[str, str], ...] = (
    (r"^gbt\.test_accuracy\.(?P<f>.+)$", f"GBT test accuracy predicting factor {{f}} ({_GBT})."),
    (r"^gbt_pruned\.test_accuracy\.(?P<f>.+)$",
     "GBT test accuracy predicting {f} from " + _PRUNED + "."),
    (r"^mlp\.test_accuracy\.(?P<f>.+)$", "MLP test accuracy predicting factor {f}."),
    (r"^omes\.factor\.(?P<f>.+)$", "OMES (α = 0.5, avg) of factor {f} alone."),
)

FACTOR_COLUMN = ("GBT test accuracy predicting this factor of the target from the code (row "
                 "'full') or the OMES-pruned code (row 'pruned'); 'before (+Δ after)'.")


def define(key: str, factor_names=()) -> str | None:
    """The one-line definition of ``key`` (None when unknown)."""
    if key in DEFINITIONS:
        return DEFINITIONS[key]
    if key in set(factor_names):
        return FACTOR_COLUMN
    for pattern, text in PATTERNS:
        m = re.match(pattern, key)
        if m:
            return text.format(f=m["f"])
    return None


def glossary(keys, factor_names=()) -> tuple[list[tuple[str, str]], list[str]]:
    """(term, definition) for every distinct key in ``keys`` (in order), and the undefined ones.

    Factor-name columns share one entry, listed under "(a factor name)".
    """
    entries, missing, seen = [], [], set()
    factors = set(factor_names)
    for key in keys:
        term = "(a factor name)" if key in factors else key
        if term in seen:
            continue
        seen.add(term)
        text = define(key, factor_names)
        if text is None:
            missing.append(key)
        else:
            entries.append((term, text))
    return entries, missing
