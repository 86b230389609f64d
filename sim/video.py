"""Episode videos with the instruction and the current subtask drawn on every frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

CAPTION_HEIGHT = 48  # keeps (2H + caption) a multiple of 16 for H = 128 (mp4 macro blocks)
SCALE = 2


def annotate(frame: np.ndarray, instruction: str, subtask: str, success: bool | None = None) -> np.ndarray:
    """(H, W, 3) uint8 -> (SCALE*H + CAPTION_HEIGHT, SCALE*W, 3) uint8 with a caption bar on top."""
    image = Image.fromarray(frame).resize((frame.shape[1] * SCALE, frame.shape[0] * SCALE), Image.NEAREST)
    canvas = Image.new("RGB", (image.width, image.height + CAPTION_HEIGHT), (20, 20, 20))
    canvas.paste(image, (0, CAPTION_HEIGHT))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    draw.text((6, 4), f"goal: {instruction}", fill=(255, 255, 255), font=font)
    status = "" if success is None else ("  [success]" if success else "")
    draw.text((6, 24), f"subtask: {subtask}{status}", fill=(255, 220, 90), font=font)
    return np.asarray(canvas)


def write_video(path: str | Path, frames: list[np.ndarray], instruction: str, subtasks: list[str],
                fps: int = 20, success: bool | None = None) -> Path:
    """Write an .mp4 (or .gif, by suffix) of the frames with captions; returns the path."""
    import imageio.v2 as imageio

    if not frames:
        raise ValueError("no frames to write")
    path = Path(path)
    labels = list(subtasks) + [subtasks[-1] if subtasks else ""] * (len(frames) - len(subtasks))
    annotated = [annotate(f, instruction, s) for f, s in zip(frames, labels)]
    annotated.append(annotate(frames[-1], instruction, labels[-1], success))
    if path.suffix == ".gif":
        imageio.mimsave(path, annotated, duration=1000 / fps, loop=0)
    else:
        imageio.mimsave(path, annotated, fps=fps, macro_block_size=16)
    return path
