"""Float32 weights on llama.cpp: an embedded judge de-quantised to a float32 Hugging Face
folder (where ``numbias train`` starts), and such a folder — that, or a trained stage —
exported to GGUF F32 with llama.cpp's own converter (placed in the cache by the setup
step ``numbias models fetch-converter``, never fetched while judging). The base and the
stages trained from it are then judged on one backend at one precision, so only the
weights differ, and several times faster than transformers on a CPU. The export is made
once, beside the weights, and named by their digest in a judge's identity."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

from numbias.models.catalog import JUDGES, WEIGHTS, ResolvedJudge, cache_dir, resolve, trained_stage
from numbias.util.atomic import write_atomic
from numbias.util.errors import NumbiasError, first_line

FLOAT32_GGUF = "model-f32.gguf"
CONVERTER_ENV = "NUMBIAS_LLAMA_CPP"
"""A llama.cpp source folder whose ``convert_hf_to_gguf.py`` to use instead of the one
fetched from the installed llama-cpp-python's source distribution."""
_CONVERTER_PARTS = ("convert_hf_to_gguf.py", "conversion", "gguf-py")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' progress bars and notices off: GGUF de-quantisation draws on stderr."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def dequantised_folder(base: ResolvedJudge) -> Path:
    """Where :func:`dequantised` keeps a GGUF's float32 folder."""
    return cache_dir() / "dequantised" / f"{base.name}-{base.sha256[:16]}"


def dequantised(base: ResolvedJudge) -> Path:
    """The GGUF de-quantised by transformers (as the transformers backend loads it),
    saved once as a float32 Hugging Face folder in the cache, so every stage, run and
    export starts from the same weights without de-quantising again."""
    folder = dequantised_folder(base)
    if (folder / WEIGHTS).is_file():
        return folder
    import torch
    import transformers

    auto = transformers.AutoModelForCausalLM
    try:
        with quiet_transformers():
            kwargs = {"gguf_file": base.path.name}
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(base.path.parent), **kwargs)
            loaded = auto.from_pretrained(str(base.path.parent), dtype=torch.float32, **kwargs)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise NumbiasError(f"transformers could not load the base {base.name!r}: {first_line(exc)}") from None
    # The GGUF-loaded model is marked quantised and refuses to save: the same tensors in a plain model.
    settings = {k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"}
    with torch.device("meta"):
        model = auto.from_config(type(loaded.config).from_dict(settings), dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), assign=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    partial = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        (partial / "source.json").write_text(json.dumps({"name": base.name, "sha256": base.sha256}))
        partial.replace(folder)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if not (folder / WEIGHTS).is_file():  # else another run saved it first
            raise NumbiasError(
                f"cannot save the de-quantised base in {folder.parent}: {exc.strerror or first_line(exc)}"
            ) from None
    return folder


FETCH_COMMAND = "numbias models fetch-converter"
"""The setup step that places the converter in the cache (``make setup`` runs it)."""


def converter() -> Path:
    """llama.cpp's ``convert_hf_to_gguf.py``: from :data:`CONVERTER_ENV`, else the copy
    :func:`fetch_converter` placed in the cache. Never fetched here: a judging run stays
    offline and its cost does not depend on the network."""
    if override := os.environ.get(CONVERTER_ENV):
        script = Path(override).expanduser() / _CONVERTER_PARTS[0]
        if not script.is_file():
            raise NumbiasError(f"{CONVERTER_ENV}={override}: no {_CONVERTER_PARTS[0]} in that folder")
        return script
    folder = converter_folder()
    if not (folder / _CONVERTER_PARTS[0]).is_file():
        raise NumbiasError(
            f"exporting to GGUF needs llama.cpp's converter, not in {folder}: run "
            f"`{FETCH_COMMAND}` once (or set {CONVERTER_ENV} to a llama.cpp source folder)"
        )
    return folder / _CONVERTER_PARTS[0]


def converter_folder() -> Path:
    """Where the converter of the installed llama-cpp-python lives in the cache: named by
    its version, so the converter and the runtime agree on the format."""
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        raise NumbiasError("exporting to GGUF needs llama-cpp-python: pip install 'numbias[llama]'") from None
    return cache_dir() / f"llama.cpp-convert-{version}"


def fetch_converter() -> Path:
    """The setup step behind :data:`FETCH_COMMAND`: the converter's files taken out of the
    installed llama-cpp-python's source distribution into the cache, once (an existing
    copy is kept). The only download numbias makes, and only when asked."""
    folder = converter_folder()
    if not (folder / _CONVERTER_PARTS[0]).is_file():
        version = folder.name.removeprefix("llama.cpp-convert-")
        with tempfile.TemporaryDirectory() as tmp:
            _extract_converter(_download_sdist(version, Path(tmp)), folder)
    return folder / _CONVERTER_PARTS[0]


def _download_sdist(version: str, into: Path) -> Path:
    """``llama-cpp-python==version``'s source distribution, downloaded by pip into ``into``."""
    got = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(into),
            f"llama-cpp-python=={version}",
        ],
        capture_output=True,
        text=True,
    )
    sdists = list(into.glob("*.tar.gz"))
    if got.returncode or not sdists:
        raise NumbiasError(
            f"cannot fetch llama-cpp-python {version}'s source for its GGUF converter "
            f"({first_line(got.stderr.strip() or 'no sdist')}); set {CONVERTER_ENV} to a "
            "llama.cpp source folder"
        )
    return sdists[0]


