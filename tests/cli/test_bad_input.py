"""The bad-input matrix: every kind of malformed command, option, config, data file,
judge and output path, each ending in one line on stderr that names the problem, exit
2, no traceback. Cases run in-process (the CLI's ``main``) in a folder holding the
files they name."""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

GOOD = "id,text,ctx,score\na,hello,x,3\nb,world,y,4\nc,again,z,5\n"
TEMPLATE = "Rate {text} in {ctx} from {lo} to {hi}"
FAKE = {"model": "toy", "backend": "plugin_judge:make"}
FILE_TASK = {"file": "items.csv", "human": "score", "template": TEMPLATE}


OUTPUTS = "model,dialogue,rating,judge\n" + "".join(
    f"{m},d{k},{'' if k > 2 else (k + i) % 5 + 1},{(k * 3 + i) % 7 + 2}\n"
    for k in range(6)
    for i, m in enumerate("ABC")
)
"""Three systems on six dialogues, the first three dialogues labelled (1-5), judge scores 2-8."""
COMPARE = ["compare", "--score-column", "judge", "--system-column", "model", "--human", "rating", "--out", "o"]


def _yaml(**config: object) -> str:
    return json.dumps(config)  # JSON is YAML


FILES: dict[str, str | bytes] = {
    "items.csv": GOOD,
    "many.csv": "id,text,ctx,score\n" + "".join(f"i{k},t{k},c{k},{k % 5}\n" for k in range(30)),
    "latin.csv": "id,text,score\n1,caf\xe9,1\n".encode("latin-1"),
    "afile": "x",
    "junk.gguf": b"not a model at all",
    "bad.yaml": "tasks: [vader\n",
    "tabs.yaml": "tasks:\n  - vader\n\t- simlex\n",
    "unknown.yaml": "tasks: [vader]\ntemperature: 3\n",
    "empty.yaml": "judges: []\ntasks: []\nscales: []\nrules: []\n",
    "list.yaml": "- vader\n",
    "bad.json": '{"format": "numbias.calibrated-judge/9"}',
    "inf.csv": "id,word,stars\na,good,inf\n",
    "two-judges.yaml": _yaml(judges=[FAKE, {**FAKE, "options": {"delay": 0.1}}], tasks=[FILE_TASK]),
    "two-labels.yaml": _yaml(judges=[{**FAKE, "label": "j"}, {"model": "other", "label": "j"}], tasks=[FILE_TASK]),
    "two-tasks.yaml": _yaml(judges=[FAKE], tasks=[FILE_TASK, FILE_TASK]),
    "pairs.yaml": _yaml(
        pairs=[
            {"base": "gemma3-270m-base", "aligned": "smollm2-135m-instruct"},
            {"base": {"model": "x.gguf", "label": "gemma3-270m-base"}, "aligned": "y.gguf"},
        ]
    ),
    "typed.yaml": _yaml(judges=[{**FAKE, "options": {"delay": "fast"}}], tasks=[FILE_TASK]),
    "n_ctx.yaml": _yaml(judges=[{"model": "smollm2-135m-instruct", "options": {"n_ctx": "big"}}], tasks=["vader"]),
    "chat.yaml": _yaml(judges=[{**FAKE, "options": {"chat": "perhaps"}}], tasks=[FILE_TASK]),
    "prune.yaml": _yaml(
        judges=[{"model": "smollm2-135m-instruct", "backend": "transformers", "options": {"prune": 0.001}}],
        tasks=["vader"],
    ),
    "top_k.yaml": _yaml(judges=[{"model": "smollm2-135m-instruct", "options": {"top_k": 5}}], tasks=["vader"]),
    "vllm.yaml": _yaml(judges=[{"model": "m", "backend": "vllm-direct"}], tasks=["vader"]),
    "nomod.yaml": _yaml(judges=[{"model": "m", "backend": "no_such_module:make"}], tasks=["vader"]),
    "badtask.yaml": _yaml(judges=[FAKE], tasks=[{"name": "vader", "options": {"n": "many"}}]),
    "modes.yaml": _yaml(modes=["vibes"]),
    "sampling.yaml": _yaml(sampling={"n": 0}),
    # outputs, stores and servers
    "out-empty.yaml": _yaml(judges=[FAKE], tasks=[FILE_TASK], out=""),
    "spec.yaml": _yaml(judges=[FAKE], tasks=[{**FILE_TASK, "template": "Rate {text:d} from {lo} to {hi}"}], out="o"),
    "conversion.yaml": _yaml(judges=[FAKE], tasks=[{**FILE_TASK, "template": "Rate {text!z} from {lo} to {hi}"}]),
    "scales-twice.yaml": _yaml(judges=[FAKE], tasks=[FILE_TASK], scales=["1-5", "0-9", "1..5"]),
    "no-url.yaml": _yaml(judges=[{"model": "m", "backend": "openai"}], tasks=[FILE_TASK], out="o"),
    "mitigate.yaml": _yaml(
        judges=[FAKE],
        tasks=[{**FILE_TASK, "file": "many.csv"}],
        dev=10,
        out="o",
        sample=False,
        resamples=0,
        label_draws=0,
    ),
    "sub/keep.txt": "a folder that is there",
    # numbias compare
    "outputs.csv": OUTPUTS,
    "nosys.csv": OUTPUTS.replace("\nB,d1,", "\n,d1,"),
    "onelabel.csv": OUTPUTS.replace("B,d0,2,", "B,d0,,").replace("B,d1,3,", "B,d1,,"),
    "outside.csv": OUTPUTS.replace("A,d0,1,", "A,d0,7,"),
}

