"""Action tokens on the last `n_bins` ids of a vocabulary, as OpenVLA does.

For x already normalized to [-1, 1]:
    bins = linspace(-1, 1, n_bins);  id = vocab_size - digitize(clip(x, -1, 1), bins)
    decode: bin_centers[clip(vocab_size - id - 1, 0, n_bins - 2)]
(same ids as prismatic/vla/action_tokenizer.py).
"""

from __future__ import annotations

import numpy as np


class ActionTokenizer:
    def __init__(self, vocab_size: int, n_bins: int = 256):
        if n_bins < 2 or vocab_size < n_bins:
            raise ValueError(f"need 2 <= n_bins <= vocab_size, got n_bins={n_bins}, vocab_size={vocab_size}")
        self.vocab_size = int(vocab_size)
        self.n_bins = int(n_bins)
        self.bins = np.linspace(-1.0, 1.0, self.n_bins)
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0

    @property
    def first_id(self) -> int:
        """Smallest id an action can map to (digitize returns at most n_bins)."""
        return self.vocab_size - self.n_bins

    @property
    def token_ids(self) -> np.ndarray:
        """Every id encode() can produce, ascending: [vocab_size - n_bins, vocab_size - 1]."""
        return np.arange(self.first_id, self.vocab_size)

    def encode(self, x) -> np.ndarray:
        """(..., A) floats in [-1, 1] -> (..., A) int64 token ids."""
        x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
        return (self.vocab_size - np.digitize(x, self.bins)).astype(np.int64)

    def decode(self, ids) -> np.ndarray:
        """(..., A) token ids -> (..., A) float bin centres in [-1, 1]."""
        ids = np.asarray(ids, dtype=np.int64)
        index = np.clip(self.vocab_size - ids - 1, 0, self.n_bins - 2)
        return self.bin_centers[index]

    @property
    def token_values(self) -> np.ndarray:
        """(n_bins,) the decoded value of every id in token_ids order: entry b is what class b of a
        logit slice over the action ids means."""
        return self.decode(self.token_ids)

    def mean_of(self, probs) -> np.ndarray:
        """(..., n_bins) probabilities over the ids first_id.. vocab_size - 1 -> (...,) their expected
        decoded value: a readout between bin centres, where argmax jumps from one bin to another."""
        return np.asarray(probs, dtype=np.float64) @ self.token_values

    def ids_to_bins(self, ids) -> np.ndarray:
        """Token ids -> class index in [0, n_bins) (for losses over the action slice)."""
        return np.asarray(ids, dtype=np.int64) - self.first_id

    def bins_to_ids(self, bins) -> np.ndarray:
        return np.asarray(bins, dtype=np.int64) + self.first_id
