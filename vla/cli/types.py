"""Range-checked `type=` callables for the `vla` command line.

argparse rejects a value out of range at parse time, naming the option
(`vla serve: error: argument --port: must be an integer in [0, 65535], got 70000`) and exits 2
before anything runs or any file is created. Every int or float option uses one of these.
"""

from __future__ import annotations

import argparse
import math


class IntRange:
    """An integer in [low, high] (high None: no upper bound)."""

    def __init__(self, low: int, high: int | None = None):
        self.low, self.high = low, high

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}") from None
        if value < self.low or (self.high is not None and value > self.high):
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {value}")
        return value

    def describe(self) -> str:
        return f"an integer >= {self.low}" if self.high is None else f"an integer in [{self.low}, {self.high}]"


class FloatRange:
    """A finite number from low to high (no upper bound by default), each end included unless it is open."""

    def __init__(self, low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}") from None
        if not (math.isfinite(value) and self._above_low(value) and self._below_high(value)):
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text}")
        return value

    def _above_low(self, value: float) -> bool:
        return value > self.low if self.low_open else value >= self.low

    def _below_high(self, value: float) -> bool:
        return value < self.high if self.high_open else value <= self.high

    def describe(self) -> str:
        if math.isinf(self.high):
            return f"a finite number {'>' if self.low_open else '>='} {self.low:g}"
        return (f"a finite number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


POSITIVE_INT = IntRange(1)
NON_NEGATIVE_INT = IntRange(0)
SEED = IntRange(0, 2**32 - 1)  # what every seeded library takes (np.random.seed the least)
PORT = IntRange(0, 65535)  # 0: any free port (`vla serve` prints the one it bound)
IMAGE_SIZE = IntRange(8, 1024)  # pixels per side; the simulator renders from 8
WORKERS = IntRange(1, 64)  # processes, each with its own simulator
CHUNK_SIZE = IntRange(1, 128)  # actions per predicted chunk (128: 6.4 s at 20 Hz)
MAX_CONCURRENT = IntRange(1, 256)  # inferences at once: also the server's thread pool
NON_NEGATIVE_FLOAT = FloatRange(0.0)
POSITIVE_FLOAT = FloatRange(0.0, low_open=True)
UNIT_INTERVAL = FloatRange(0.0, 1.0)
SHARE_BELOW_ONE = FloatRange(0.0, 1.0, high_open=True)  # [0, 1): a share or a decay rate
LEARNING_RATE = FloatRange(0.0, 1.0, low_open=True)
ENSEMBLE_DECAY = FloatRange(-5.0, 5.0)  # exp(-decay * i) stays finite over any CHUNK_SIZE chunk
ACTION_NOISE_RAD = FloatRange(0.0, 1.0)
BATCH_WAIT_MS = FloatRange(0.0, 1000.0)
MAX_STREAMS = IntRange(1, 256)  # open streams, each holding a server thread
STREAM_IDLE_S = FloatRange(0.1, 3600.0)
BENCH_SECONDS = FloatRange(0.0, 3600.0, low_open=True)
SOAK_CLIENTS = IntRange(1, 64)  # benchmarks/soak.py MAX_CLIENTS
SOAK_HZ = FloatRange(0.0, 200.0, low_open=True)  # benchmarks/soak.py MAX_HZ
