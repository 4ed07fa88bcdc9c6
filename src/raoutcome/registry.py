"""A named registry of frozen specs, as the outcome, column, view and body-part registries use it.

Registration keeps order and is idempotent: registering an identical spec again is a no-op, a different
spec under a taken name is refused (a name never changes meaning, so what a checkpoint recorded stays
valid). :func:`temporarily` restores registries after a ``with`` block (tests, notebooks). Torch-free.
"""
from __future__ import annotations

__all__ = ["Registry", "temporarily", "registering"]

from contextlib import contextmanager
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Specs by name, in registration order; ``what`` names the kind in messages ("outcome")."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def add(self, name: str, spec: T) -> T:
        old = self._items.get(name)
        if old is not None and old != spec:
            raise ValueError(f"{self.what} {name!r} is already registered as {old}")
        self._items[name] = spec
        return spec

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} {name!r} (known: {', '.join(self._items)})") from None

    def find(self, name: str | None) -> T | None:
        return self._items.get(name) if name is not None else None

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def values(self) -> tuple[T, ...]:
        return tuple(self._items.values())

    def __contains__(self, name: object) -> bool:
        return name in self._items


@contextmanager
def temporarily(*registries: Registry) -> Iterator[None]:
    """Restore ``registries`` to their present content when the ``with`` block ends."""
    saved = [dict(r._items) for r in registries]
    try:
        yield
    finally:
        for r, items in zip(registries, saved):
            r._items.clear()
            r._items.update(items)


@contextmanager
def registering(registries: Iterable[Registry], register: Callable[[Any], Any], specs: Iterable[Any]) -> Iterator[None]:
    """``register`` each of ``specs`` for the ``with`` block, then restore ``registries`` (see :func:`temporarily`)."""
    with temporarily(*registries):
        for spec in specs:
            register(spec)
        yield
