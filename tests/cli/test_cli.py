"""The CLI beyond the bad-input matrix (tests/cli/test_bad_input.py): progress lines, a
truncated GGUF, the judge registry, align and correlate, Parquet with no reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from numbias.models.catalog import JUDGES, JudgeSpec
from numbias.util.errors import NumbiasError


def numbias(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "numbias", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]


def test_progress_without_a_terminal_goes_to_stderr_as_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from numbias.cli import log_progress

    with log_progress("judge · vader · 0-9", 3, every=0.0) as advance:
        for _ in range(3):
            advance(1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" (")[0] for line in lines[:3]] == [f"judge · vader · 0-9: {k}/3" for k in (1, 2, 3)]
    assert lines[3].startswith("judge · vader · 0-9: 3/3 done in ")
    with pytest.raises(NumbiasError), log_progress("x", 2, every=3600.0) as advance:
        advance(1)
        raise NumbiasError("boom")
    assert capsys.readouterr().err == ""  # nothing before the error line, no "done" after a failure


@pytest.mark.subprocess
def test_truncated_gguf(tmp_path: Path) -> None:
    truncated = tmp_path / "trunc.gguf"
    truncated.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 20)
    result = numbias("score", "--model", str(truncated), "--out", str(tmp_path))
    assert_one_line_error(result, "could not load")


def _spec(tmp_path: Path, **changes) -> JudgeSpec:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF0000")
    base = dict(
        name="t",
        description="",
        kind="instruct",
        licence="",
        size_bytes=8,
        sha256="0" * 64,
        packages=("numpy",),
        install="pip install numpy",
        chunks=lambda: [model],
        assembled=False,
    )
    return JudgeSpec(**{**base, **changes})


def test_registry_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMBIAS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(NumbiasError, match="expected 0000"):
        _spec(tmp_path).path()
    with pytest.raises(NumbiasError, match="pip install not-a-real-pkg"):
        _spec(tmp_path, packages=("not-a-real-pkg==1",), install="pip install not-a-real-pkg==1").path()
    with pytest.raises(NumbiasError, match="is missing"):
        _spec(tmp_path, chunks=lambda: [tmp_path / "gone.bin"]).path()
    assert set(JUDGES) == {"smollm2-135m-instruct", "gemma3-270m-base", "qwen2.5-coder-0.5b-instruct"}


def test_bad_calibrated_judge_file(tmp_path: Path) -> None:
    from numbias.studies.calibrated import CalibratedJudge

    bad = tmp_path / "judge.json"
    bad.write_text('{"format": "numbias.calibrated-judge/9"}')
    with pytest.raises(NumbiasError, match="not a saved numbias judge"):
        CalibratedJudge.load(bad)


@pytest.mark.subprocess
@pytest.mark.model
@pytest.mark.usefixtures("embedded_judges")
def test_align_on_the_embedded_pair(tmp_path: Path) -> None:
    """The issue's "done when": `numbias align` on the embedded pair (plus Qwen) writes its
    tables and its report section, with the sampled protocol beside its exact expectation."""
    result = numbias("align", "--task", "vader", "--option", "n=16", "--scale", "0-9", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "cross-family, cross-size contrast" in result.stdout
    assert "aligned vs base (paper protocol" in result.stdout, result.stdout
    table = pd.read_csv(tmp_path / "alignment.csv")
    assert set(table["aligned"]) == {"smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"}
    assert set(table["base"]) == {"gemma3-270m-base"}
    assert table["scoring"].str.startswith("paper protocol sampled").sum() == 2
    assert table[["base kurtosis", "aligned kurtosis", "base r", "aligned r"]].notna().all().all()
    assert len(pd.read_csv(tmp_path / "simulated_kurtosis.csv")) == 3
    page = (tmp_path / "report.html").read_text()
    for section in (
        "Alignment study: base vs aligned",
        "Aligned against base, setting by setting",
        "Simulated kurtosis of the n-sample protocol mean",
        "Base vs aligned histograms",
    ):
        assert section in page


@pytest.mark.subprocess
def test_correlate_pools_results_folders(tmp_path: Path) -> None:
    folder = Path(__file__).resolve().parents[2] / "docs" / "results" / "align"
    result = numbias("correlate", str(folder))
    assert result.returncode == 0, result.stderr
    assert "over 6 settings (protocol): 0.72 [-0.95, 0.99]" in result.stdout, result.stdout
    twice = numbias("correlate", str(folder), str(folder))
    assert "over 12 settings (protocol): 0.72" in twice.stdout, twice.stdout
    peaked = "more peaked in 2 of 4 settings (0 with a Holm-adjusted p below 0.05), less accurate in 2 (1 with"
    assert peaked in " ".join(result.stdout.split()), result.stdout
    plain = tmp_path / "plain"  # a `numbias run` folder: no alignment.csv
    plain.mkdir()
    (plain / "summary.json").write_bytes((folder / "summary.json").read_bytes())
    mixed = numbias("correlate", str(folder), str(plain))
    assert mixed.returncode == 0 and f"no paired view: {plain} has no alignment.csv" in mixed.stdout, mixed.stdout


@pytest.mark.subprocess
def test_parquet_without_a_reader(tmp_path: Path) -> None:
    base = ["run", "--template", "Rate {text} from {lo} to {hi}", "--human", "score", "--out", str(tmp_path / "o")]
    pd.DataFrame({"text": ["a", "b"], "score": [1, 2]}).to_parquet(tmp_path / "items.parquet")
    no_reader = (
        "import sys; sys.modules['pyarrow'] = None; sys.modules['fastparquet'] = None; "
        "from numbias.cli import main; sys.argv = ['numbias'] + sys.argv[1:]; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", no_reader, *base, "--data", "items.parquet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_one_line_error(result, "reading items.parquet needs pyarrow: pip install 'numbias[parquet]'")


START_PROBE = """import sys
sys.argv = ["numbias", *sys.argv[1:]]
import numbias
if sys.argv[1:]:
    from numbias.__main__ import launch
    try:
        launch()
    except SystemExit:
        pass
sys.stderr.write(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
"""
"""Runs ``import numbias`` (and, given arguments, the command line) and writes the top
packages it loaded on stderr."""
HEAVY = {"numpy", "pandas", "scipy", "sklearn", "filelock", "jinja2", "yaml", "threadpoolctl", "torch"}
"""Libraries a command reads only when it runs (pydantic is not one: typer parses options with it)."""


@pytest.mark.subprocess
@pytest.mark.parametrize("args", [[], ["--help"], ["models", "--help"]], ids=["import", "help", "models-help"])
def test_the_start_reads_no_numerical_stack(args: list[str]) -> None:
    """``import numbias`` and ``--help`` read none of the heavy libraries, so every
    command starts fast; the time itself is a benchmark (benchmarks/bench_start.py)."""
    done = subprocess.run([sys.executable, "-c", START_PROBE, *args], capture_output=True, text=True, timeout=120)
    loaded = set(done.stderr.split())
    assert "numbias" in loaded, done.stderr
    assert not loaded & HEAVY, f"loaded at start: {sorted(loaded & HEAVY)}"
