"""The report's glossary: every result column a table shows, with its readable name
(units, interval), the tooltip saying what it measures, and its digits. One list, so a
column reads the same on every page."""

from __future__ import annotations

from numbias.report.html import Column

_RULE_TIP = (
    "how an item's score is read from its distribution: greedy = the most probable score, expected = "
    "the mean, median, protocol = the paper's mean of 10 answers at T = 0.7 (its exact expectation), "
    "sampled = those answers actually drawn"
)
COLUMNS = {
    c.key: c
    for c in [
        Column("scale", "scale", "the range the judge was asked to answer on"),
        Column("rule", "rule", _RULE_TIP),
        Column("n", "items", "items with a numeric answer"),
        Column(
            "kurtosis",
            "kurtosis",
            "excess (Fisher) kurtosis of the judge's item scores: 0 for a normal "
            "distribution, higher = more peaked (scores piled on a few values)",
        ),
        Column("human_kurtosis", "human kurtosis", "excess kurtosis of the human scores of the same items"),
        Column("mode", "mode", "the score the judge gives most often", digits=0),
        Column("mode_share", "mode share", "share of the items given the mode", percent=True),
        Column(
            "sd_ratio",
            "SD ratio",
            "the SD of the judge's item scores over the humans', both on the unit scale: "
            "below 0.2 the judge barely varies, and its kurtosis describes jitter rather than a pile-up",
        ),
        Column(
            "human_mode_share",
            "humans in that bin",
            "share of the items whose human score (mapped onto the "
            "judge's scale) falls in the judge's most given score's bin",
            percent=True,
        ),
        Column(
            "out_of_scale",
            "out-of-scale mass",
            "mean over items of the probability of a number outside the "
            "scale (the protocol clips it to the nearest end, which can read as a pile-up there)",
            percent=True,
        ),
        Column(
            "non_numeric",
            "non-numeric mass",
            "mean over items of the probability of an answer that is not a number (dropped by every rule)",
            percent=True,
        ),
        Column(
            "entropy",
            "entropy",
            "normalised entropy of the score histogram: 1 = every score equally often, 0 = a single score",
        ),
        Column("distinct", "scores used", "how many of the scale's scores the judge gives at least once"),
        Column(
            "js_divergence",
            "JS divergence",
            "Jensen–Shannon divergence (base 2) between the judge's and the "
            "humans' histograms, human scores mapped linearly onto the judge's range: 0 = same shape, 1 = disjoint",
        ),
        Column(
            "wasserstein",
            "Wasserstein (% of range)",
            "earth mover's distance between judge and human scores, as a share of the scale's range",
            percent=True,
        ),
        Column(
            "pearson",
            "Pearson r [95% CI]",
            "linear correlation with the human scores; 95% bootstrap interval over items",
        ),
        Column("spearman", "Spearman ρ", "rank correlation with the human scores"),
        Column("kendall", "Kendall τ", "pairwise rank agreement with the human scores"),
        Column(
            "human_ceiling",
            "human ceiling",
            "split-half reliability of the raters (Spearman–Brown): about the best r a judge can reach",
        ),
        Column(
            "group_pearson",
            "group r [95% CI]",
            "Pearson r within each group (e.g. source document), averaged; interval from resampling groups",
        ),
        Column("groups", "groups", "groups that entered the group-level r"),
        *(
            Column(
                f"system_{key}",
                f"system {name} [95% CI]",
                f"{name} between the systems' mean judge scores and "
                "mean human scores (judge: every item; human: items with a human score); Fisher-z interval over the "
                "systems",
            )
            for key, name in (("pearson", "Pearson r"), ("spearman", "Spearman ρ"), ("kendall", "Kendall τ"))
        ),
        Column("systems", "systems", "systems that entered the system-level correlations (two or more labelled items)"),
        Column("row", "row", "what changes from the paper's default (0-9, protocol, T = 0.7)"),
        Column("setting", "setting", "scale · rule · temperature · mitigation"),
        Column(
            "dev score",
            "dev score",
            "the selection criterion on development items (cross-fitted where the setting is fitted on labels)",
        ),
        Column("group pearson", "group r [95% CI]", "within-group Pearson r, averaged over groups"),
        Column("n test", "test items", "held-out items the row is scored on"),
        Column(
            "interval coverage",
            "90% interval coverage [95% CI]",
            "share of the test items whose human score lies "
            "in the row's 90% split-conformal interval (fitted on development items; its ends are ratings the humans "
            "can give, inside their range); 95% Wilson interval over the test items",
            percent=True,
        ),
        Column(
            "Δ r",
            "Δ r vs default [95% CI]",
            "test Pearson r of the row minus that of the paper's default on the "
            "same items; paired bootstrap interval over the test items (whole groups where there are groups)",
        ),
        Column("p", "p", "two-sided p of Δ r = 0 (inverting the paired bootstrap), before correction", digits=3),
        Column(
            "p adjusted",
            "p (Holm)",
            "p adjusted by Holm over the rows of this table tested against the default",
            digits=3,
        ),
        Column(
            "vs default",
            "vs default",
            "better or worse than the default only where the Holm-adjusted p is below 0.05; otherwise within noise",
        ),
        Column(
            "dev Δ r",
            "dev Δ r, choice − default [95% CI]",
            "the automatic choice against the default on the "
            "development items, cross-fitted: the selection re-run without each fold, its winner fitted without it "
            "and scored on it, both standardised within fold; paired bootstrap over the development items. The "
            "choice is recommended only when this interval lies above 0",
        ),
        Column("dev p", "dev p", "two-sided p of dev Δ r = 0", digits=3),
        Column(
            "recommended",
            "recommended",
            "whether the choice beats the default on development items (dev Δ r's interval above 0)",
        ),
        Column(
            "label-free dev Δ r",
            "label-free dev Δ r [95% CI]",
            "the label-free (entropy) choice against the "
            "default on the development items (it reads no label, so no cross-fitting is needed)",
        ),
        Column("interval width", "interval width", "mean width of that interval, on the human scale"),
        Column(
            "stability",
            "stability",
            "share of bootstrap resamples of the development items on which the same setting wins",
            percent=True,
        ),
        Column(
            "scale stability", "scale stability", "share of resamples won by a setting at the same scale", percent=True
        ),
        Column(
            "nested estimate",
            "nested estimate",
            "Pearson r of the selection procedure itself: chosen without "
            "each fold of the development items, applied to it, the predictions standardised within fold before "
            "pooling (unbiased under no signal; the winner's curse corrected)",
        ),
        Column("text", "text", "the item's fields as the judge read them (the first 400 characters)", long=True),
        Column("human", "human", "the human score, on the raters' scale"),
        *(
            Column(f"{who} {label}", f"{who} {label}", f"the {who} judge's {tip}", percent=label != "SD ratio")
            for who in ("base", "aligned")
            for label, tip in (
                ("SD ratio", "item-score SD over the humans', on the unit scale (below 0.2: it barely varies)"),
                ("mode share", "share of the items given its most given score"),
                ("out-of-scale", "mean mass on numbers outside the scale (clipped by the protocol)"),
                ("non-numeric", "mean mass on answers that are not numbers"),
            )
        ),
        Column(
            "humans in aligned mode's bin",
            "humans in aligned mode's bin",
            "share of the items whose human score falls in the aligned judge's most given score's bin",
            percent=True,
        ),
        Column("items", "items", "items both judges score: what the intervals resample"),
        Column(
            "gain kept (refitted)",
            "gain kept (refitted)",
            "share of the gain over the default that survives, the setting refitted on the target",
            percent=True,
        ),
        Column(
            "gain kept (as fitted)",
            "gain kept (as fitted)",
            "share of the gain that survives with the calibration fitted on the source",
            percent=True,
        ),
    ]
}
"""Every column of the run, align and mitigate tables, by its key in the results."""

