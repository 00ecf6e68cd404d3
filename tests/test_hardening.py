"""Hostile use: runs killed at random moments, two runs on one folder, malformed input
of every kind (one line, exit 2, no traceback), and a fuzz of configs and options."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

TESTS = Path(__file__).resolve().parent
RESULTS = ("items.csv", "summary.json", "config.yaml", "report.html")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "numbias", *args], capture_output=True, text=True, cwd=cwd, env=_env(), timeout=600
    )


def _start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "numbias", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _one_line(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr


TEMPLATE = "Rate {word} from {lo} to {hi}."
COMMANDS = {
    # command: (its arguments, its result files, items it scores, kills)
    "run": (["run", "study.yaml"], RESULTS, 48, 10),
    "score": (
        [
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
            "stars",
            "--human-range",
            "1-5",
            "--out",
            "out",
        ],
        ("scores.jsonl", "scores.csv"),
        24,
        3,
    ),
    "mitigate": (["mitigate", "mitigate.yaml"], ("mitigation.csv", "dev_scores.csv", "report.html"), None, 3),
}


def _study(folder: Path, *, delay: float, log: str, items: int = 24) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.csv").write_text("id,word,stars\n" + "".join(f"w{i},word{i},{i % 5 + 1}\n" for i in range(items)))
    judge = {"model": "toy", "backend": "plugin_judge:make", "options": {"delay": delay, "log": log}}
    task = {"file": "items.csv", "human": "stars", "human_range": [1, 5], "template": TEMPLATE}
    (folder / "study.yaml").write_text(
        json.dumps({"judges": [judge], "tasks": [task], "scales": ["0-9", "1-5"], "out": "out", "bootstrap": 50})
    )
    (folder / "mitigate.yaml").write_text(
        json.dumps(
            {
                "judges": [judge],
                "tasks": [task],
                "dev": 10,
                "out": "out",
                "bootstrap": 50,
                "sample": False,
                "resamples": 0,
            }
        )
    )
    return folder


def _scored(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _stored(folder: Path) -> int:
    store = folder / "out" / "store.sqlite"
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]


@pytest.mark.subprocess
@pytest.mark.parametrize("command", list(COMMANDS))
def test_killed_at_random_moments_resumes_to_the_same_files(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL while loading, scoring or writing; the resumed run's files equal an
    uninterrupted run's byte for byte, and no stored item is scored twice."""
    args, results, total, kills = COMMANDS[command]
    monkeypatch.setenv("PLUGIN_JUDGE_DELAY", "0.04")
    monkeypatch.setenv("PLUGIN_JUDGE_LOG", "scored.log")
    clean = _study(tmp_path / "clean", delay=0.04, log="scored.log")
    start = time.monotonic()
    assert _cli(*args, cwd=clean).returncode == 0
    duration = time.monotonic() - start
    expected = {name: (clean / "out" / name).read_bytes() for name in results}
    total = total or len(_scored(clean / "scored.log"))
    moments = np.random.default_rng(7).uniform(0.2, duration, size=kills)
    for k, moment in enumerate(moments):
        folder = _study(tmp_path / f"run{k}", delay=0.04, log="scored.log")
        proc = _start(*args, cwd=folder)
        time.sleep(moment)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before, kept = _scored(folder / "scored.log"), _stored(folder)
        resumed = _cli(*args, cwd=folder)
        assert resumed.returncode == 0, resumed.stderr
        for name in results:
            assert (folder / "out" / name).read_bytes() == expected[name], f"{name} differs after kill {k}"
        after = _scored(folder / "scored.log")[len(before) :]
        assert len(after) == total - kept, f"kill {k}: {kept} stored, {len(after)} scored on resume"
        assert not [p for p in (folder / "out").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.subprocess
def test_a_second_run_on_the_folder_stops_or_waits(tmp_path: Path) -> None:
    folder = _study(tmp_path, delay=0.05, log="scored.log")
    first = _start("run", "study.yaml", cwd=folder)
    pid_file = folder / "out" / ".numbias.lock.pid"
    for _ in range(600):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    _one_line(_cli("run", "study.yaml", cwd=folder), f"in use by another numbias run (PID {first.pid})")
    waited = _cli("run", "study.yaml", "--wait", cwd=folder)
    assert first.wait() == 0 and waited.returncode == 0, waited.stderr
    assert not pid_file.exists()
    assert json.loads((folder / "out" / "summary.json").read_text())


def test_result_files_are_replaced_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while the set is written leaves the previous set, and no temporaries."""
    from numbias.util.errors import NumbiasError
    from numbias.util.output import text, write_all

    write_all(tmp_path, {"a.csv": text("old a"), "b.json": text("old b")})

    def broken(path: Path) -> None:
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(NumbiasError, match="cannot write results to .*: disk full"):
        write_all(tmp_path, {"a.csv": text("new a"), "b.json": broken})
    assert (tmp_path / "a.csv").read_text() == "old a" and (tmp_path / "b.json").read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".numbias-manifest.json", "a.csv", "b.json"]
    assert oct((tmp_path / "a.csv").stat().st_mode & 0o777) == "0o644"


KILL_BETWEEN_RENAMES = """
import os, signal, sys
from numbias.util import output
from numbias.util.output import text, write_all

folder, after = sys.argv[1], int(sys.argv[2])
write_all(folder, {name: text("old " + name) for name in ("a.csv", "b.json", "c.html")})
real, done = os.replace, []


def replace(src, dst):
    real(src, dst)
    done.append(dst)
    if len(done) == after:
        os.kill(os.getpid(), signal.SIGKILL)


output.os.replace = replace
write_all(folder, {name: text("new " + name) for name in ("a.csv", "b.json", "c.html")})
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("after", [1, 2, 3, 4, 5])
def test_killed_between_renames_the_folder_holds_one_set(after: int, tmp_path: Path) -> None:
    """SIGKILL after each rename of the switch (the manifest into the staging folder, each
    file, the manifest into the folder): the set is committed, so numbias owns every file
    it left, and the next writer finishes the switch: every file new, the manifest theirs."""
    from numbias.util.output import STAGING, claim, digest, manifest, one_writer

    names = ("a.csv", "b.json", "c.html")
    killed = subprocess.run(
        [sys.executable, "-c", KILL_BETWEEN_RENAMES, str(tmp_path), str(after)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (tmp_path / STAGING).is_dir()
    claim(tmp_path, names)  # what the killed run left is numbias's: no --force needed
    with one_writer(tmp_path):
        pass
    assert {n: (tmp_path / n).read_text() for n in names} == {n: f"new {n}" for n in names}
    assert manifest(tmp_path) == {n: digest(tmp_path / n) for n in names}
    assert not (tmp_path / STAGING).exists()


KEYS = ["judges", "tasks", "scales", "rules", "modes", "sampling", "seed", "bootstrap", "out", "store", "extra"]
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["name", "file", "model", "n", "x", "template"]), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    config=st.dictionaries(st.sampled_from(KEYS), VALUES, min_size=1, max_size=4),
    options=st.lists(st.text(alphabet="nsed=.-x1", max_size=6), max_size=3),
)
@example(config={"tasks": [{"file": "\U00010000"}]}, options=[])  # YAML writes it as a surrogate pair
def test_malformed_configs_and_options_give_one_line(
    config: dict,
    options: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Whatever is malformed ends as one error line and exit 2, never a traceback (a
    config that happens to be valid is never run: every judge given is missing)."""
    from numbias.cli import main

    config = {**config, "judges": [str(tmp_path / "no-such-judge.gguf")]}
    (tmp_path / "c.yaml").write_text(json.dumps(config, default=str))
    argv = ["numbias", "run", str(tmp_path / "c.yaml"), *[x for o in options for x in ("--option", o)]]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err


def _stop_while_scoring(folder: Path, number: int, *, at: int) -> subprocess.CompletedProcess:
    """``numbias score`` stopped by signal ``number`` once ``at`` items are scored (0: once
    it holds the folder, before the first item is stored)."""
    args = COMMANDS["score"][0]
    env = {**_env(), "PLUGIN_JUDGE_DELAY": "0.3", "PLUGIN_JUDGE_LOG": "scored.log"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "numbias", *args],
        cwd=folder,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    pid_file = folder / "out" / ".numbias.lock.pid"
    for _ in range(1200):
        if (len(_scored(folder / "scored.log")) >= at) if at else pid_file.exists():
            break
        time.sleep(0.05)
    proc.send_signal(number)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.subprocess
@pytest.mark.parametrize(("number", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_says_what_is_kept_and_resumes(number: int, code: int, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) or SIGTERM while scoring: its exit code, one line naming the
    finished items and the store, no traceback; the resumed run scores only the rest."""
    folder = _study(tmp_path, delay=0.3, log="scored.log")
    stopped = _stop_while_scoring(folder, number, at=3)
    assert stopped.returncode == code, stopped.stderr
    kept = _stored(folder)
    assert kept >= 3 and "Traceback" not in stopped.stderr
    assert stopped.stderr.strip().splitlines() == [
        f"interrupted: {kept} finished items are kept in out/store.sqlite; run the same command to resume"
    ]
    assert not (folder / "out" / "scores.csv").exists()
    before = len(_scored(folder / "scored.log"))
    env = {"PLUGIN_JUDGE_DELAY": "0", "PLUGIN_JUDGE_LOG": "scored.log"}
    resumed = subprocess.run(
        [sys.executable, "-m", "numbias", *COMMANDS["score"][0]],
        cwd=folder,
        env={**_env(), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert len(_scored(folder / "scored.log")) - before == 24 - kept


@pytest.mark.subprocess
def test_an_interrupt_before_any_item_is_stored_says_so(tmp_path: Path) -> None:
    folder = _study(tmp_path, delay=0.3, log="scored.log")
    stopped = _stop_while_scoring(folder, signal.SIGINT, at=0)
    assert stopped.returncode == 130 and "Traceback" not in stopped.stderr, stopped.stderr
    lines = stopped.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted") and "run the same command" in lines[0], lines
