"""The report: its verdict agrees with the tables, ``numbias report DIR`` rebuilds it
from the store alone, and, in a real headless Chromium at 1280 px, the pages of a
small run, align and mitigate fit the window, log no error, draw every figure, sort
on a click, filter, and show a ``<script>`` in an item as text.

The browser test skips when Chromium is absent, unless ``NUMBIAS_REQUIRE_BROWSER=1``
(CI). Screenshots go to each results folder's ``screenshots/`` and, when
``NUMBIAS_SCREENSHOTS`` names a folder, there too."""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import numbias
import numbias.judge.judging as judge_module
from browser import Browser, find_chromium
from numbias.report.build import rebuild
from numbias.report.verdict import CHOICE_ROW, DEFAULT_ROW, mitigate_verdicts, study_verdicts
from numbias.util.fmt import fmt_num

XSS = "<script>window.__pwned = 1</script> & <b>bold</b>"
TEMPLATE = "Rate the item from {lo} to {hi}.\nItem: {word}"


numbias.register_backend("plugin-reader", "plugin_judge:reader", replace=True)
"""Registered, as a results folder may name only registered backends (never module:attr)."""


def _judge(name: str, bias: float) -> dict:
    return {"model": name, "backend": "plugin-reader", "options": {"bias": bias}}


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, Path]]:
    """A small run, align and mitigate on 60 rated items (one of them hostile text),
    each written to its results folder."""
    root = tmp_path_factory.mktemp("report")
    words = [f"word{k}" for k in range(60)]
    words[7] = XSS
    pd.DataFrame({"id": [f"i{k}" for k in range(60)], "word": words, "stars": [k % 5 + 1 for k in range(60)]}).to_csv(
        root / "items.csv", index=False
    )
    task = {"file": str(root / "items.csv"), "human": "stars", "human_range": [1, 5], "id": "id", "template": TEMPLATE}
    common = {"tasks": [task], "scales": ["0-9", "1-5"], "bootstrap": 50}
    run = numbias.run({**common, "judges": [_judge("aligned", 5.0)], "out": str(root / "run")})
    long = {
        "base": {**_judge("base", 0.0), "label": "gemma3-270m-base"},  # the default pair's names, and the
        "aligned": {**_judge("aligned", 5.0), "label": "smollm2-135m-instruct"},
    }  # sampled rows: the widest page
    align = numbias.align(
        {
            **common,
            "pairs": [long],
            "extra_aligned": [{**_judge("aligned", 3.0), "label": "qwen2.5-coder-0.5b-instruct"}],
            "sampling": {"n": 3},
            "simulations": 10,
            "out": str(root / "align"),
        }
    )
    mitigate = numbias.mitigate(
        {
            **common,
            "judges": [_judge("aligned", 5.0)],
            "dev": 30,
            "resamples": 3,
            "mitigations": ["none", "isotonic"],
            "temperatures": [0.7, 1.0],
            "label_draws": 2,
            "label_sizes": [10, 20],
            "out": str(root / "mitigate"),
        }
    )
    return {kind: (res, numbias.write(res)) for kind, res in (("run", run), ("align", align), ("mitigate", mitigate))}


def test_the_verdict_reads_the_summary_table(studies) -> None:
    results, folder = studies["run"]
    summary = results.summary.set_index(["judge", "task", "scale", "rule"])
    (verdict,) = study_verdicts(results)
    assert (verdict.scale, verdict.rule) == ("0-9", "greedy")
    row = summary.loc[("aligned", "items", "0-9", "greedy")]
    assert (verdict.mode, verdict.share) == (row["mode"], row["mode_share"])
    assert (verdict.kurtosis, verdict.human_kurtosis) == (row["kurtosis"], row["human_kurtosis"])
    assert (verdict.answer.value, verdict.answer.low, verdict.answer.high) == tuple(
        row[["pearson", "pearson_low", "pearson_high"]]
    )
    assert verdict.expected.value == summary.loc[("aligned", "items", "0-9", "expected"), "pearson"]
    assert verdict.best.value == results.summary["pearson"].max()
    human = (np.array([k % 5 for k in range(60)]) / 4 * 9).round()  # the humans' stars on 0-9
    assert verdict.human_share == pytest.approx(np.mean(human == verdict.mode))
    assert verdict.mode == 8 and verdict.share > 2 * verdict.human_share and verdict.level == "strong"
    page = (folder / "report.html").read_text()
    for _, value, detail in verdict.tiles():  # the headline shows those very figures
        assert f"<b>{value}</b><span>{detail}</span>" in page
    assert fmt_num(row["pearson"]) == verdict.tiles()[2][1]


