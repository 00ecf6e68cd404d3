"""Built-in tasks: a loader, a prompt template and the human scale.

Embedded data (``vader``, ``simlex``) ships in registry packages; the benchmark sets
(``mtqe``, ``lcp``, ``stsb``, ``gecqe``) are read from a path to their published files."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from numbias.data import Dataset, make_dataset, parse_ratings, read_table
from numbias.errors import NumbiasError
from numbias.prompt import PromptTemplate

Loader = Callable[..., Dataset]


@dataclass(frozen=True)
class Task:
    """What to judge, how to ask, and what the human scores mean."""

    name: str
    description: str
    template: PromptTemplate
    human_range: tuple[float, float]
    human_levels: int | None
    """Distinct values a single human rating takes (5 for a 5-point Likert), if few."""
    source: str
    loader: Loader
    needs_path: bool

    def load(self, path: str | Path | None = None, **options: Any) -> Dataset:
        if self.needs_path and path is None:
            raise NumbiasError(f"task {self.name!r} needs the path to its data ({self.source})")
        try:
            data = self.loader(path, **options) if self.needs_path else self.loader(**options)
        except TypeError as exc:
            raise NumbiasError(f"task {self.name!r}: bad option ({exc})") from None
        self.template.check(set(data.fields))
        return data


def _package_path(module: str, relative: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise NumbiasError(f"this task needs the {module} package: {install}")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def _sample(frame: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    if n is None or n >= len(frame):
        return frame
    if n < 1:
        raise NumbiasError(f"sample size must be positive, got {n}")
    return frame.sample(n=n, random_state=seed).sort_index()


def load_vader(n: int | None = 300, seed: int = 0) -> Dataset:
    path = _package_path("vaderSentiment", "vader_lexicon.txt", "pip install vaderSentiment==3.3.2")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 4 and parts[0].isalpha():
                rows.append({"id": parts[0], "word": parts[0], "human": float(parts[1]),
                             "ratings": parse_ratings(parts[3])})
    return make_dataset("vader", _sample(pd.DataFrame(rows), n, seed), fields=["word"], human_range=(-4.0, 4.0))


def load_simlex(n: int | None = None, seed: int = 0) -> Dataset:
    path = _package_path("gensim", "test/test_data/simlex999.txt", "pip install gensim")
    frame = pd.read_csv(path, sep="\t", comment="#", header=None, names=["word1", "word2", "human"])
    frame["id"] = frame["word1"] + "|" + frame["word2"]
    return make_dataset("simlex", _sample(frame, n, seed), fields=["word1", "word2"], human_range=(0.0, 10.0))


def load_mtqe(path: str | Path, pair: str = "en-de", split: str = "test20", target: str = "mean",
              n: int | None = None, seed: int = 0) -> Dataset:
    if target not in {"mean", "z_mean"}:
        raise NumbiasError(f"mtqe target must be 'mean' or 'z_mean', got {target!r}")
    file = Path(path) / pair / f"{split}.tsv"
    if not file.is_file():
        raise NumbiasError(f"MLQE-PE file {file} does not exist (pair {pair!r}, split {split!r})")
    frame = read_table(file)
    _require(frame, file, ["index", "original", "translation", "scores", target])
    src, tgt = pair.split("-")
    out = pd.DataFrame({
        "id": frame["index"].astype(str), "source": frame["original"], "translation": frame["translation"],
        "human": frame[target], "ratings": frame["scores"].map(parse_ratings),
        "source_lang": _LANGS.get(src, src), "target_lang": _LANGS.get(tgt, tgt),
    })
    rng = (0.0, 100.0) if target == "mean" else None
    return make_dataset(f"mtqe-{pair}", _sample(out, n, seed),
                        fields=["source", "translation", "source_lang", "target_lang"], human_range=rng)


def load_lcp(path: str | Path, kind: str = "single", split: str = "test", n: int | None = None,
             seed: int = 0) -> Dataset:
    file = Path(path) / f"lcp_{kind}_{split}.tsv"
    if not file.is_file():
        raise NumbiasError(f"CompLex file {file} does not exist (kind {kind!r}, split {split!r})")
    frame = read_table(file)
    _require(frame, file, ["id", "sentence", "token", "complexity"])
    out = pd.DataFrame({"id": frame["id"], "sentence": frame["sentence"], "token": frame["token"],
                        "human": frame["complexity"]})
    return make_dataset(f"lcp-{kind}", _sample(out, n, seed), fields=["sentence", "token"], human_range=(0.0, 1.0))


def load_stsb(path: str | Path, split: str = "test", n: int | None = None, seed: int = 0) -> Dataset:
    file = Path(path) if Path(path).is_file() else Path(path) / f"stsb-en-{split}.csv"
    frame = read_table(file, header=False)
    if frame.shape[1] != 3:
        raise NumbiasError(f"STS-B file {file} should have 3 columns (sentence1, sentence2, score)")
    frame.columns = ["sentence1", "sentence2", "human"]
    frame["id"] = np.arange(len(frame)).astype(str)
    return make_dataset("stsb", _sample(frame, n, seed), fields=["sentence1", "sentence2"], human_range=(0.0, 5.0))


def load_gecqe(path: str | Path, aspect: str = "grammaticality", n: int | None = None, seed: int = 0) -> Dataset:
    """TMU-GFM (five annotators' 0-4 ratings per aspect) or a user CSV with
    ``source``, ``correction`` and ``human`` columns."""
    columns = {"grammaticality": "grammer", "fluency": "fluency", "meaning": "meaning"}
    if aspect not in columns:
        raise NumbiasError(f"gecqe aspect must be one of {', '.join(columns)}, got {aspect!r}")
    file = Path(path) / "tmu-gfm-dataset.csv" if Path(path).is_dir() else Path(path)
    frame = read_table(file)
    if columns[aspect] in frame.columns:
        _require(frame, file, ["source", "output"])
        ratings = frame[columns[aspect]].map(parse_ratings)
        out = pd.DataFrame({"id": np.arange(len(frame)).astype(str), "source": frame["source"],
                            "correction": frame["output"], "ratings": ratings,
                            "human": ratings.map(lambda r: float(np.mean(r)) if r else np.nan)})
        out = out[out["ratings"].map(len) > 0]
        rng: tuple[float, float] | None = (0.0, 4.0)
    else:
        _require(frame, file, ["source", "correction", "human"])
        out = frame.assign(id=frame["id"] if "id" in frame else np.arange(len(frame)).astype(str))
        rng = None
    return make_dataset(f"gecqe-{aspect}", _sample(out, n, seed), fields=["source", "correction"], human_range=rng)


def _require(frame: pd.DataFrame, file: Path, cols: list[str]) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise NumbiasError(f"{file}: missing column(s) {', '.join(map(repr, missing))}")


_LANGS = {"en": "English", "de": "German", "zh": "Chinese", "et": "Estonian", "ne": "Nepali",
          "ro": "Romanian", "ru": "Russian", "si": "Sinhala"}

_ASK = "Reply with a single whole number from {lo} to {hi} and nothing else."

# Instructions come first and the item last, so consecutive prompts share a long
# prefix and the backend re-reads only the item's own tokens.
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("vader", "Word sentiment (VADER lexicon, 10 raters, -4..4)",
             PromptTemplate("Rate the feeling an English word carries, from {lo} (extremely negative) through "
                            "the middle (neutral) to {hi} (extremely positive). " + _ASK + "\nWord: {word}"),
             (-4.0, 4.0), 9, "the vaderSentiment package (vader_lexicon.txt)", load_vader, False),
        Task("simlex", "Word-pair similarity (SimLex-999, 0..10)",
             PromptTemplate("Rate how similar in meaning two English words are, from {lo} (completely "
                            "unrelated) to {hi} (the same meaning). " + _ASK + "\nWords: {word1}, {word2}"),
             (0.0, 10.0), None, "the gensim package (test/test_data/simlex999.txt)", load_simlex, False),
        Task("mtqe", "MT quality estimation (MLQE-PE direct assessments, 0..100)",
             PromptTemplate("Rate the quality of a machine translation: how well it keeps the meaning of the "
                            "source and how naturally it reads, from {lo} (useless) to {hi} (perfect). " + _ASK
                            + "\n{source_lang} source: {source}\n{target_lang} translation: {translation}"),
             (0.0, 100.0), None, "github.com/sheffieldnlp/mlqe-pe (data/direct-assessments)", load_mtqe, True),
        Task("lcp", "Lexical complexity (CompLex, SemEval-2021 task 1, 0..1)",
             PromptTemplate("Rate how hard a word is to understand in the sentence it appears in, from {lo} "
                            "(very easy) to {hi} (very difficult). " + _ASK
                            + "\nSentence: {sentence}\nWord: {token}"),
             (0.0, 1.0), 5, "github.com/MMU-TDMLab/CompLex", load_lcp, True),
        Task("stsb", "Semantic textual similarity (STS benchmark, 0..5)",
             PromptTemplate("Rate how close in meaning two sentences are, from {lo} (unrelated) to {hi} "
                            "(equivalent). " + _ASK + "\nSentence A: {sentence1}\nSentence B: {sentence2}"),
             (0.0, 5.0), 6, "github.com/PhilipMay/stsb-multi-mt (English originals)", load_stsb, True),
        Task("gecqe", "Grammatical error correction quality (TMU-GFM, 0..4)",
             PromptTemplate("A grammatical error correction system rewrote a learner's sentence. Rate how "
                            "grammatical the rewritten sentence is, from {lo} (full of errors) to {hi} "
                            "(flawless). " + _ASK + "\nLearner: {source}\nRewritten: {correction}"),
             (0.0, 4.0), 5, "github.com/tmu-nlp/TMU-GFM-Dataset", load_gecqe, True),
    )
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise NumbiasError(f"unknown task {name!r} (known: {', '.join(TASKS)})") from None
