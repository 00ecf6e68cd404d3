"""Shared fixtures: the benchmark data folder and the embedded judges."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    """The fake judge (tests/plugin_judge.py) registered as ``plugin-judge``: a saved
    judge or a results folder may name only registered backends, never module:attr.
    tests/marker_guard.py fails a test that needs a marker it lacks."""
    import marker_guard
    from numbias.backends.base import register_backend

    register_backend("plugin-judge", "plugin_judge:make", replace=True)
    if not config.pluginmanager.is_registered(marker_guard):
        config.pluginmanager.register(marker_guard, "marker_guard")


@pytest.fixture(autouse=True)
def _restore_registries() -> Iterator[None]:
    """What a test registers (a backend, a task, a mitigation) is gone after it."""
    from numbias.backends.base import BACKENDS
    from numbias.data.tasks import TASKS
    from numbias.mitigations import MITIGATION_REGISTRY
    from numbias.util.plugins import forget

    saved = [(registry, dict(registry)) for registry in (BACKENDS, TASKS, MITIGATION_REGISTRY)]
    yield
    for registry, before in saved:
        registry.clear()
        registry.update(before)
    for group in ("numbias.tasks", "numbias.backends", "numbias.mitigations"):
        forget(group)  # entry points a test's registry held are read again on need


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"benchmark data folder {SHARED} not present")
    return SHARED


def judge_available(name: str) -> bool:
    from numbias.models.catalog import JUDGES

    return importlib.util.find_spec("llama_cpp") is not None and JUDGES[name].installed


@pytest.fixture(scope="session")
def smollm2():
    if not judge_available("smollm2-135m-instruct"):
        pytest.skip("smollm2-135m-instruct or llama-cpp-python not installed")
    from numbias.backends.llamacpp import LlamaCppBackend

    return LlamaCppBackend("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def embedded_judges() -> None:
    """Skips unless all three embedded judges can run (the default alignment study's)."""
    names = ("gemma3-270m-base", "smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct")
    if not all(judge_available(name) for name in names):
        pytest.skip("the embedded judges or llama-cpp-python are not installed")