def _extract_converter(sdist: Path, folder: Path) -> None:
    """The converter's files out of the sdist's ``vendor/llama.cpp``, placed whole."""
    partial = Path(tempfile.mkdtemp(prefix=folder.name, dir=_made(folder.parent)))
    with tarfile.open(sdist) as tar:
        root = f"{tar.getnames()[0].split('/')[0]}/vendor/llama.cpp/"
        members = [
            m
            for m in tar.getmembers()
            if m.name.startswith(root)
            and m.name[len(root) :].split("/")[0] in _CONVERTER_PARTS
            and (m.isfile() or m.isdir())
        ]
        for m in members:
            m.name = m.name[len(root) :]
        tar.extractall(partial, members=members, filter="data")
    if not (partial / _CONVERTER_PARTS[0]).is_file():
        shutil.rmtree(partial, ignore_errors=True)
        raise NumbiasError(
            f"{sdist.name} has no {_CONVERTER_PARTS[0]}; set {CONVERTER_ENV} to a llama.cpp source folder"
        )
    with contextlib.suppress(OSError):  # else another run placed it first
        partial.replace(folder)
    shutil.rmtree(partial, ignore_errors=True)


def _made(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NumbiasError(f"cannot write in {folder}: {exc.strerror}") from None
    return folder


def export_gguf(folder: Path, out: Path) -> Path:
    """A float32 Hugging Face folder as a GGUF F32 file (written whole, then renamed)."""
    return write_atomic(out, lambda partial: _convert(folder, partial))


def _convert(folder: Path, partial: Path) -> None:
    """llama.cpp's converter writing ``folder`` into ``partial`` as a GGUF F32 file."""
    done = subprocess.run(
        [sys.executable, str(converter()), str(folder), "--outtype", "f32", "--outfile", str(partial)],
        capture_output=True,
        text=True,
    )
    if done.returncode or not partial.is_file() or not partial.stat().st_size:
        lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
        raise NumbiasError(f"exporting {folder} to GGUF failed: {lines[-1] if lines else 'no output'}")


def float32_source(model: str) -> tuple[str, Path, str]:
    """A judge's float32 weights: its name, folder and digest (a trained stage's weights;
    an embedded judge's GGUF, de-quantised when its folder is first needed)."""
    if (stage := trained_stage(model)) is not None:
        return stage.name, stage.path, stage.weights_sha256
    if model in JUDGES:
        judge = resolve(model)
        return judge.name, dequantised_folder(judge), judge.sha256
    raise NumbiasError(f"judge {model!r}: float32 weights exist for embedded judges and trained stages only")


def float32_gguf(model: str) -> ResolvedJudge:
    """The judge's float32 weights as a GGUF F32 file, exported once beside them."""
    name, folder, sha256 = float32_source(model)
    if model in JUDGES:
        folder = dequantised(resolve(model))
    out = folder / FLOAT32_GGUF
    if not out.is_file():
        export_gguf(folder, out)
    return ResolvedJudge(name, out, sha256, None)
