"""A bounded cache of loaded models: a sweep over many checkpoints holds only the last few.

Loading a model takes seconds to minutes, so rendering and scoring keep the ones they loaded;
but a checkpoint is gigabytes, so they keep only the ``model_cache_size()`` most recently used
(2 by default: a sweep alternating two models reloads neither). The oldest is dropped when a new
one comes in, and the cache's ``on_evict`` hook, called with the key once the value is dropped,
gives the accelerator's memory back.

The bound comes from ``set_model_cache_size(n)`` if called, else ``PROMPTLAB_MODEL_CACHE``:

    >>> cache = ModelCache("example", size=1)
    >>> cache.get_or_load("a", lambda: "model a"), cache.get_or_load("b", lambda: "model b")
    ('model a', 'model b')
    >>> list(cache.keys())
    ['b']
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

from promptlab.errors import ModelError

#: Models each cache holds unless told otherwise.
DEFAULT_MODEL_CACHE_SIZE = 2
MODEL_CACHE_ENV = "PROMPTLAB_MODEL_CACHE"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_size_override: int | None = None
_CACHES: weakref.WeakSet[ModelCache[object, object]] = weakref.WeakSet()


def _check_size(size: object, what: str) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ModelError(_bad_size(what, size))
    return size


def _bad_size(what: str, size: object) -> str:
    return f"{what} {size!r}: expected a whole number of models, at least 1 (default {DEFAULT_MODEL_CACHE_SIZE})"


def model_cache_size() -> int:
    """How many models each cache keeps: ``set_model_cache_size``'s value, else ``PROMPTLAB_MODEL_CACHE``, else 2."""
    if _size_override is not None:
        return _size_override
    text = os.environ.get(MODEL_CACHE_ENV, "").strip()
    if not text:
        return DEFAULT_MODEL_CACHE_SIZE
    if not text.isdigit() or int(text) < 1:
        raise ModelError(_bad_size(MODEL_CACHE_ENV, text))
    return int(text)


def set_model_cache_size(size: int | None) -> None:
    """Keep at most ``size`` models in every cache from now on (None: back to the environment's); evicts at once."""
    global _size_override
    _size_override = None if size is None else _check_size(size, "model cache size")
    for cache in list(_CACHES):
        cache.shrink()


class ModelCache(Generic[K, V]):
    """Least-recently-used loaded models, at most ``size`` of them (None: ``model_cache_size()``).

    Loads happen under the cache's lock: two threads asking for one model load it once.
    """

    def __init__(
        self, name: str, *, size: int | None = None, on_evict: Callable[[K], None] | None = None
    ) -> None:
        self.name = name
        self._size = None if size is None else _check_size(size, f"{name} cache size")
        self._on_evict = on_evict
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.RLock()
        _CACHES.add(self)  # type: ignore[arg-type]

    @property
    def size(self) -> int:
        """The bound now in force."""
        return self._size if self._size is not None else model_cache_size()

    def get_or_load(self, key: K, load: Callable[[], V]) -> V:
        """The cached value for ``key``, else ``load()``'s, kept after evicting the least recently used."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            # Make room first: the old model's memory is free before the new one loads.
            self._evict_down_to(self.size - 1)
            value = load()
            self._items[key] = value
            return value

    def get(self, key: K) -> V | None:
        """The cached value for ``key`` (now the most recently used), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def keys(self) -> Iterator[K]:
        """Cached keys, least recently used first."""
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def shrink(self) -> None:
        """Evict down to the bound now in force."""
        with self._lock:
            self._evict_down_to(self.size)

    def clear(self) -> None:
        """Evict everything."""
        with self._lock:
            self._evict_down_to(0)

    def _evict_down_to(self, count: int) -> None:
        while len(self._items) > max(count, 0):
            # Only the key stays bound here, so the hook runs with the model already unreferenced.
            key = self._items.popitem(last=False)[0]
            if self._on_evict is not None:
                self._on_evict(key)