def test_the_align_page_shows_changes_with_cis_and_adjusted_p(studies) -> None:
    """Every comparison of the align page carries Δ [95% CI] and a Holm-adjusted p, and
    says what was resampled; the lead counts the moves the adjusted tests confirm."""
    results, folder = studies["align"]
    page = (folder / "report.html").read_text()
    rows = len(results.table)  # one Holm family per measure, over the table's rows
    assert "Δ kurtosis [95% CI]" in page and "Δ r p (adjusted)" in page
    assert f"items resampled in pairs (bootstrap); p adjusted by Holm over each measure&#x27;s {rows} rows" in page
    assert "with a Holm-adjusted p below 0.05" in page and "Spread and format, base and aligned" in page
    run_page = (studies["run"][1] / "report.html").read_text()
    assert "<h3>Spread and format</h3>" in run_page and ">SD ratio<" in run_page


def test_the_mitigation_verdict_reads_the_mitigation_table(studies) -> None:
    results, folder = studies["mitigate"]
    (verdict,) = mitigate_verdicts(results)
    rows = results.table.set_index("row")
    assert verdict.default.value == rows.loc[DEFAULT_ROW, "pearson"]
    assert (verdict.choice.value, verdict.choice.low) == tuple(rows.loc[CHOICE_ROW, ["pearson", "pearson_low"]])
    assert verdict.gain.delta == pytest.approx(rows.loc[CHOICE_ROW, "pearson"] - rows.loc[DEFAULT_ROW, "pearson"])
    assert verdict.gain.low <= verdict.gain.delta <= verdict.gain.high
    assert (verdict.gain.delta, verdict.gain.p_adjusted) == tuple(rows.loc[CHOICE_ROW, ["Δ r", "p adjusted"]])
    assert verdict.chosen == rows.loc[CHOICE_ROW, "setting"] == results.comparisons[0].chosen[0].label
    selection = results.selection.iloc[0]
    assert verdict.nested == selection["nested estimate"]
    assert (verdict.dev_gain.delta, verdict.dev_gain.low) == (selection["dev Δ r"], selection["dev Δ r_low"])
    assert (verdict.call == "better") == bool(selection["recommended"])  # the badge follows the dev test
    # the label-free choice and the pre-specified rule are reported as what they are, each with its own change
    finding = verdict.finding()
    assert f"The label-free (entropy) choice, {selection['label-free choice']}, " in finding
    assert "pre-specified rule (0-9 · protocol · T=0.7 · ridge), fixed before any data" in finding
    free = rows.loc["label-free (entropy) choice"]
    assert (verdict.free_test.delta, verdict.free_test.p_adjusted) == (free["Δ r"], free["p adjusted"])
    page = (folder / "report.html").read_text()
    assert all(f"<b>{value}</b><span>{detail}</span>" in page for _, value, detail in verdict.tiles())
    assert f'<span class="badge {verdict.badge[0]}">{verdict.badge[1]}</span>' in page
    assert "p adjusted by Holm over the" in page and "Δ r vs default [95% CI]" in page


def test_every_dataset_text_is_escaped(studies) -> None:
    for _, folder in studies.values():
        page = (folder / "report.html").read_text()
        assert "<script>window" not in page and "<b>bold</b>" not in page
    run_page = (studies["run"][1] / "report.html").read_text()
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in run_page


HOSTILE = "<script>window.__pwned = 1</script>"
ESCAPED = "&lt;script&gt;window.__pwned = 1&lt;/script&gt;"


