"""A KV-cache layer for decoding loops that append to the cache and cut it back every step.

Contrastive search appends k candidate entries per step, keeps one and drops the rest. Imported
only inside those loops: it imports torch and transformers.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer


class InPlaceLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of buffers allocated once.

    ``DynamicLayer.update`` concatenates, which copies the whole cache of every layer every step;
    at 256 new tokens that copy was 6% of contrastive search's time on the CPU (its cache is cut
    back every step, so transformers' ``StaticLayer`` does not fit either). Here ``update``
    writes the new entries after the current ones (doubling the buffer if it is full) and returns
    views; the model sees the same tensors as with concatenation, so the tokens do not change.
    """

    def __init__(self, layer, capacity: int):
        super().__init__()
        self.lazy_initialization(layer.keys, layer.values)
        self._key_buffer = self._values_buffer = None
        self._allocate(layer.keys, layer.values, capacity)
        self._write(layer.keys, layer.values)

    def _allocate(self, keys, values, capacity: int) -> None:
        old_keys, old_values = self.keys, self.values
        self._key_buffer = keys.new_empty((*keys.shape[:2], capacity, keys.shape[-1]))
        self._values_buffer = values.new_empty((*values.shape[:2], capacity, values.shape[-1]))
        self.keys, self.values = self._key_buffer[:, :, :0], self._values_buffer[:, :, :0]
        if old_keys is not None and old_keys.numel():
            self._write(old_keys, old_values)

    def _write(self, keys, values) -> None:
        start, end = self.keys.shape[-2], self.keys.shape[-2] + keys.shape[-2]
        self._key_buffer[:, :, start:end] = keys
        self._values_buffer[:, :, start:end] = values
        self.keys, self.values = self._key_buffer[:, :, :end], self._values_buffer[:, :, :end]

    def update(self, key_states, value_states, *args, **kwargs):
        needed = self.keys.shape[-2] + key_states.shape[-2]
        if needed > self._key_buffer.shape[-2]:
            self._allocate(self.keys, self.values, max(needed, 2 * self._key_buffer.shape[-2]))
        self._write(key_states, value_states)
        return self.keys, self.values

    def keep(self, n: int, rows: torch.Tensor, chosen: torch.Tensor) -> None:
        """Move entry ``chosen[b]`` of each row b to position n and drop everything after it."""
        # The gather copies before the write, so chosen == n is safe.
        self._key_buffer[:, :, n] = self._key_buffer[rows, :, chosen]
        self._values_buffer[:, :, n] = self._values_buffer[rows, :, chosen]
        self.keys, self.values = self._key_buffer[:, :, : n + 1], self._values_buffer[:, :, : n + 1]