SYSTEM_COLUMNS = {
    c.key: c
    for c in [
        Column("system", "system", "the system (an output several systems share counts for each)"),
        Column("items", "items", "the system's items, every one scored by the judge"),
        Column("labelled", "labelled", "items with a human score"),
        Column(
            "naive",
            "naive judge mean [95% CI] (biased)",
            "the judge's mean over every item, mapped onto the human "
            "scale: biased by the judge, its interval blind to the judge's error",
        ),
        Column("labelled_only", "labelled-only mean [95% CI]", "the mean human score of the labelled items"),
        Column(
            "ppi",
            "PPI++ mean [95% CI]",
            "prediction-powered mean (PPI++): the judge on every item, rectified by "
            "its error on the labelled ones, with the power-tuning λ",
        ),
        Column("lambda", "λ", "PPI++'s weight on the judge: 0 = labels only, 1 = plain PPI"),
        Column("truth", "true mean", "the mean human score of every item (known when every item is labelled)"),
        Column(
            "pass_naive",
            "judge pass rate [95% CI] (biased)",
            "share of items the judge scores at or above the threshold",
            percent=True,
        ),
        Column("pass_labelled", "labelled pass rate [95% CI]", "share of labelled items the humans pass", percent=True),
        Column(
            "pass_corrected",
            "corrected pass rate [95% CI]",
            "the judge's pass rate corrected by its sensitivity and "
            "specificity on the labelled items (Rogan–Gladen), clipped to [0, 1]; bootstrap interval",
            percent=True,
        ),
        Column("a", "A", "first system of the pair"),
        Column("b", "B", "second system of the pair"),
        Column(
            "difference",
            "A − B [95% CI]",
            "PPI++ estimate of mean(A) − mean(B), paired by group where both systems cover the same groups",
        ),
        Column("p", "p", "two-sided p of A − B = 0 (normal), before correction", digits=3),
        Column("p_holm", "p (Holm)", "p adjusted by Holm over every pair", digits=3),
        Column(
            "beats",
            "P(A beats B)",
            "share of bootstrap resamples of the items with A's PPI++ mean above B's",
            percent=True,
        ),
        Column("paired", "paired", "whether the difference is taken group by group"),
        Column("units", "resampled", "what the difference was computed over"),
    ]
}
"""The columns of ``numbias compare``'s systems and pairs tables."""
