"""Passing a KV cache to a transformers forward call under the name the installed version expects.

transformers 5.24 renamed ``past_key_values`` to ``cache`` (the old name warns on every call and
goes away in 5.40); older versions know only ``past_key_values``. The name is read once per model
class from its ``forward`` signature.
"""

from __future__ import annotations

import inspect
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=None)
def _cache_argument(cls: type) -> str:
    try:
        params = inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def cache_kwargs(module: Any, cache: Any) -> dict[str, Any]:
    """``{name: cache}`` for ``module(...)``, with the argument name this module's forward takes."""
    return {_cache_argument(type(module)): cache}