def test_a_label_from_the_user_is_text_wherever_the_page_shows_it(tmp_path: Path) -> None:
    """A task's label, a judge's label, an item's text and a system's name holding a
    ``<script>`` reach the page escaped: in the subtitle, the verdict's card, headings,
    tables, captions, chart labels and tooltips alike (the templates escape every value)."""
    words = [f"word{k}" for k in range(20)]
    words[3] = HOSTILE
    pd.DataFrame({"id": [f"i{k}" for k in range(20)], "word": words, "stars": [k % 5 + 1 for k in range(20)]}).to_csv(
        tmp_path / "items.csv", index=False
    )
    task = {
        "file": str(tmp_path / "items.csv"),
        "human": "stars",
        "human_range": [1, 5],
        "id": "id",
        "template": TEMPLATE,
        "label": f"task {HOSTILE}",
    }
    results = numbias.run(
        {
            "tasks": [task],
            "judges": [{**_judge("aligned", 5.0), "label": f"judge {HOSTILE}"}],
            "scales": ["0-9"],
            "rules": ["greedy", "expected"],
            "bootstrap": 20,
            "out": str(tmp_path / "run"),
        }
    )
    systems = pd.DataFrame(
        {
            "system": [f"A {HOSTILE}", "B"] * 20,
            "human": np.tile([2.0, 4.0], 20),
            "judge": np.tile([3.0, 3.5], 20) + np.linspace(0, 1, 40),
        }
    )
    compared = numbias.compare(
        systems, system_column="system", human="human", score="judge", human_range=(1, 5), n_boot=20
    )
    run_page = (numbias.write(results) / "report.html").read_text()
    compare_page = (numbias.write(compared, tmp_path / "compare") / "report.html").read_text()
    for page in (run_page, compare_page):
        assert "<script>window" not in page and page.count("<script>") == 1  # the page's own, at the end
    both = f"judge {ESCAPED} on task {ESCAPED}"
    for shown in (
        f'<p class="sub">{both} (20 items)',
        f'<div class="card"><h3>{both}<span class="badge',
        f"<h3>{both}</h3>",
        f"<h3>Largest disagreements: {both} (0-9 · greedy)</h3>",
        f"<h3>All items of task {ESCAPED}</h3>",
        f'<td class="t long">{ESCAPED}</td>',
        f'<div class="text">{ESCAPED}</div>',
        f"<title>judge {ESCAPED} · task {ESCAPED} · 0-9 · greedy",
    ):
        assert shown in run_page, shown
    for shown in (f'<td class="t">A {ESCAPED}</td>', f"<title>A {ESCAPED} · naive judge mean (biased)</title>"):
        assert shown in compare_page, shown