DISTS_HEADER = (
    "judge,task,scale,mode,kind,temperature,id,human,p0,p1,below,above,other,n_samples,cut,next_token_entropy\n"
)
# a folder read back may name only registered backends: conftest registers the fake as plugin-judge
MITIGATED = _yaml(judges=[{"model": "toy", "backend": "plugin-judge"}], tasks=[FILE_TASK], dev=10, out="o")
FILES |= {  # results folders to re-analyse (--from) or rebuild (report) from their files
    "nodists/mitigate-config.yaml": MITIGATED,
    "wrongcols/mitigate-config.yaml": MITIGATED,
    "wrongcols/dists.csv.gz": gzip.compress(b"a,b\n1,2\n", mtime=0),
    "notgz/mitigate-config.yaml": MITIGATED,
    "notgz/dists.csv.gz": b"judge,task\x00\xff\xfe not gzip",
    "badsum/mitigate-config.yaml": MITIGATED,
    "badsum/dists.csv.gz": gzip.compress(
        (DISTS_HEADER + "j,t,0-1,exact,item,1,a,1,0.5,0.9,0,0,0,,,\n").encode(), mtime=0
    ),
    "nodata/mitigate-config.yaml": MITIGATED,
    "nodata/dists.csv.gz": gzip.compress(
        (DISTS_HEADER + "j,t,0-1,exact,item,1,a,1,0.5,0.5,0,0,0,,,\n").encode(), mtime=0
    ),
}

