"""The dataset file a command writes (`vla collect`, `vla convert`, `vla robot --record`), removed again
when the command ends before its first episode: a failed run leaves no empty file that makes the rerun
refuse ('already exists')."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from sim.dataset import DatasetWriter


@contextlib.contextmanager
def dataset_output(path: str | os.PathLike, env_name: str, env_args: dict,
                   append: bool = False) -> Iterator[DatasetWriter]:
    """A DatasetWriter for the block. If the block ends (Ctrl-C and errors included) before an episode is
    written, the file is deleted, but only when this call created it: an existing or --append'ed file stays."""
    created = not Path(path).exists()
    writer = DatasetWriter(path, env_name, env_args, append=append)
    try:
        yield writer
    finally:
        if created and writer.num_demos == 0:
            writer.path.unlink(missing_ok=True)
