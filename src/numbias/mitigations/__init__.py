"""Removing the bias: the calibrators, one module per family, their registry and settings, and the choice among them."""

from functools import partial

from numbias._lazy import exports
from numbias.mitigations._base import (
    Calibrator,
    DistributionCalibrator,
    NoMitigation,
    ScoreMapping,
    UnfittableError,
    cross_folds,
    holdout,
)
from numbias.mitigations._contrast import CHOICES as CONTRAST_CHOICES
from numbias.mitigations._contrast import CONTRAST, DEFAULT_LAMBDA, LAMBDAS, Contrast, contrasted
from numbias.mitigations._development import (
    CRITERIA,
    LABEL_CRITERIA,
    Criterion,
    dev_predictions,
    dev_score,
    label_free_score,
    select,
)
from numbias.mitigations._distribution_calibration import (
    BatchCalibration,
    BetaCalibration,
    ContextualCalibration,
    score_bins,
)
from numbias.mitigations._distribution_regression import (
    ORDINAL_ALPHAS,
    RIDGE_ALPHAS,
    DistributionRegression,
    OrdinalRegression,
    RidgeRegression,
)
from numbias.mitigations._range_ensemble import EnsembleWeights
from numbias.mitigations._registry import (
    ENTRY_POINTS,
    MITIGATION_REGISTRY,
    MitigationSpec,
    all_mitigations,
    get_mitigation,
    register_mitigation,
)
from numbias.mitigations._score_mapping import IsotonicMapping, QuantileMapping
from numbias.mitigations._setting import FIT, PAPER_TEMPERATURES, Fitted, Setting, SettingData, Temperature
from numbias.mitigations._temperature import TemperatureScaling

BUILT_IN_MITIGATIONS = tuple(
    register_mitigation(*spec).name
    for spec in (
        ("none", NoMitigation, "original", False, "original"),
        ("beta", BetaCalibration, "distribution calibration", True, "beta calibration"),
        ("batch", BatchCalibration, "distribution calibration", False, "batch calibration"),
        ("contextual", ContextualCalibration, "distribution calibration", False, "contextual calibration"),
        ("isotonic", IsotonicMapping, "score mapping", True, "isotonic mapping"),
        ("quantile", QuantileMapping, "score mapping", True, "quantile mapping"),
        ("ridge", RidgeRegression, "distribution regression", True, "distribution regression (ridge)"),
        ("ordinal", OrdinalRegression, "distribution regression", True, "distribution regression (ordinal)"),
        ("weighted", EnsembleWeights, "range ensemble", True, "range ensemble (weights fitted on dev)"),
        ("contrast", Contrast, "contrast", False, "contrast (fixed λ)"),
        ("contrast-fit", partial(Contrast, choose="labels"), "contrast", True, "contrast (λ fitted on dev)"),
        (
            "contrast-free",
            partial(Contrast, choose="spread"),
            "contrast",
            False,
            "contrast (λ label-free: widest spread)",
        ),
    )
)
"""The built-in mitigations, in the order a study compares them, registered as the package loads."""
CONTRAST_MITIGATIONS = ("contrast", "contrast-fit", "contrast-free")
"""The contrast family's variants: λ fixed, fitted on development labels, label-free."""
DEFAULT_MITIGATIONS = tuple(m for m in BUILT_IN_MITIGATIONS if m != "ordinal" and m not in CONTRAST_MITIGATIONS)
"""What ``mitigate`` compares unless told: every built-in but ordinal regression, whose
cross-validated fit costs more than all the others together (name it to add it), and
the contrast family, which needs an amateur judge (``contrast:`` adds it)."""

__all__ = [
    "BUILT_IN_MITIGATIONS",
    "BatchCalibration",
    "BetaCalibration",
    "CONTRAST",
    "CONTRAST_CHOICES",
    "CONTRAST_MITIGATIONS",
    "CRITERIA",
    "Calibrator",
    "ContextualCalibration",
    "Contrast",
    "Criterion",
    "DEFAULT_LAMBDA",
    "DEFAULT_MITIGATIONS",
    "DistributionCalibrator",
    "DistributionRegression",
    "ENTRY_POINTS",
    "EnsembleWeights",
    "FIT",
    "FITTED_TEMPERATURE_ROW",
    "FREE_CRITERION",
    "FREE_ROW",
    "Fitted",
    "Honesty",
    "IsotonicMapping",
    "LABEL_CRITERIA",
    "LABEL_SIZES",
    "LAMBDAS",
    "MITIGATION_REGISTRY",
    "MitigationSpec",
    "NoMitigation",
    "ORACLE_ROW",
    "ORDINAL_ALPHAS",
    "OrdinalRegression",
    "PAPER_DEFAULT",
    "PAPER_TEMPERATURES",
    "PRESPECIFIED",
    "PRESPECIFIED_ROW",
    "QuantileMapping",
    "RIDGE_ALPHAS",
    "RidgeRegression",
    "RowFit",
    "ScoreMapping",
    "Setting",
    "SettingData",
    "Temperature",
    "TemperatureScaling",
    "UnfittableError",
    "all_mitigations",
    "compare",
    "contrasted",
    "cross_fitted",
    "cross_folds",
    "dev_predictions",
    "dev_score",
    "families",
    "family_bests",
    "family_row",
    "fit_predict",
    "free_choice",
    "get_mitigation",
    "holdout",
    "honest_selection",
    "label_efficiency",
    "label_free_score",
    "register_mitigation",
    "scale_row",
    "score_bins",
    "select",
    "subset",
    "table_rows",
    "temperature_row",
    "within_folds",
]

# selection reads the names above, so its own are imported on first use
__getattr__, __dir__ = exports(
    __name__,
    {
        name: "selection"
        for name in (
            "FITTED_TEMPERATURE_ROW",
            "FREE_CRITERION",
            "FREE_ROW",
            "Honesty",
            "LABEL_SIZES",
            "ORACLE_ROW",
            "PAPER_DEFAULT",
            "PRESPECIFIED",
            "PRESPECIFIED_ROW",
            "RowFit",
            "compare",
            "cross_fitted",
            "families",
            "family_bests",
            "family_row",
            "fit_predict",
            "free_choice",
            "honest_selection",
            "label_efficiency",
            "scale_row",
            "subset",
            "table_rows",
            "temperature_row",
            "within_folds",
        )
    },
)