CASES: list[tuple[str, list[str], str]] = [
    # commands and options as typed
    ("mistyped option", ["run", "--bogus"], "No such option: --bogus"),
    ("mistyped command", ["nosuch"], "No such command 'nosuch'"),
    ("mistyped option of tasks", ["tasks", "--bogus"], "No such option: --bogus"),
    ("scale without HI", ["run", "--scale", "0-"], "not of the form LO-HI"),
    ("range upside down", ["score", "--range", "9-0"], "lo must be below hi"),
    ("range not integer", ["score", "--range", "1.5-9"], "not of the form LO-HI"),
    ("unknown rule", ["run", "--rule", "vibes"], "unknown rule"),
    ("mitigate off the default scale", ["mitigate", "--scale", "1-5"], "paper's default"),
    ("unknown criterion", ["mitigate", "--criterion", "vibes"], "criterion must be"),
    ("unknown mitigation flag", ["mitigate", "--mitigation", "vibes"], "unknown mitigation(s) ['vibes']"),
    ("ensemble off the scales", ["mitigate", "--ensemble", "0-9+2-7"], "joins scale(s) ['2-7']"),
    ("negative resamples", ["mitigate", "--resamples", "-1"], "resamples"),
    ("base without aligned", ["align", "--base", "gemma3-270m-base"], "one --aligned per --base"),
    ("option without task", ["mitigate", "--option", "n=20"], "--option applies to the tasks given with --task"),
    (
        "dev takes every item",
        ["mitigate", "--judge", "smollm2-135m-instruct", "--task", "vader", "--option", "n=20", "--dev", "20"],
        "leaves no test items",
    ),
    (
        "group criterion without groups",
        [
            "mitigate",
            "--data",
            "many.csv",
            "--template",
            TEMPLATE,
            "--human",
            "score",
            "--criterion",
            "group_pearson",
            "--dev",
            "10",
        ],
        "needs a group column",
    ),
    # task options
    (
        "task option not integer",
        ["run", "--task", "vader", "--option", "n=2.5"],
        "option n=2.5: Input should be a valid integer",
    ),
    (
        "task option text",
        ["run", "--task", "vader", "--option", "n=abc"],
        "option n='abc': Input should be a valid integer",
    ),
    ("seed text", ["run", "--task", "vader", "--option", "seed=abc"], "option seed='abc': Input should be a valid"),
    ("option not KEY=VALUE", ["run", "--task", "vader", "--option", "nope"], "option 'nope' is not KEY=VALUE"),
    (
        "unknown task option",
        ["run", "--task", "vader", "--option", "pair=ro-en"],
        "task 'vader' has no option(s) pair (options: n, seed, skip)",
    ),
    ("task option typed in a config", ["run", "badtask.yaml"], "task 'vader': option n='many'"),
    # judges
    ("unknown judge", ["score", "--model", "no-such-judge", "--out", "o"], "unknown judge 'no-such-judge'"),
    ("judge path missing", ["score", "--model", "/nope/model.gguf", "--out", "o"], "does not exist"),
    ("judge not a GGUF", ["score", "--model", "junk.gguf", "--out", "o"], "not a GGUF file"),
    ("option of another backend", ["run", "prune.yaml"], "backend 'transformers' has no option(s) prune"),
    ("unknown backend option", ["run", "top_k.yaml"], "backend 'llama.cpp' has no option(s) top_k"),
    ("unknown backend", ["run", "vllm.yaml"], "unknown backend 'vllm-direct'"),
    ("backend not importable", ["run", "nomod.yaml"], "backend 'no_such_module:make': cannot import"),
    ("judge option of the wrong type", ["run", "typed.yaml"], "option delay='fast': Input should be a valid number"),
    ("judge option checked before loading", ["run", "n_ctx.yaml"], "option n_ctx='big': Input should be a valid"),
    ("judge option not a boolean", ["run", "chat.yaml"], "option chat='perhaps': Input should be a valid boolean"),
    ("two judges, one name", ["run", "two-judges.yaml"], "two judges share the name 'toy'"),
    ("two judges, one label", ["run", "two-labels.yaml"], "two judges share the name 'j'"),
    ("two pair judges, one name", ["align", "pairs.yaml"], "two different judges share the name 'gemma3-270m-base'"),
    # tasks and prompts
    ("unknown task", ["score", "--task", "nope", "--out", "o"], "unknown task 'nope'"),
    ("task data missing", ["score", "--task", "stsb", "--data", "/nope/stsb.csv", "--out", "o"], "does not exist"),
    (
        "template field not in the data",
        ["score", "--template", "Rate {missing} from {lo} to {hi}", "--out", "o"],
        "field(s) ['missing'] not in the data",
    ),
    ("two tasks, one label", ["run", "two-tasks.yaml"], "two tasks share the label"),
    (
        "data for a task that reads none",
        ["run", "--task", "vader", "--data", "latin.csv"],
        "task 'vader' reads no data file",
    ),
    (
        "file flag on a registered task",
        ["run", "--task", "vader", "--human", "score"],
        "--human applies to data files, not to the registered task(s) vader",
    ),
    ("prompt flag without a task", ["run", "--template", "{x}"], "--template applies to the tasks given with --task"),
    (
        "data file without a template",
        ["run", "--data", "latin.csv", "--human", "score"],
        "data file latin.csv needs a template",
    ),
    (
        "score a file without a template",
        ["score", "--data", "items.csv", "--out", "o"],
        "data file items.csv needs a template",
    ),
    (
        "data not UTF-8",
        ["run", "--data", "latin.csv", "--template", TEMPLATE, "--human", "score"],
        "latin.csv is not UTF-8 text",
    ),
    (
        "data file missing",
        ["run", "--data", "nope.csv", "--template", TEMPLATE, "--human", "score"],
        "data file nope.csv does not exist",
    ),
    ("data path is a folder", ["run", "--data", ".", "--template", TEMPLATE, "--human", "score"], "not a file"),
    (
        "infinite human score",
        ["run", "--data", "inf.csv", "--template", "{word} {lo}-{hi}", "--human", "stars"],
        "column 'stars' of row id '0' is 'inf', not a finite number",
    ),
    # configs
    ("config not YAML", ["run", "bad.yaml"], "is not valid YAML (line 2, column 1)"),
    ("config with a tab", ["run", "tabs.yaml"], "tabs.yaml is not valid YAML (line 3"),
    ("unknown config key", ["run", "unknown.yaml"], "unknown config key 'temperature'"),
    ("empty config lists", ["run", "empty.yaml"], "nothing to score"),
    ("config missing", ["run", "nope.yaml"], "config file nope.yaml does not exist"),
    ("config not a mapping", ["run", "list.yaml"], "must hold a mapping of settings"),
    ("unknown mode", ["run", "modes.yaml"], "modes must be 'exact' and/or 'sampled'"),
    ("sampling n of zero", ["run", "sampling.yaml"], "sampling.n: Input should be greater than or equal to 1"),
    # outputs and saved files
    ("run out is a file", ["run", "--out", "afile", "--task", "vader"], "afile is an existing file, not a folder"),
    ("score out is a file", ["score", "--out", "afile"], "afile is an existing file, not a folder"),
    ("run out unwritable", ["run", "--out", "/proc/x", "--task", "vader"], "cannot create results folder /proc/x"),
    ("score out unwritable", ["score", "--out", "/proc/x"], "cannot create results folder /proc/x"),
    ("correlate a missing folder", ["correlate", "/nope"], "cannot read /nope/summary.json"),
    ("report of a missing folder", ["report", "/nope"], "results folder /nope does not exist"),
    ("report of a folder with no results", ["report", "."], "holds no config.yaml, align-config.yaml, mitigate"),
    (
        "--from a folder with no distributions",
        ["mitigate", "--from", "nodists", "--out", "o"],
        "nodists/dists.csv.gz does not exist: the folder was not written by numbias with its distributions",
    ),
    (
        "--from distributions of the wrong columns",
        ["mitigate", "--from", "wrongcols", "--out", "o"],
        "wrongcols/dists.csv.gz lacks the column(s) judge, task, scale",
    ),
    (
        "--from distributions that are not gzip",
        ["mitigate", "--from", "notgz", "--out", "o"],
        "notgz/dists.csv.gz is unreadable",
    ),
    (
        "--from distributions that do not sum to 1",
        ["mitigate", "--from", "badsum", "--out", "o"],
        "probabilities do not sum to 1",
    ),
    (
        "--from a folder with no items",
        ["mitigate", "--from", "nodata", "--out", "o"],
        "nodata/data.csv.gz does not exist",
    ),
    (
        "--from a folder numbias did not write",
        ["mitigate", "--from", ".", "--out", "o"],
        "holds no mitigate-config.yaml: not a results folder of numbias mitigate",
    ),
    (
        "align --from a mitigation folder",
        ["align", "--from", "nodists", "--out", "o"],
        "nodists holds no align-config.yaml: not a results folder of numbias align",
    ),
    ("--from without --out", ["mitigate", "--from", "nodists"], "--from needs --out"),
    (
        "--from with a config",
        ["mitigate", "mitigate.yaml", "--from", "nodists", "--out", "o"],
        "--from re-analyses the folder's own judges and tasks",
    ),
    (
        "--from with a judge",
        ["mitigate", "--from", "nodists", "--judge", "x", "--out", "o"],
        "--from re-analyses the folder's own judges and tasks",
    ),
    (
        "report from distributions of the wrong columns",
        ["report", "wrongcols"],
        "cannot rebuild wrongcols/report.html from the folder's files: wrongcols/dists.csv.gz lacks the column(s)",
    ),
    ("report from distributions that do not sum to 1", ["report", "badsum"], "probabilities do not sum to 1"),
    (
        "calibrated file not a judge",
        ["score", "--calibrated", "bad.json", "--data", "items.csv", "--out", "o"],
        "not a saved numbias judge",
    ),
    (
        "calibrated file missing",
        ["score", "--calibrated", "none.json", "--data", "items.csv", "--out", "o"],
        "none.json",
    ),
    # --- what numbias writes, templates, repeated settings, backends, the cache ---
    ("empty --out for run", ["run", "--out", "", "--task", "vader"], "the results folder is empty ('' given)"),
    ("empty --out for score", ["score", "--out", ""], "the results folder is empty ('' given)"),
    ("empty --out for mitigate", ["mitigate", "--out", ""], "the results folder is empty ('' given)"),
    ("empty out in a config", ["run", "out-empty.yaml"], "out-empty.yaml: out: is empty; name a results folder"),
    ("format spec in a template", ["run", "spec.yaml"], "prompt template placeholder {text:d}: Unknown format code"),
    (
        "conversion in a template",
        ["run", "conversion.yaml"],
        "prompt template placeholder {text!z}: unknown conversion !z",
    ),
    (
        "conversion in a --template",
        ["score", "--data", "items.csv", "--template", "Rate {text!z} {lo}-{hi}", "--out", "o"],
        "placeholder {text!z}: unknown conversion !z",
    ),
    ("scale given twice", ["run", "--task", "vader", "--scale", "0-9", "--scale", "0..9"], "scale 0-9 is given twice"),
    (
        "rule given twice",
        ["run", "--task", "vader", "--rule", "greedy", "--rule", "greedy"],
        "rule greedy is given twice",
    ),
    ("scale twice in a config", ["run", "scales-twice.yaml"], "scales: scale 1-5 is given twice"),
    ("mitigate scale twice", ["mitigate", "--scale", "0-9", "--scale", "0-9"], "scale 0-9 is given twice"),
    ("backend option missing", ["run", "no-url.yaml"], "backend 'openai' needs option(s) base_url"),
    (
        "score --backend openai without a server",
        ["score", "--backend", "openai", "--model", "m", "--out", "o"],
        "backend 'openai' needs option(s) base_url",
    ),
    ("save to a folder", ["mitigate", "mitigate.yaml", "--save", "o/"], "--save o/: is a folder"),
    ("save to no name", ["mitigate", "mitigate.yaml", "--save", ""], "--save '' names no file"),
    ("save to an existing folder", ["mitigate", "mitigate.yaml", "--save", "sub"], "--save sub: is a folder"),
    (
        "save where no folder is",
        ["mitigate", "mitigate.yaml", "--save", "nope/j.json"],
        "--save nope/j.json: folder nope does not exist",
    ),
    (
        "save over a data file",
        ["mitigate", "mitigate.yaml", "--save", "many.csv"],
        "--save many.csv: the file exists and is not a saved numbias judge",
    ),
    # numbias compare
    (
        "compare without scores or data",
        ["compare", "--out", "o"],
        "give --scores (judge scores already made) or --data",
    ),
    (
        "compare: unknown system column",
        [
            "compare",
            "--score-column",
            "judge",
            "--system-column",
            "maker",
            "--human",
            "rating",
            "--scores",
            "outputs.csv",
        ],
        "outputs.csv: no column 'maker' for the system",
    ),
    (
        "compare: unknown score column",
        [
            "compare",
            "--scores",
            "outputs.csv",
            "--score-column",
            "grade",
            "--system-column",
            "model",
            "--human",
            "rating",
        ],
        "no column 'grade' for the judge score",
    ),
    ("compare: a row with no system", [*COMPARE, "--scores", "nosys.csv"], "row 4 names no system in column 'model'"),
    (
        "compare: a system with one label",
        [*COMPARE, "--scores", "onelabel.csv"],
        "system 'B' has 1 labelled item(s) of 6; each system needs at least two",
    ),
    (
        "compare: a label outside the human range",
        [*COMPARE, "--scores", "outside.csv", "--human-range", "1-5"],
        "human score 7 of row 0 lies outside the human range 1-5",
    ),
    (
        "compare: a budget when some rows are unlabelled",
        [*COMPARE, "--scores", "outputs.csv", "--labels", "2"],
        "labels draws a labelling budget only when every row has a human score (9 of 18 rows have one)",
    ),
    (
        "compare: judging options with --scores",
        [*COMPARE, "--scores", "outputs.csv", "--model", "m"],
        "--model applies when compare scores --data itself",
    ),
    ("compare: a folder without scores", [*COMPARE, "--scores", "sub"], "sub holds no scores.csv"),
]

