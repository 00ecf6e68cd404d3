"""Judge backends, registered by name; optional dependencies are imported lazily."""

from numbias.backends.base import Backend, all_backends, create_backend, describe_backend, register_backend

__all__ = ["Backend", "all_backends", "create_backend", "describe_backend", "register_backend"]
