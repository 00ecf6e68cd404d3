"""Files from elsewhere are data: a results folder or a saved judge someone sent cannot
make numbias import code, contact a host or read a secret. Each test opens a listener
on this machine where the file says requests go, and checks that none arrives."""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
import yaml

import numbias
from numbias.backends.base import BACKENDS
from numbias.report.build import rebuild
from numbias.studies.calibrated import CalibratedJudge
from numbias.util.errors import NumbiasError
from plugin_judge import reader

SECRET = "NUMBIAS_TEST_SECRET"
TEMPLATE = "Rate the item from {lo} to {hi}.\nItem: {word}"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A socket listening on a local port: where a hostile file sends requests."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.3)
        yield server


def _arrived(server: socket.socket) -> bool:
    try:
        connection, _ = server.accept()
    except TimeoutError:
        return False
    connection.close()
    return True


class _Server:
    """Stands in for the OpenAI backend while a study runs (its identity as a server's,
    known only after start): the store then holds what a real server run leaves."""

    identity_after_start: ClassVar[bool] = True

    def __init__(self, model: str, *, base_url: str, api_key_env: str = "OPENAI_API_KEY", chat: bool = True) -> None:
        self._judge = reader(model, bias=3.0)
        self.identity = {
            "backend": "openai",
            "base_url": base_url,
            "model": model,
            "chat": True,
            "mode": "topk",
            "top_logprobs": 20,
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self._judge, name)


class _Environ(dict):
    """os.environ that records every variable read."""

    read: ClassVar[list[str]] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.read.append(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.append(key)
        return super().__getitem__(key)


@pytest.fixture
def folder(tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A results folder of a run whose judge is on a server at the listener's address,
    with the key in $NUMBIAS_TEST_SECRET; the real OpenAI backend is back in place."""
    words = [f"word{k}" for k in range(12)]
    pd.DataFrame({"id": words, "word": words, "stars": [k % 5 + 1 for k in range(12)]}).to_csv(
        tmp_path / "items.csv", index=False
    )
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    monkeypatch.setitem(BACKENDS, "openai", _Server)
    judge = {"model": "served", "backend": "openai", "options": {"base_url": url, "api_key_env": SECRET}}
    task = {"file": str(tmp_path / "items.csv"), "human": "stars", "human_range": [1, 5], "template": TEMPLATE}
    results = numbias.run(
        {"judges": [judge], "tasks": [task], "scales": ["0-9"], "bootstrap": 20, "out": str(tmp_path / "run")}
    )
    numbias.write(results)
    monkeypatch.undo()
    assert BACKENDS["openai"] == "numbias.backends.openai_compat:OpenAIBackend"
    assert url in (tmp_path / "run" / "config.yaml").read_text()
    return tmp_path / "run"


def test_a_report_is_rebuilt_with_no_request_and_no_secret_read(
    folder: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "environ", _Environ(os.environ, **{SECRET: "do-not-send"}))
    before = (folder / "report.html").read_bytes()
    (folder / "report.html").unlink()
    assert rebuild(folder) == folder / "report.html"
    assert (folder / "report.html").read_bytes() == before
    assert not _arrived(listener) and SECRET not in _Environ.read


def test_a_report_naming_module_code_imports_nothing(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trap = tmp_path / "trap_judge.py"
    trap.write_text(f"open({str(tmp_path / 'imported')!r}, 'w').close()\ndef make(model, **options): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["judges"][0]["backend"] = "trap_judge:make"
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(NumbiasError, match="names backend 'trap_judge:make', which is not a registered backend"):
        rebuild(folder)
    assert "trap_judge" not in sys.modules and not (tmp_path / "imported").exists()


def _saved_judge(path: Path, judge: dict[str, Any]) -> Path:
    saved = {
        "format": "numbias.calibrated-judge/3",
        "judge": judge,
        "template": {"text": TEMPLATE, "answer_prefix": None, "system": None},
        "setting": {"scale": "0-9", "rule": "expected", "temperature": 1.0, "mitigation": "none"},
        "state": {"temperature_": 1.0, "params": {}, "calibrator": {}},
        "human_range": [1, 5],
        "fitted_on": "x",
    }
    path.write_text(json.dumps(saved))
    return path


def test_a_saved_judge_naming_code_imports_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "trap_saved.py").write_text(
        f"open({str(tmp_path / 'imported')!r}, 'w').close()\ndef make(model, **options): ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _saved_judge(tmp_path / "judge.json", {"model": "m", "backend": "trap_saved:make"})
    with pytest.raises(NumbiasError, match="not a registered backend"):
        CalibratedJudge.load(path)
    assert "trap_saved" not in sys.modules and not (tmp_path / "imported").exists()


def test_a_saved_judge_sends_nothing_to_its_recorded_server(
    tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from numbias.cli import main

    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    judge = {"model": "m", "backend": "openai", "options": {"base_url": url, "api_key_env": SECRET, "api_key": "k"}}
    path = _saved_judge(tmp_path / "judge.json", judge)
    (tmp_path / "items.csv").write_text("word\ngood\nbad\n")
    monkeypatch.setattr(os, "environ", _Environ(os.environ, **{SECRET: "do-not-send"}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys, "argv", ["numbias", "score", "--calibrated", "judge.json", "--data", "items.csv", "--out", "o"]
    )
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    assert f"judge.json was scored against {url}, which is not used: pass --base-url" in capsys.readouterr().err
    assert not _arrived(listener) and SECRET not in _Environ.read
    mine = "http://localhost:8000/v1"
    loaded = CalibratedJudge.load(path, base_url=mine)  # the user's server and default key, never the file's
    assert loaded.judge_config.options == {"base_url": mine} and loaded.notes == []
    with_key = CalibratedJudge.load(path, base_url=mine, api_key_env="MY_KEY")
    assert with_key.judge_config.options == {"base_url": mine, "api_key_env": "MY_KEY"}


def test_replicas_named_by_a_file_are_never_contacted(
    folder: Path, tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list of servers in a results folder or a saved judge is routing like one URL:
    shown, never used; only the user's own list (``--base-url A,B``) is."""
    with socket.create_server(("127.0.0.1", 0)) as other:
        other.settimeout(0.3)
        urls = [f"http://127.0.0.1:{s.getsockname()[1]}/v1" for s in (listener, other)]
        replicas = [urls[0], {"url": urls[1], "concurrency": 4}]
        monkeypatch.setattr(os, "environ", _Environ(os.environ, **{SECRET: "do-not-send"}))
        config = yaml.safe_load((folder / "config.yaml").read_text())
        config["judges"][0]["options"]["base_url"] = replicas
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        (folder / "report.html").unlink()
        assert rebuild(folder) == folder / "report.html"
        path = _saved_judge(
            tmp_path / "judge.json",
            {"model": "m", "backend": "openai", "options": {"base_url": replicas, "api_key_env": SECRET}},
        )
        with pytest.raises(
            NumbiasError,
            match=r"judge.json was scored against \['http://127.0.0.1:.*which is not "
            "used: pass --base-url",
        ):
            CalibratedJudge.load(path)
        mine = "http://10.0.0.1:8000/v1,http://10.0.0.2:8000/v1"
        assert CalibratedJudge.load(path, base_url=mine).judge_config.options == {"base_url": mine}
        assert not _arrived(listener) and not _arrived(other) and SECRET not in _Environ.read