def test_the_templates_ship_with_the_package() -> None:
    """Every template the report draws with is package data, so an installed wheel has it."""
    report = Path(numbias.__file__).parent / "report"
    shipped = tomllib.loads((report.parents[2] / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    templates = [p.relative_to(report) for p in (report / "templates").iterdir()]
    assert templates and all(any(t.match(g) for g in shipped["numbias.report"]) for t in templates)


@pytest.mark.parametrize("kind", ["run", "align", "mitigate"])
def test_numbias_report_rebuilds_the_page_from_the_folder_alone(kind: str, studies, tmp_path, monkeypatch) -> None:
    """A copy of the folder without its store, its data file or any backend to start
    gives the same page: the distributions and items the folder holds are enough."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("rebuilding a report must not create a backend")

    _, folder = studies[kind]
    copy = tmp_path / kind
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("store.sqlite*", ".numbias*"))
    (copy / "report.html").unlink()
    (folder.parent / "items.csv").rename(folder.parent / "items.csv.away")
    monkeypatch.setattr(judge_module, "create_backend", refuse)
    try:
        assert rebuild(copy) == copy / "report.html"
    finally:
        (folder.parent / "items.csv.away").rename(folder.parent / "items.csv")
    assert (copy / "report.html").read_bytes() == (folder / "report.html").read_bytes()


@pytest.mark.parametrize("kind", ["run", "mitigate"])
def test_numbias_report_rebuilds_an_older_folder_from_its_store(kind: str, studies, tmp_path, monkeypatch) -> None:
    """A folder written before the distributions travelled with it is rebuilt from its store."""

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("rebuilding a report must not create a backend")

    _, folder = studies[kind]
    copy = tmp_path / kind
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("dists.csv.gz", ".numbias*"))
    (copy / "report.html").unlink()
    monkeypatch.setattr(judge_module, "create_backend", refuse)
    monkeypatch.chdir(folder.parent.parent)
    assert rebuild(copy) == copy / "report.html"
    assert (copy / "report.html").read_bytes() == (folder / "report.html").read_bytes()


def _cli(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    from numbias.cli import main

    monkeypatch.setattr(sys, "argv", ["numbias", *args])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_report_command_opens_and_refuses_in_one_line(studies, tmp_path, monkeypatch, capsys) -> None:
    opened = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    folder = studies["run"][1]
    code, out, _ = _cli(["report", str(folder), "--open"], monkeypatch, capsys)
    assert code == 0 and "report.html" in out and opened == [(folder / "report.html").resolve().as_uri()]
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "config.yaml").write_text("judges: [oops\n")
    broken = tmp_path / "no-store"
    shutil.copytree(folder, broken)
    (broken / "store.sqlite").unlink()
    (broken / "dists.csv.gz").unlink()
    bare = tmp_path / "no-items"
    shutil.copytree(broken, bare)
    (bare / "items.csv").unlink()
    for args, fragment in (
        (["report", str(tmp_path / "nope")], "results folder"),
        (["report", str(tmp_path)], "holds no config.yaml, align-config.yaml, mitigate-config.yaml or compare.json"),
        (["report", str(copy)], f"config file {copy / 'config.yaml'} is not valid YAML (line 2"),
        (
            ["report", str(broken)],
            f"holds no dists.csv.gz, only per-item scores (items.csv), and its store "
            f"{broken / 'store.sqlite'} does not exist: a report is drawn from",
        ),
        (
            ["report", str(bare)],
            f"holds no dists.csv.gz and its store {bare / 'store.sqlite'} does not exist: a "
            "report is drawn from the distributions (or the store its study wrote)",
        ),
    ):
        code, _, err = _cli(args, monkeypatch, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and fragment in lines[0] and "Traceback" not in err, err


def _browser() -> str:
    executable = find_chromium()
    if executable is None:
        if os.environ.get("NUMBIAS_REQUIRE_BROWSER") == "1":
            pytest.fail("NUMBIAS_REQUIRE_BROWSER=1 but no chromium is installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return executable


LAYOUT = """(() => {
  const tw = [...document.querySelectorAll('.tw')].filter(w => w.scrollWidth > w.clientWidth + 1);
  const svgs = [...document.querySelectorAll('svg')];
  return {width: document.documentElement.scrollWidth, tablesOver: tw.length,
          images: document.images.length,
          broken: [...document.images].filter(i => !i.complete || !i.naturalWidth).length,
          svgs: svgs.length, blank: svgs.filter(s => !(s.getBoundingClientRect().width > 0)).length,
          pwned: typeof window.__pwned !== 'undefined'};
})()"""

SORT = """(() => {
  const table = document.querySelector('#summary table');
  const column = [...table.tHead.rows[0].cells].findIndex(th => th.textContent.startsWith('Pearson'));
  const read = () => [...table.tBodies[0].rows].map(r => parseFloat(r.cells[column].dataset.v));
  const before = read();
  table.tHead.rows[0].cells[column].click();
  const up = read();
  table.tHead.rows[0].cells[column].click();
  return {before, up, down: read()};
})()"""

FILTER = """(() => {
  const box = document.querySelector('#items .tbl input');
  box.value = 'word1'; box.dispatchEvent(new Event('input'));
  const rows = [...box.closest('.tbl').querySelectorAll('tbody tr')];
  return {shown: rows.filter(r => !r.hidden).length, total: rows.length};
})()"""


@pytest.mark.browser
@pytest.mark.parametrize("kind", ["run", "align", "mitigate"])
def test_the_report_in_a_browser(kind: str, studies) -> None:
    _, folder = studies[kind]
    with Browser(_browser(), width=1280) as browser:
        browser.open(folder / "report.html")
        layout = browser.js(LAYOUT)
        assert browser.console_errors() == []
        assert layout["width"] <= 1280 and layout["tablesOver"] == 0, layout
        assert layout["broken"] == 0 and layout["svgs"] > 3 and layout["blank"] == 0, layout
        assert not layout["pwned"]
        browser.screenshot(folder / "screenshots" / f"{kind}-1280.png")
        if kind == "run":
            sort = browser.js(SORT)
            assert sort["up"] == sorted(sort["before"]) and sort["down"] == sorted(sort["before"], reverse=True)
            assert sort["up"] != sort["before"] or sort["down"] != sort["before"]
            assert XSS in browser.js("document.body.innerText")  # the item's text, shown as text
            assert browser.js(FILTER) == {"shown": 11, "total": 60}  # word1, word10..word19
            assert browser.console_errors() == []
    if target := os.environ.get("NUMBIAS_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / "screenshots" / f"{kind}-1280.png", Path(target) / f"{kind}-1280.png")