DATA_CASES: list[tuple[str, str, list[str], str]] = [
    ("items.csv", GOOD, ["--human", "overall"], "items.csv: no column 'overall' (columns: id, text, ctx, score)"),
    ("items.csv", GOOD, ["--template", "Rate {nope} from {lo} to {hi}"], "items.csv: template placeholder {nope}"),
    ("items.csv", GOOD, ["--template", "Rate {text from {lo} to {hi}"], "items.csv: prompt template is malformed"),
    ("items.csv", GOOD, ["--template", "Rate } from {lo} to {hi}"], "items.csv: prompt template is malformed"),
    ("items.csv", GOOD, ["--template", "@missing.txt"], "rubric file missing.txt does not exist"),
    ("items.csv", GOOD.replace(",4\n", ",abc\n"), [], "items.csv: column 'score' of row id 'b' is 'abc', not a number"),
    ("items.csv", GOOD.replace(",4\n", ",NaN\n"), [], "column 'score' of row id 'b' is 'NaN', not a number"),
    ("items.csv", GOOD.replace(",4\n", ",inf\n"), [], "column 'score' of row id 'b' is 'inf', not a finite number"),
    ("items.csv", GOOD.replace(",4\n", ",\n"), [], "items.csv: column 'score' of row id 'b' is empty"),
    (
        "items.csv",
        GOOD.replace(",4\n", ",9\n"),
        ["--human-range", "1-5"],
        "column 'score' of row id 'b' is 9, outside the human range 1-5",
    ),
    ("items.csv", GOOD.replace("b,", "a,"), [], "items.csv: duplicate id(s) in column 'id': 'a'"),
    ("items.csv", GOOD.replace("world", ""), [], "items.csv: column 'text' of row id 'b' is empty"),
    ("items.csv", "", [], "data file items.csv is empty"),
    ("items.csv", "id,text,ctx,score\n", [], "data file items.csv has a header but no rows"),
    (
        "items.jsonl",
        '{"id": "a", "text": "t", "ctx": "c", "score": 1}\n{"id": "b", oops\n',
        [],
        "data file items.jsonl line 2 is not valid JSON",
    ),
    ("items.csv", GOOD, ["--human-range", "5-1"], "--human-range 5-1: LO must be below HI"),
    ("items.csv", GOOD, ["--template", "Rate from {lo} to {hi}"], "the template uses no item field"),
    ("items.csv", GOOD, ["--truncate", "score"], "truncate: 'score' is not a field of the template"),
    ("items.csv", GOOD, ["--option", "pair=ro-en"], "--option pair: a data file takes only n and seed"),
    ("items.csv", GOOD, ["--option", "n=0"], "n: Input should be greater than or equal to 1"),
    ("items.csv", GOOD, ["--group", "team"], "items.csv: no column 'team'"),
    ("items.csv", GOOD, ["--id", "key"], "items.csv: no column 'key'"),
    ("items.csv", GOOD, ["--system-column", "maker"], "items.csv: no column 'maker'"),
]


def test_the_matrix_covers_sixty_kinds() -> None:
    assert len(CASES) + len(DATA_CASES) >= 60


