"""The CLI on bad input: one line on stderr naming the problem, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from numbias.errors import NumbiasError
from numbias.models import JUDGES, JudgeSpec


def numbias(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "numbias", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=600)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["score", "--model", "no-such-judge"], "unknown judge 'no-such-judge'"),
        (["score", "--model", "/nope/model.gguf"], "does not exist"),
        (["score", "--range", "9-0"], "lo must be below hi"),
        (["score", "--range", "1.5-9"], "not of the form LO-HI"),
        (["score", "--task", "nope"], "unknown task 'nope'"),
        (["score", "--task", "stsb", "--data", "/nope/stsb.csv"], "does not exist"),
        (["score", "--template", "Rate {missing} from {lo} to {hi}"], "field(s) ['missing'] not in the data"),
        (["run", "--rule", "vibes"], "unknown rule"),
        (["mitigate", "--scale", "1-5"], "paper's default"),
        (["mitigate", "--criterion", "vibes"], "criterion must be"),
        (["align", "--base", "gemma3-270m-base"], "one --aligned per --base"),
        (["mitigate", "--judge", "smollm2-135m-instruct", "--task", "vader", "--option", "n=20", "--dev", "20"],
         "leaves no test items"),
        (["mitigate", "--option", "n=20"], "--option applies to the tasks given with --task or --data"),
        (["correlate", "/nope"], "cannot read /nope/summary.json"),
    ],
)
def test_bad_input(args: list[str], fragment: str, tmp_path: Path) -> None:
    assert_one_line_error(numbias(*args, "--out", str(tmp_path / "o")) if args[0] == "score"
                          else numbias(*args), fragment)


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


def test_corrupt_gguf(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model at all")
    assert_one_line_error(numbias("score", "--model", str(junk), "--out", str(tmp_path)), "not a GGUF file")
    truncated = tmp_path / "trunc.gguf"
    truncated.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 20)
    result = numbias("score", "--model", str(truncated), "--out", str(tmp_path))
    assert_one_line_error(result, "could not load")


def test_bad_yaml_and_unknown_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [vader\n")
    assert_one_line_error(numbias("run", str(bad)), "is not valid YAML (line 2, column 1)")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("tasks: [vader]\ntemperature: 3\n")
    assert_one_line_error(numbias("run", str(unknown)), "unknown config key 'temperature'")


def _spec(tmp_path: Path, **changes) -> JudgeSpec:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF0000")
    base = dict(name="t", description="", kind="instruct", licence="", size_bytes=8, sha256="0" * 64,
                packages=("numpy",), install="pip install numpy", chunks=lambda: [model], assembled=False)
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
    from numbias.calibrated import CalibratedJudge

    bad = tmp_path / "judge.json"
    bad.write_text('{"format": "numbias.calibrated-judge/9"}')
    with pytest.raises(NumbiasError, match="not a saved numbias judge"):
        CalibratedJudge.load(bad)


@pytest.mark.parametrize(
    ("judge", "fragment"),
    [
        ("{model: smollm2-135m-instruct, backend: transformers, options: {prune: 0.001}}", "has no option(s) ['prune']"),
        ("{model: smollm2-135m-instruct, options: {top_k: 5}}", "backend 'llama.cpp' has no option(s) ['top_k']"),
        ("{model: smollm2-135m-instruct, backend: vllm-direct}", "unknown backend 'vllm-direct'"),
    ],
)
def test_bad_backend_in_config(judge: str, fragment: str, tmp_path: Path) -> None:
    config = tmp_path / "study.yaml"
    config.write_text(f"judges: [{judge}]\ntasks: [{{name: vader, options: {{n: 5}}}}]\nout: {tmp_path / 'o'}\n")
    assert_one_line_error(numbias("run", str(config)), fragment)


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
    for section in ("Alignment study: base vs aligned", "Aligned against base, setting by setting",
                    "Simulated kurtosis of the n-sample protocol mean", "Base vs aligned histograms"):
        assert section in page


def test_correlate_pools_results_folders(tmp_path: Path) -> None:
    part1 = Path(__file__).resolve().parents[1] / "docs" / "results" / "align-part1"
    result = numbias("correlate", str(part1))
    assert result.returncode == 0, result.stderr
    assert "over 18 settings (protocol): -0.04" in result.stdout
    twice = numbias("correlate", str(part1), str(part1))
    assert "over 36 settings (protocol): -0.04" in twice.stdout, twice.stdout
    assert "more peaked in 8 of 12 settings, less accurate in 3, both in 2" in result.stdout, result.stdout
    plain = tmp_path / "plain"  # a `numbias run` folder: no alignment.csv
    plain.mkdir()
    (plain / "summary.json").write_bytes((part1 / "summary.json").read_bytes())
    mixed = numbias("correlate", str(part1), str(plain))
    assert mixed.returncode == 0 and f"no paired view: {plain} has no alignment.csv" in mixed.stdout, mixed.stdout
    both = numbias("correlate", str(part1), str(part1.parent / "align-part2"))
    assert "more peaked in 24 of 28 settings, less accurate in 16, both in 15" in both.stdout, both.stdout


GOOD = "id,text,ctx,score\na,hello,x,3\nb,world,y,4\nc,again,z,5\n"
TEMPLATE = "Rate {text} in {ctx} from {lo} to {hi}"


@pytest.mark.parametrize(
    ("name", "content", "extra", "fragment"),
    [
        ("items.csv", GOOD, ["--human", "overall"], "items.csv: no column 'overall' (columns: id, text, ctx, score)"),
        ("items.csv", GOOD, ["--template", "Rate {nope} from {lo} to {hi}"], "items.csv: template placeholder {nope}"),
        ("items.csv", GOOD, ["--template", "Rate {text from {lo} to {hi}"], "items.csv: prompt template is malformed"),
        ("items.csv", GOOD, ["--template", "Rate } from {lo} to {hi}"], "items.csv: prompt template is malformed"),
        ("items.csv", GOOD, ["--template", "@missing.txt"], "rubric file missing.txt does not exist"),
        ("items.csv", GOOD.replace(",4\n", ",abc\n"), [], "items.csv: column 'score' of row id 'b' is 'abc', not a number"),
        ("items.csv", GOOD.replace(",4\n", ",NaN\n"), [], "column 'score' of row id 'b' is 'NaN', not a number"),
        ("items.csv", GOOD.replace(",4\n", ",inf\n"), [], "column 'score' of row id 'b' is 'inf', not a finite number"),
        ("items.csv", GOOD.replace(",4\n", ",\n"), [], "items.csv: column 'score' of row id 'b' is empty"),
        ("items.csv", GOOD.replace(",4\n", ",9\n"), ["--human-range", "1-5"],
         "column 'score' of row id 'b' is 9, outside the human range 1-5"),
        ("items.csv", GOOD.replace("b,", "a,"), [], "items.csv: duplicate id(s) in column 'id': 'a'"),
        ("items.csv", GOOD.replace("world", ""), [], "items.csv: column 'text' of row id 'b' is empty"),
        ("items.csv", "", [], "data file items.csv is empty"),
        ("items.csv", "id,text,ctx,score\n", [], "data file items.csv has a header but no rows"),
        ("items.jsonl", '{"id": "a", "text": "t", "ctx": "c", "score": 1}\n{"id": "b", oops\n', [],
         "data file items.jsonl line 2 is not valid JSON"),
        ("items.csv", GOOD, ["--human-range", "5-1"], "--human-range 5-1: LO must be below HI"),
        ("items.csv", GOOD, ["--template", "Rate from {lo} to {hi}"], "the template uses no item field"),
        ("items.csv", GOOD, ["--truncate", "score"], "truncate: 'score' is not a field of the template"),
        ("items.csv", GOOD, ["--option", "pair=ro-en"], "--option pair: a data file takes only n and seed"),
        ("items.csv", GOOD, ["--option", "n=0"], "n: Input should be greater than or equal to 1"),
    ],
)
@pytest.mark.parametrize("command", ["run", "score"])
def test_bad_data_files(tmp_path: Path, command: str, name: str, content: str, extra: list[str],
                        fragment: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    flags = {"--template": TEMPLATE, "--human": "score", "--id": "id"}
    for i in range(0, len(extra) - 1, 2):
        flags[extra[i]] = extra[i + 1]
    args = [x for pair in flags.items() for x in pair]
    result = numbias(command, "--data", name, *args, "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert_one_line_error(result, fragment)


def test_bad_data_files_of_other_kinds(tmp_path: Path) -> None:
    (tmp_path / "latin.csv").write_bytes("id,text,score\n1,caf\xe9,1\n".encode("latin-1"))
    base = ["run", "--template", "Rate {text} from {lo} to {hi}", "--human", "score", "--out", str(tmp_path / "o")]
    assert_one_line_error(numbias(*base, "--data", "latin.csv", cwd=tmp_path), "latin.csv is not UTF-8 text")
    assert_one_line_error(numbias(*base, "--data", "nope.csv", cwd=tmp_path), "data file nope.csv does not exist")
    assert_one_line_error(numbias("run", "--task", "vader", "--data", "latin.csv", cwd=tmp_path),
                          "task 'vader' reads no data file")
    assert_one_line_error(numbias("run", "--task", "vader", "--human", "score", cwd=tmp_path),
                          "--human applies to data files, not to the registered task(s) vader")
    assert_one_line_error(numbias("run", "--template", "{x}", cwd=tmp_path),
                          "--template applies to the tasks given with --task or --data")
    assert_one_line_error(numbias("run", "--data", "latin.csv", "--human", "score", cwd=tmp_path),
                          "data file latin.csv needs a template")
    pd.DataFrame({"text": ["a", "b"], "score": [1, 2]}).to_parquet(tmp_path / "items.parquet")
    no_reader = ("import sys; sys.modules['pyarrow'] = None; sys.modules['fastparquet'] = None; "
                 "from numbias.cli import main; sys.argv = ['numbias'] + sys.argv[1:]; main()")
    result = subprocess.run([sys.executable, "-c", no_reader, *base, "--data", "items.parquet"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert_one_line_error(result, "reading items.parquet needs pyarrow: pip install 'numbias[parquet]'")
