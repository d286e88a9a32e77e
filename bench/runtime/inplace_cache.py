"""KV-cache layers that grow in place: ``DynamicCache`` without a copy of the cache every step.

The HF decoding loop appends one entry per step; contrastive search appends k candidate entries
and keeps one. Imported only inside those loops: it imports torch and transformers.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer


class InPlaceLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of buffers allocated once.

    ``DynamicLayer.update`` concatenates, which copies the whole cache of every layer every step:
    6% of the time of contrastive search and of top-p sampling at 256 new tokens on the CPU, and
    the copies evict the weights from the processor's caches. transformers' ``StaticLayer`` writes
    in place but attends over its whole length, and contrastive search cuts its cache back every
    step. Here ``update`` writes the new entries after the current ones (doubling the buffers if
    they are full) and returns views; the model sees the same values as with concatenation, so the
    tokens do not change. Methods that replace the tensors (``reorder_cache``,
    ``batch_select_indices``) or drop them (``reset``) still work: the next ``update`` copies what
    is there into new buffers.
    """

    def __init__(self, layer, capacity: int):
        super().__init__()
        self.lazy_initialization(layer.keys, layer.values)
        self._allocate(layer.keys, layer.values, max(capacity, layer.keys.shape[-2]))

    def _allocate(self, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> None:
        """New buffers of ``capacity`` positions (batch and heads as ``keys``), holding ``keys``/``values``."""
        self._key_buffer = keys.new_empty((*keys.shape[:2], capacity, keys.shape[-1]))
        self._value_buffer = values.new_empty((*values.shape[:2], capacity, values.shape[-1]))
        self.keys, self.values = self._key_buffer[:, :, :0], self._value_buffer[:, :, :0]
        self._write(keys, values)

    def _write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        start, end = self.keys.shape[-2], self.keys.shape[-2] + keys.shape[-2]
        self._key_buffer[:, :, start:end] = keys
        self._value_buffer[:, :, start:end] = values
        self.keys, self.values = self._key_buffer[:, :, :end], self._value_buffer[:, :, :end]

    def update(self, key_states, value_states, *args, **kwargs):
        capacity = self._key_buffer.shape[-2]
        if not self.is_initialized:  # after reset(): start again from these entries
            self.lazy_initialization(key_states, value_states)
            self._allocate(key_states[:, :, :0], value_states[:, :, :0], capacity)
        elif self.keys.data_ptr() != self._key_buffer.data_ptr() or self.values.data_ptr() != self._value_buffer.data_ptr():
            self._allocate(self.keys, self.values, capacity)  # reorder_cache & co. replaced the tensors
        needed = self.keys.shape[-2] + key_states.shape[-2]
        if needed > capacity:
            self._allocate(self.keys, self.values, max(needed, 2 * capacity))
        self._write(key_states, value_states)
        return self.keys, self.values

    def keep(self, n: int, rows: torch.Tensor, chosen: torch.Tensor) -> None:
        """Move entry ``chosen[b]`` of each row b to position n and drop everything after it."""
        # The gather copies before the write, so chosen == n is safe.
        self._key_buffer[:, :, n] = self._key_buffer[rows, :, chosen]
        self._value_buffer[:, :, n] = self._value_buffer[rows, :, chosen]
        self.keys, self.values = self._key_buffer[:, :, : n + 1], self._value_buffer[:, :, : n + 1]


def grow_in_place(cache, capacity: int) -> None:
    """Swap every plain ``DynamicLayer`` of a filled ``cache`` for an :class:`InPlaceLayer` of
    ``capacity`` positions. Other layer types (sliding windows, linear attention) are left as they are."""
    cache.layers = [InPlaceLayer(layer, capacity) if type(layer) is DynamicLayer and layer.is_initialized else layer
                    for layer in cache.layers]