def _main(args: list[str], folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    from numbias.cli import main

    for name, content in FILES.items():
        if not (folder / name).exists():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content, encoding="utf-8")
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", ["numbias", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(("args", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(
    args: list[str], fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _main(args, tmp_path, monkeypatch, capsys)
    assert line.startswith("error: ") and fragment in line, line


@pytest.mark.parametrize(("name", "content", "extra", "fragment"), DATA_CASES, ids=[c[3][:40] for c in DATA_CASES])
@pytest.mark.parametrize("command", ["run", "score", "mitigate"])
def test_bad_data_file(
    command: str,
    name: str,
    content: str,
    extra: list[str],
    fragment: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    flags = {"--template": TEMPLATE, "--human": "score", "--id": "id"}
    flags.update(zip(extra[::2], extra[1::2]))
    args = [command, "--data", name, *[x for pair in flags.items() for x in pair], "--out", "o"]
    line = _main(args, tmp_path, monkeypatch, capsys)
    assert fragment in line, line


# --- files the user owns, stores, the cache, a full disk, near the context ---

HERE = _yaml(judges=[FAKE], tasks=[FILE_TASK], bootstrap=50)
SCORE = [
    "score",
    "--backend",
    "plugin_judge:make",
    "--model",
    "toy",
    "--data",
    "items.csv",
    "--template",
    TEMPLATE,
    "--human",
    "score",
]


def _sqlite(*statements: str) -> bytes:
    """A SQLite database file's bytes, made by ``statements``."""
    import sqlite3

    db = sqlite3.connect(":memory:")
    for statement in statements:
        db.execute(statement)
    db.commit()
    return db.serialize()


WRITE_CASES: list[tuple[str, dict[str, bytes], list[str], str]] = [
    (
        "run --out . beside the user's files",
        {"here.yaml": HERE.encode(), "config.yaml": b"# mine\njudges: []\n"},
        ["run", "here.yaml", "--out", "."],
        "error: . holds items.csv, config.yaml, not written by numbias",
    ),
    (
        "out: . in a config",
        {"here.yaml": _yaml(judges=[FAKE], tasks=[FILE_TASK], out=".").encode()},
        ["run", "here.yaml"],
        ". holds items.csv, not written by numbias; numbias would replace it: give another --out",
    ),
    (
        "score --out . beside the user's scores",
        {"scores.csv": b"id,score\n1,2\n"},
        [*SCORE, "--out", "."],
        ". holds scores.csv, not written by numbias",
    ),
    (
        "align --out . beside the user's table",
        {"alignment.csv": b"mine\n"},
        ["align", "--base", "gemma3-270m-base", "--aligned", "smollm2-135m-instruct", "--out", "."],
        ". holds items.csv, alignment.csv, not written by numbias",
    ),
    (
        "mitigate --out . beside the user's page",
        {"report.html": b"<p>mine</p>"},
        ["mitigate", "mitigate.yaml", "--out", "."],
        ". holds report.html, not written by numbias",
    ),
    (
        "mitigate --save over the user's JSON",
        {"judge.json": b'{"mine": true}'},
        ["mitigate", "mitigate.yaml", "--save", "judge.json"],
        "--save judge.json: the file exists and is not a saved",
    ),
    (
        "a store that is not SQLite",
        {"o/store.sqlite": b"not a database at all " * 50, "here.yaml": HERE.encode()},
        ["run", "here.yaml", "--out", "o"],
        "result store o/store.sqlite is unusable (file is not a database); move it away (a new store is then started)",
    ),
    (
        "a SQLite file that is not a store",
        {
            "o/store.sqlite": _sqlite("CREATE TABLE users (name TEXT)", "INSERT INTO users VALUES ('ann')"),
            "here.yaml": HERE.encode(),
        },
        ["run", "here.yaml", "--out", "o"],
        "result store o/store.sqlite is not a numbias store (it holds the table(s) users); move it away",
    ),
    (
        "a store with numbias's names but not its columns",
        {
            "o/store.sqlite": _sqlite("CREATE TABLE judges (key TEXT)", "CREATE TABLE items (key TEXT, n INTEGER)"),
            "here.yaml": HERE.encode(),
        },
        ["run", "here.yaml", "--out", "o"],
        "is not a numbias store",
    ),
]


def test_the_matrix_covers_a_hundred_kinds() -> None:
    assert len(CASES) + len(DATA_CASES) + len(WRITE_CASES) >= 100


def _snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("mine", "args", "fragment"), [c[1:] for c in WRITE_CASES], ids=[c[0] for c in WRITE_CASES])
def test_the_users_files_are_kept(
    mine: dict[str, bytes],
    args: list[str],
    fragment: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A command that would replace (or write into) a file numbias did not write stops
    before any work, in one line, and every file there is byte-identical afterwards."""
    for name, content in {**{k: v if isinstance(v, bytes) else v.encode() for k, v in FILES.items()}, **mine}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    before = _snapshot(tmp_path)
    line = _main(args, tmp_path, monkeypatch, capsys)
    assert fragment in line, line
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / ".numbias-manifest.json").exists()


def test_force_replaces_and_owned_files_are_replaced_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from numbias.cli import main
    from numbias.util.output import digest, manifest

    (tmp_path / "items.csv").write_text(GOOD)
    (tmp_path / "scores.csv").write_text("the user's\n")
    monkeypatch.chdir(tmp_path)
    for argv in ([*SCORE, "--out", ".", "--force"], [*SCORE, "--out", "."]):  # the second replaces its own
        monkeypatch.setattr(sys, "argv", ["numbias", *argv])
        main()
        assert manifest(tmp_path) == {n: digest(tmp_path / n) for n in ("scores.jsonl", "scores.csv")}
    assert (tmp_path / "items.csv").read_text() == GOOD and "the user's" not in (tmp_path / "scores.csv").read_text()
    capsys.readouterr()


@pytest.mark.parametrize("command", [["models"], pytest.param(["score", "--out", "o"], marks=pytest.mark.model)])
def test_a_cache_that_is_a_file(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NUMBIAS_CACHE", str(tmp_path / "afile"))
    line = _main(command, tmp_path, monkeypatch, capsys)
    assert f"NUMBIAS_CACHE={tmp_path / 'afile'}: {tmp_path / 'afile'} is a file, not a folder" in line, line


def test_a_full_disk_while_storing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The disk fills after a few items (SQLite's page limit, the same SQLITE_FULL): one
    line, the store keeps what it had and stays valid, and the same command resumes."""
    import sqlite3

    from numbias.cli import main

    connect = sqlite3.connect

    def small(*args: object, **kwargs: object) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.execute("PRAGMA max_page_count = 12")
        return db

    args = [*(a if a != "items.csv" else "many.csv" for a in SCORE), "--out", "o"]
    with monkeypatch.context() as patch:
        patch.setattr("numbias.judge.store.sqlite3.connect", small)
        line = _main(args, tmp_path, monkeypatch, capsys)
    assert (
        "cannot write to the result store o/store.sqlite (database or disk is full); the items stored so far "
        "are kept" in line
    ), line
    with connect(tmp_path / "o" / "store.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        kept = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    assert 0 < kept < 30
    monkeypatch.setattr(sys, "argv", ["numbias", *args])
    main()
    assert len((tmp_path / "o" / "scores.csv").read_text().splitlines()) == 31


def _near(tmp_path: Path, gap: int, context: int = 40) -> None:
    """A data file whose one item's prompt is ``gap`` tokens short of the fake judge's
    context (a token is a word there), and configs of a run on it at 0-9 and 1-100,
    without and with truncation."""
    words = context - gap - 7  # "Rate", the text, "in", ctx, "from", lo, "to", hi
    (tmp_path / "near.csv").write_text("id,text,ctx,score\na," + " ".join(["w"] * words) + ",x,3\n")
    judge = {**FAKE, "options": {"context_length": context}}
    task = {"file": "near.csv", "human": "score", "template": TEMPLATE, "human_range": [1, 5]}
    (tmp_path / "near.yaml").write_text(
        _yaml(judges=[judge], tasks=[task], scales=["0-9", "1-100"], bootstrap=20, out="o")
    )
    (tmp_path / "cut.yaml").write_text(
        _yaml(judges=[judge], tasks=[{**task, "truncate": "text"}], scales=["0-9", "1-100"], bootstrap=20, out="o")
    )


@pytest.mark.parametrize("gap", [1, 2, 5])
def test_items_near_the_context(
    gap: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """1, 2 and 5 tokens from the context: the room the trie needs (1-100's deepest
    spelling " 100" and the end check: 5 tokens) is reserved, so a prompt within 5 tokens
    of the context is one line, and truncated it is scored; 5 short of it fits as it is."""
    from numbias.cli import main

    _near(tmp_path, gap)
    monkeypatch.chdir(tmp_path)
    if gap < 5:
        line = _main(["run", "near.yaml"], tmp_path, monkeypatch, capsys)
        assert f"exceed the judge's context of 40 tokens (longest: item '0', {40 - gap} tokens)" in line, line
    for config in (["near.yaml"] if gap >= 5 else []) + ["cut.yaml"]:
        monkeypatch.setattr(sys, "argv", ["numbias", "run", config])
        main()
        items = (tmp_path / "o" / "items.csv").read_text()
        assert items.count("\n") > 1


@pytest.mark.parametrize(
    "rows", ["a,fine,x,3\nb,good,y,3\nc,bad,z,3\n", "a,fine,x,3\n"], ids=["constant human scores", "a single item"]
)
def test_every_r_undefined_still_writes_the_results(
    rows: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No r can be computed: the results are written all the same, the r shown as
    undefined (— on the page and in the table, null in summary.json)."""
    from numbias.cli import main

    (tmp_path / "flat.csv").write_text("id,text,ctx,score\n" + rows)
    task = {**FILE_TASK, "file": "flat.csv", "human_range": [1, 5]}
    (tmp_path / "flat.yaml").write_text(_yaml(judges=[FAKE], tasks=[task], scales=["0-9", "1-5"], bootstrap=20))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["numbias", "run", "flat.yaml", "--out", "o"])
    main()
    assert all(row["pearson"] is None for row in json.loads((tmp_path / "o" / "summary.json").read_text()))
    page = (tmp_path / "o" / "report.html").read_text()
    assert "No setting measured here has a defined r (undefined" in page and "—" in page
    assert "—" in capsys.readouterr().out


# --- files from elsewhere are data; nothing silently ignored; clear words -----------------------------

SAVED = {
    "format": "numbias.calibrated-judge/3",
    "judge": {"model": "smollm2-135m-instruct", "backend": "llama.cpp"},
    "template": {"text": TEMPLATE, "answer_prefix": None, "system": None},
    "setting": {"scale": "0-9", "rule": "expected", "temperature": 1.0, "mitigation": "none"},
    "state": {"temperature_": 1.0, "params": {}, "calibrator": {}},
    "human_range": [1, 5],
    "fitted_on": "x",
    "interval": {"params": {"coverage": 0.9}, "state": {"slope_": 1.0, "intercept_": 0.0, "radius_": 0.5}},
}
"""A valid saved judge; each bad one below changes one field."""


def _saved(**change: object) -> str:
    saved = json.loads(json.dumps(SAVED))
    for path, value in change.items():
        *parents, last = path.split("__")
        node = saved
        for part in parents:
            node = node[part]
        node[last] = value
    return json.dumps(saved)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join([f'*{chr(97 + k)}'] * 9)}]\n" for k in range(9)
)
"""A YAML alias bomb: 1 KB that expands to 9^10 strings."""

TRUST_FILES: dict[str, str] = {
    "bomb.yaml": BOMB,
    "dupkey.yaml": "tasks: [vader]\nscales: [0-9]\ntasks: [simlex]\n",
    "boolopt.yaml": _yaml(tasks=[{"name": "vader", "options": {"n": True}}]),
    "booldev.yaml": "dev: true\n",
    "boolsampling.yaml": "sampling: {n: true}\n",
    "ragged.csv": "id,text,ctx,score\na,hello, world,x,3\nb,world,y,4\n",
    "dupcol.csv": "id,text,text,score\na,hello,x,3\nb,world,y,4\n",
    "nested.jsonl": '{"id": "a", "text": {"k": 1}, "ctx": "c", "score": 1}\n',
    "nestedlist.json": '[{"id": "a", "text": "t", "ctx": ["c"], "score": 1}]',
    "dupkey.jsonl": '{"id": "a", "text": "t", "text": "u", "ctx": "c", "score": 1}\n',
    "range.json": _saved(human_range=[5, 1]),
    "radius.json": _saved(interval__state__radius_=-0.5),
    "rule.json": _saved(setting__rule="vibes"),
    "scale.json": _saved(setting__scale="9-0"),
    "hot.json": _saved(setting__temperature=float("inf")),
    "cold.json": _saved(setting__temperature=-1.0),
    "state.json": _saved(state__temperature_="hot"),
    "learned.json": _saved(state__calibrator={"slope_": "steep"}),
    "mitigation.json": _saved(setting__mitigation="vibes"),
    "template.json": _saved(template__text="Rate {text"),
    "extra.json": _saved(colour="red"),
    "code.json": _saved(judge={"model": "m", "backend": "plugin_judge:make"}),
    "server.json": _saved(
        judge={
            "model": "m",
            "backend": "openai",
            "options": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "AWS_SECRET"},
        }
    ),
}
DATA = ["--template", TEMPLATE, "--human", "score"]

TRUST_CASES: list[tuple[str, list[str], str]] = [
    # YAML is data: no alias expansion past a cap, no repeated keys
    ("YAML alias bomb", ["run", "bomb.yaml"], "aliases (*name) expand to more than 100,000 values"),
    ("YAML key given twice", ["run", "dupkey.yaml"], "key 'tasks' is given twice"),
    # nothing silently ignored
    ("flag given twice", ["run", "--data", "items.csv", "--data", "many.csv", *DATA], "--data is given twice"),
    ("flag given twice with =", ["mitigate", "--dev=20", "--dev", "30"], "--dev is given twice"),
    ("flag and its negation", ["align", "--sample", "--no-sample"], "is given twice"),
    ("dev of zero", ["mitigate", "--dev", "0"], "dev: Input should be greater than or equal to 10"),
    ("folds of zero", ["mitigate", "--folds", "0"], "folds: Input should be greater than or equal to 2"),
    ("empty criterion", ["mitigate", "--criterion", ""], "criterion must be one of"),
    ("empty model", ["score", "--model", "", "--out", "o"], "model: is empty"),
    ("empty backend", ["score", "--backend", "", "--out", "o"], "backend: is empty"),
    ("empty system prompt", ["run", "--data", "items.csv", *DATA, "--system", ""], "--system is empty"),
    ("empty human column", ["run", "--data", "items.csv", "--template", TEMPLATE, "--human", ""], "--human is empty"),
    (
        "boolean for an integer task option",
        ["run", "--task", "vader", "--option", "n=true"],
        "option n=True: Input should be a valid integer",
    ),
    (
        "boolean for a data file's n",
        ["run", "--data", "items.csv", *DATA, "--option", "n=true"],
        "n: Input should be a valid integer",
    ),
    (
        "boolean for an integer option in YAML",
        ["run", "boolopt.yaml"],
        "option n=True: Input should be a valid integer",
    ),
    ("boolean for an integer setting in YAML", ["mitigate", "booldev.yaml"], "dev: an integer is needed, got true"),
    ("boolean for sampling n in YAML", ["run", "boolsampling.yaml"], "sampling: n: an integer is needed, got true"),
    ("ragged CSV row", ["run", "--data", "ragged.csv", *DATA], "ragged.csv line 2 has 5 fields, the header 4"),
    ("column name twice", ["run", "--data", "dupcol.csv", *DATA], "column name 'text' is given more than once"),
    (
        "nested JSON value",
        ["run", "--data", "nested.jsonl", *DATA],
        "column 'text' of row id '0' is an object, not a single value",
    ),
    (
        "JSON array value",
        ["run", "--data", "nestedlist.json", *DATA],
        "column 'ctx' of row id '0' is an array, not a single value",
    ),
    ("JSON key given twice", ["run", "--data", "dupkey.jsonl", *DATA], "line 1: key 'text' is given twice"),
    (
        "system placeholder not in the data",
        ["run", "--data", "items.csv", *DATA, "--system", "Judge {nope}"],
        "template placeholder {nope} not a column of the file",
    ),
    (
        "system prompt malformed",
        ["run", "--data", "items.csv", *DATA, "--system", "Judge {text"],
        "system prompt is malformed",
    ),
    (
        "server flag without a server judge",
        ["run", "--task", "vader", "--base-url", "http://localhost:1/v1"],
        "apply to judges on a server (backend openai)",
    ),
    (
        "empty server flag",
        ["score", "--backend", "openai", "--model", "m", "--base-url", "", "--out", "o"],
        "--base-url is empty",
    ),
    (
        "server judge without a server",
        ["score", "--backend", "openai", "--model", "m", "--out", "o"],
        "needs option(s) base_url",
    ),
    # saved judges: every field checked and named, before any model loads
    (
        "saved range upside down",
        ["score", "--calibrated", "range.json", "--data", "items.csv", "--out", "o"],
        "human_range: low 5 must be below high 1",
    ),
    (
        "saved negative radius",
        ["score", "--calibrated", "radius.json", "--data", "items.csv", "--out", "o"],
        "interval.state.radius_: Input should be greater than or equal to 0",
    ),
    (
        "saved unknown rule",
        ["score", "--calibrated", "rule.json", "--data", "items.csv", "--out", "o"],
        "setting.rule: unknown rule 'vibes'",
    ),
    ("saved bad scale", ["score", "--calibrated", "scale.json", "--data", "items.csv", "--out", "o"], "setting.scale:"),
    (
        "saved infinite temperature",
        ["score", "--calibrated", "hot.json", "--data", "items.csv", "--out", "o"],
        "setting.temperature",
    ),
    (
        "saved negative temperature",
        ["score", "--calibrated", "cold.json", "--data", "items.csv", "--out", "o"],
        "setting.temperature",
    ),
    (
        "saved state of the wrong type",
        ["score", "--calibrated", "state.json", "--data", "items.csv", "--out", "o"],
        "state.temperature_: Input should be a valid number",
    ),
    (
        "saved learned state not numbers",
        ["score", "--calibrated", "learned.json", "--data", "items.csv", "--out", "o"],
        "state.calibrator: slope_ must be finite numbers",
    ),
    (
        "saved unknown mitigation",
        ["score", "--calibrated", "mitigation.json", "--data", "items.csv", "--out", "o"],
        "setting.mitigation:",
    ),
    (
        "saved template malformed",
        ["score", "--calibrated", "template.json", "--data", "items.csv", "--out", "o"],
        "template: prompt template is malformed",
    ),
    (
        "saved unknown key",
        ["score", "--calibrated", "extra.json", "--data", "items.csv", "--out", "o"],
        "unknown key 'colour'",
    ),
    (
        "saved judge naming code",
        ["score", "--calibrated", "code.json", "--data", "items.csv", "--out", "o"],
        "names backend 'plugin_judge:make', which is not a registered backend",
    ),
    (
        "saved judge naming a server",
        ["score", "--calibrated", "server.json", "--data", "items.csv", "--out", "o"],
        "was scored against http://127.0.0.1:9/v1, which is not used: pass --base-url",
    ),
    # clear words: no markup, no emoji, one line, special paths named
    ("emoji code in a path", ["run", "--data", "my:thumbs_up:file.csv", *DATA], "my:thumbs_up:file.csv does not"),
    ("markup in a path", ["run", "--data", "[bold]x[/bold].csv", *DATA], "[bold]x[/bold].csv does not exist"),
    ("a terminal escape in a path", ["run", "--data", "\x1b[31mred.csv", *DATA], "data file \\x1b[31mred.csv does"),
    ("a line break in the input", ["score", "--task", "one\ntwo", "--out", "o"], "unknown task 'one\\ntwo'"),
    ("model path is a folder", ["score", "--model", "folder/", "--out", "o"], "model file folder is a folder"),
    (
        "calibrated path is a folder",
        ["score", "--calibrated", "folder", "--data", "items.csv", "--out", "o"],
        "calibrated judge file folder is a folder, not a file",
    ),
    (
        "rubric path is a folder",
        ["run", "--data", "items.csv", "--human", "score", "--template", "@folder"],
        "rubric file folder is a folder, not a file",
    ),
    ("config path is a folder", ["run", "folder"], "config file folder is a folder, not a file"),
    ("data file is a FIFO", ["run", "--data", "fifo.csv", *DATA], "data file fifo.csv is a FIFO, not a regular file"),
    ("config is a FIFO", ["run", "fifo.yaml"], "config file fifo.yaml is a FIFO, not a regular file"),
    ("data file is a symlink loop", ["run", "--data", "loop.csv", *DATA], "data file loop.csv is a symlink loop"),
    ("model is a symlink loop", ["score", "--model", "./loop.gguf", "--out", "o"], "loop.gguf is a symlink loop"),
    (
        "data file is a broken symlink",
        ["run", "--data", "dangling.csv", *DATA],
        "does not exist (a symlink to nothing)",
    ),
]


def _special_paths(folder: Path) -> None:
    """The files of TRUST_FILES, a folder, FIFOs and symlinks that loop or dangle."""
    for name, content in TRUST_FILES.items():
        (folder / name).write_text(content, encoding="utf-8")
    (folder / "folder").mkdir()
    for name in ("fifo.csv", "fifo.yaml"):
        os.mkfifo(folder / name)
    for name in ("loop.csv", "loop.gguf"):
        os.symlink(name, folder / name)
    os.symlink("nowhere.csv", folder / "dangling.csv")


@pytest.mark.parametrize(("args", "fragment"), [c[1:] for c in TRUST_CASES], ids=[c[0] for c in TRUST_CASES])
def test_bad_input_from_elsewhere(
    args: list[str], fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _special_paths(tmp_path)
    start = time.monotonic()
    line = _main(args, tmp_path, monkeypatch, capsys)
    assert line.startswith("error: ") and fragment in line, line
    assert time.monotonic() - start < 20  # a FIFO is never opened, an alias never expanded


def test_an_error_line_is_capped_however_long_the_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _main(["score", "--task", "x" * 100_000, "--out", "o"], tmp_path, monkeypatch, capsys)
    assert line.startswith("error: unknown task 'xxx") and line.endswith("…") and len(line) <= 310


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "secret.csv").write_text(GOOD, encoding="utf-8")
    (tmp_path / "secret.csv").chmod(0)
    line = _main(["run", "--data", "secret.csv", *DATA], tmp_path, monkeypatch, capsys)
    assert "data file secret.csv cannot be read: permission denied" in line, line


def test_readable_file_names_what_a_path_is(tmp_path: Path) -> None:
    """The helper every file read goes through, case by case (the unreadable case by its
    errno, which root cannot produce with chmod)."""
    from numbias.util.errors import NumbiasError, readable_file

    _special_paths(tmp_path)
    (tmp_path / "ok.csv").write_text(GOOD)
    assert readable_file(tmp_path / "ok.csv", "data file") == tmp_path / "ok.csv"
    for name, words in (
        ("folder", "is a folder"),
        ("fifo.csv", "is a FIFO"),
        ("loop.csv", "is a symlink loop"),
        ("dangling.csv", "does not exist (a symlink to nothing)"),
        ("none.csv", "does not exist"),
    ):
        with pytest.raises(NumbiasError, match=re.escape(f"data file {tmp_path / name} {words}")):
            readable_file(tmp_path / name, "data file")
    with pytest.raises(NumbiasError, match="is a device or socket"):
        readable_file("/dev/null", "data file")


def test_correlate_never_opens_a_fifo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "results").mkdir()
    os.mkfifo(tmp_path / "results" / "summary.json")
    line = _main(["correlate", "results"], tmp_path, monkeypatch, capsys)
    assert "results file results/summary.json is a FIFO, not a regular file" in line, line
