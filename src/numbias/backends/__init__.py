"""Judge backends, registered by name; optional dependencies are imported lazily."""

from numbias.backends.base import Backend, create_backend, describe_backend, register_backend

__all__ = ["Backend", "create_backend", "describe_backend", "register_backend"]
