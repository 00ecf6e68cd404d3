"""Every number of the positive control's write-up, from study/dists.csv.gz alone (no
model, no store): the effects table (effects.csv), each measure's power at n = 200
(power.csv) and the ridge recovery check (ridge.csv), as the README's plan says.

    python docs/results/positive-control/analyse.py [--draws 200] [--boot 2000]

Judges are ``base`` and ``pc-<arm>-sft-s<seed>``; a contrast uses every seed both sides
have (L vs I paired by seed), on the words every judge of the scale has.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from numbias.core.distribution import ScoreDistribution
from numbias.core.inference import Effect, adjust, paired_effect
from numbias.core.scale import ScoreScale
from numbias.mitigations import RidgeRegression

HERE = Path(__file__).resolve().parent
DISTS = HERE / "study" / "dists.csv.gz"
HUMAN_RANGE = (-4.0, 4.0)
"""VADER's rating scale."""
CONTRASTS = (("L", "I"), ("L", "base"), ("I", "base"))
"""(b, a): each effect is statistic(b) − statistic(a)."""
ARMS = {"L": "leaning", "I": "informed"}
Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


def unit(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (x - lo) / (hi - lo)


def pearson(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis (any leading axes: the bootstrap's resamples)."""
    x = x - x.mean(axis=-1, keepdims=True)
    h = h - h.mean(axis=-1, keepdims=True)
    return (x * h).sum(axis=-1) / np.sqrt((x * x).sum(axis=-1) * (h * h).sum(axis=-1))


def mean(x: np.ndarray, _: np.ndarray) -> np.ndarray:
    return x.mean(axis=-1)


def mode_share(x: np.ndarray, _: np.ndarray) -> np.ndarray:
    """Share of the items whose modal score (x) is the most common one."""
    return np.max(np.stack([(x == v).mean(axis=-1) for v in np.unique(x)]), axis=0)


def sd_ratio(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """SD of the unit-scale item scores (x) over the SD of the unit-scale human scores."""
    return x.std(axis=-1) / unit(h, *HUMAN_RANGE).std(axis=-1)


def kurtosis(x: np.ndarray, _: np.ndarray) -> np.ndarray:
    return stats.kurtosis(x, axis=-1, fisher=True, bias=True)


@dataclass(frozen=True)
class Measure:
    """A statistic over items of one per-item value of the distributions."""

    name: str
    value: Callable[[pd.DataFrame, ScoreScale], np.ndarray]
    statistic: Statistic


def probs(frame: pd.DataFrame, scale: ScoreScale) -> np.ndarray:
    """Items × in-scale scores, renormalised over the in-scale mass."""
    p = frame[[f"p{v}" for v in scale.labels]].to_numpy(float)
    return p / p.sum(axis=1, keepdims=True)


def expected(frame: pd.DataFrame, scale: ScoreScale) -> np.ndarray:
    return probs(frame, scale) @ scale.values


MEASURES = (
    Measure("r", expected, pearson),
    Measure("mass on second-highest", lambda f, s: probs(f, s)[:, -2], mean),
    Measure("mode share", lambda f, s: s.values[np.argmax(probs(f, s), axis=1)].astype(float), mode_share),
    Measure("SD ratio", lambda f, s: unit(expected(f, s), s.lo, s.hi), sd_ratio),
    Measure("kurtosis", expected, kurtosis),
    Measure("out-of-scale mass", lambda f, s: (f["below"] + f["above"]).to_numpy(float), mean),
)


def load(path: Path = DISTS) -> dict[str, dict[str, pd.DataFrame]]:
    """scale → judge → its rows, on the words every judge of that scale has, in one order."""
    frame = pd.read_csv(path)
    out = {}
    for scale, rows in frame.groupby("scale", sort=False):
        common = set.intersection(*(set(g.id) for _, g in rows.groupby("judge")))
        ids = sorted(common)
        out[str(scale)] = {j: g.set_index("id").loc[ids].reset_index() for j, g in rows.groupby("judge")}
    return out


def seeds(judges: dict[str, pd.DataFrame], side: str) -> list[str]:
    """The judges of one side: ``base``, or an arm's seeds in seed order."""
    if side == "base":
        return ["base"] if "base" in judges else []
    return sorted(j for j in judges if j.startswith(f"pc-{ARMS[side]}-sft-s"))


def values(judges: dict[str, pd.DataFrame], names: list[str], measure: Measure, scale: ScoreScale) -> np.ndarray:
    return np.stack([measure.value(judges[n], scale) for n in names])


def table(data: dict[str, dict[str, pd.DataFrame]], pick: np.ndarray | None = None, n_boot: int = 2000,
          ) -> list[tuple[str, str, str, Effect]]:
    """Every (scale, contrast, measure) effect, Holm-adjusted over the whole table;
    ``pick`` restricts every scale to those word positions (the power draws)."""
    rows = []
    for scale_text, judges in data.items():
        scale = ScoreScale.parse(scale_text)
        human = next(iter(judges.values()))["human"].to_numpy(float)
        keep = slice(None) if pick is None else pick
        for b, a in CONTRASTS:
            nb, na = seeds(judges, b), seeds(judges, a)
            if not nb or not na:
                continue
            paired = len(nb) == len(na) > 1
            for m in MEASURES:
                xa, xb = values(judges, na, m, scale)[:, keep], values(judges, nb, m, scale)[:, keep]
                effect = paired_effect(m.statistic, xa, xb, human[keep], paired_seeds=paired, n_boot=n_boot)
                rows.append((scale_text, f"{b} − {a}", m.name, effect))
    adjusted = adjust([e for *_, e in rows])
    return [(*r[:3], e) for r, e in zip(rows, adjusted)]


def levels(data: dict[str, dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """Each judge's measures (the effects' two sides, seeds shown one by one)."""
    out = []
    for scale_text, judges in data.items():
        scale = ScoreScale.parse(scale_text)
        for name, frame in judges.items():
            h = frame["human"].to_numpy(float)
            out.append({"scale": scale_text, "judge": name, "words": len(frame),
                        **{m.name: float(m.statistic(m.value(frame, scale), h)) for m in MEASURES}})
    return pd.DataFrame(out)


def power(data: dict[str, dict[str, pd.DataFrame]], full: list[tuple[str, str, str, Effect]], draws: int,
          n_boot: int, size: int = 200, seed: int = 0) -> pd.DataFrame | None:
    """Share of ``draws`` subsamples of ``size`` words in which each effect is called
    (Holm over the table of the scales drawn from) in the direction of the full-sample
    estimate, on the scales with more than ``size`` words; None when there is none."""
    data = {s: judges for s, judges in data.items() if len(next(iter(judges.values()))) > size}
    full = [row for row in full if row[0] in data]
    if not data:
        return None
    n = len(next(iter(next(iter(data.values())).values())))
    assert all(len(next(iter(j.values()))) == n for j in data.values()), "the scales drawn from hold other words"
    rng = np.random.default_rng(seed)
    hits = np.zeros(len(full))
    for _ in range(draws):
        small = table(data, np.sort(rng.choice(n, size=size, replace=False)), n_boot)
        hits += [e.significant() and np.sign(e.delta) == np.sign(f.delta) for (*_, e), (*_, f) in zip(small, full)]
    return pd.DataFrame([{"scale": s, "contrast": c, "measure": m, "words": size, "draws": draws,
                          "tests": len(full), "power": h / draws} for (s, c, m, _), h in zip(full, hits)])


def dists(frame: pd.DataFrame, scale: ScoreScale) -> list[ScoreDistribution]:
    p = frame[[f"p{v}" for v in scale.labels]].to_numpy(float)
    rest = frame[["below", "above", "other"]].to_numpy(float)
    return [ScoreDistribution(scale, row, *r) for row, r in zip(p, rest)]


def ridge(data: dict[str, dict[str, pd.DataFrame]], seed: int = 0, n_boot: int = 2000) -> pd.DataFrame:
    """Ridge distribution regression fitted on a seeded half of the words, r on the
    other half: each side's raw and ridge r, and L with ridge against the raw base and raw L."""
    out = []
    for scale_text, judges in data.items():
        scale = ScoreScale.parse(scale_text)
        human = next(iter(judges.values()))["human"].to_numpy(float)
        order = np.random.default_rng(seed).permutation(len(human))
        fit, test = order[: len(order) // 2], np.sort(order[len(order) // 2 :])
        target = scale.lo + unit(human, *HUMAN_RANGE) * (scale.hi - scale.lo)

        def predicted(name: str) -> np.ndarray:
            d = dists(judges[name], scale)
            model = RidgeRegression().fit([d[i] for i in fit], target[fit])
            return model.predict([d[i] for i in test])

        sides = {s: seeds(judges, s) for s in ("base", "L", "I")}
        raw = {s: np.stack([expected(judges[n], scale)[test] for n in names]) for s, names in sides.items() if names}
        fitted = {s: np.stack([predicted(n) for n in names]) for s, names in sides.items() if names}
        for s in raw:
            out.append({"scale": scale_text, "what": f"{s} raw r", "delta": float(pearson(raw[s], human[test]).mean())})
            out.append({"scale": scale_text, "what": f"{s} ridge r",
                        "delta": float(pearson(fitted[s], human[test]).mean())})
        if "L" in raw and "base" in raw:
            for what, a in (("L ridge − base raw", raw["base"]), ("L ridge − L raw", raw["L"])):
                paired = what.endswith("L raw") and len(fitted["L"]) > 1
                out.append({"scale": scale_text, "what": what, **asdict(paired_effect(
                    pearson, a, fitted["L"], human[test], paired_seeds=paired, n_boot=n_boot))})
    return pd.DataFrame(out)


def effects_frame(full: list[tuple[str, str, str, Effect]]) -> pd.DataFrame:
    return pd.DataFrame([{"scale": s, "contrast": c, "measure": m, **asdict(e)} for s, c, m, e in full])


def markdown() -> str:
    """The README's result tables, from the CSVs this script wrote."""
    effects = pd.read_csv(HERE / "effects.csv")
    power_file = HERE / "power.csv"
    powers = pd.read_csv(power_file).set_index(["scale", "contrast", "measure"]).power if power_file.is_file() else {}
    lines = ["| scale | contrast | measure | Δ [95% CI] | p (Holm) | power at n = 200 |", "|---|---|---|---|---|---|"]
    for r in effects.itertuples():
        effect = Effect(r.delta, r.low, r.high, r.p, r.items, r.seeds, r.p_adjusted)
        pw = powers.get((r.scale, r.contrast, r.measure), float("nan")) if len(powers) else float("nan")
        lines.append(f"| {r.scale} | {r.contrast} | {r.measure} | {effect.text(3)} | {r.p_adjusted:.3g}"
                     f"{' ✱' if effect.significant() else ''} | {'—' if np.isnan(pw) else f'{pw:.2f}'} |")
    level = pd.read_csv(HERE / "levels.csv")
    cols = [m.name for m in MEASURES]
    lines += ["", "| scale | judge | words | " + " | ".join(cols) + " |", "|---" * (3 + len(cols)) + "|"]
    lines += [f"| {r['scale']} | {r['judge']} | {r['words']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |"
              for _, r in level.iterrows()]
    ridge_rows = pd.read_csv(HERE / "ridge.csv")
    lines += ["", "| scale | ridge check | value [95% CI] | p |", "|---|---|---|---|"]
    for r in ridge_rows.itertuples():
        interval = f" [{r.low:+.3f}, {r.high:+.3f}]" if np.isfinite(r.low) else ""
        lines.append(f"| {r.scale} | {r.what} | {r.delta:+.3f}{interval} | {'' if np.isnan(r.p) else f'{r.p:.3g}'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--power-boot", type=int, default=2000)
    parser.add_argument("--dists", type=Path, default=DISTS)
    parser.add_argument("--markdown", action="store_true", help="only print the README's tables from the CSVs")
    args = parser.parse_args()
    if args.markdown:
        print(markdown())
        return
    data = load(args.dists)
    full = table(data, n_boot=args.boot)
    levels(data).round(4).to_csv(HERE / "levels.csv", index=False)
    effects_frame(full).round(4).to_csv(HERE / "effects.csv", index=False)
    ridge(data, n_boot=args.boot).round(4).to_csv(HERE / "ridge.csv", index=False)
    print(effects_frame(full)[["scale", "contrast", "measure", "delta", "low", "high", "p_adjusted"]].round(3)
          .to_string(index=False), flush=True)
    found = power(data, full, args.draws, args.power_boot)
    if found is None:
        (HERE / "power.csv").unlink(missing_ok=True)
        print("power at n = 200: not computed, no scale has more than 200 words")
    else:
        found.to_csv(HERE / "power.csv", index=False)


if __name__ == "__main__":
    main()
