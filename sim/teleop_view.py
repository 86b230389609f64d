"""The live view of a teleop session: both cameras side by side, upscaled, with the instruction, the recording
state, the counts and the keys written on it (compose_frame: numpy and cv2 drawing only, no display), and the
OpenCV window that shows it and reads keys (OpenCvWindow: needs a display; display_problem says why not)."""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from sim.teleop_keys import KEY_HELP, SessionState

FONT = cv2.FONT_HERSHEY_SIMPLEX
LINE_HEIGHT = 22
WHITE, GREY, YELLOW, RED = (255, 255, 255), (160, 160, 160), (0, 220, 255), (0, 0, 230)  # BGR


def compose_frame(observation: dict, state: SessionState, *, instruction: str, episodes: int, max_steps: int,
                  display_height: int = 384) -> np.ndarray:
    """(H', W', 3) BGR uint8: the observation's "<camera>_image"s ((H, W, 3) RGB, row 0 = top) side by side,
    scaled by a whole factor to about display_height, a recording badge on them, and a caption panel below."""
    images = [observation[key] for key in observation if key.endswith("_image")]
    scale = max(1, round(display_height / images[0].shape[0]))
    row = np.concatenate([cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
                          for image in images], axis=1)
    frame = np.ascontiguousarray(row[..., ::-1])  # RGB -> BGR for OpenCV
    _draw_badge(frame, state)
    lines = caption_lines(state, instruction=instruction, episodes=episodes, max_steps=max_steps)
    return np.concatenate([frame, _caption_panel(frame.shape[1], lines)])


def caption_lines(state: SessionState, *, instruction: str, episodes: int,
                  max_steps: int) -> list[tuple[str, tuple[int, int, int]]]:
    """(text, BGR colour) lines under the cameras."""
    counts = (f"seed {state.seed} | step {state.steps}/{max_steps} | kept {state.kept}/{episodes} | "
              f"discarded {state.discarded}")
    lines = [(instruction, WHITE), (counts, WHITE)]
    if state.message:
        lines.append((state.message, YELLOW))
    return lines + [(KEY_HELP, GREY)]


def recording_label(state: SessionState) -> str:
    if state.ended:
        return "ENDED: SUCCESS" if state.success else "ENDED"
    return "REC" if state.recording else "PAUSED"


def _draw_badge(frame: np.ndarray, state: SessionState) -> None:
    colour = RED if state.recording else GREY
    cv2.rectangle(frame, (6, 6), (190, 36), (0, 0, 0), thickness=-1)
    cv2.circle(frame, (22, 21), 8, colour, thickness=-1)
    cv2.putText(frame, recording_label(state), (38, 28), FONT, 0.6, colour, 2, cv2.LINE_AA)


def _caption_panel(width: int, lines: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    wrapped = [(piece, colour) for text, colour in lines for piece in _wrap(text, width - 20)]
    panel = np.full((LINE_HEIGHT * len(wrapped) + 12, width, 3), 24, dtype=np.uint8)
    for index, (text, colour) in enumerate(wrapped):
        cv2.putText(panel, text, (10, LINE_HEIGHT * (index + 1)), FONT, 0.55, colour, 1, cv2.LINE_AA)
    return panel


def _wrap(text: str, width_px: int) -> list[str]:
    """text in lines of at most width_px pixels (a word longer than that gets a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(candidate, FONT, 0.55, 1)[0][0] <= width_px:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines or [""]


def display_problem(environ=os.environ, platform: str = sys.platform) -> str | None:
    """Why no window can open here (None: a display is there). Only Linux-like systems are checked: macOS
    and Windows always have one in a user session."""
    if platform.startswith(("darwin", "win")):
        return None
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return None
    return "DISPLAY and WAYLAND_DISPLAY are unset"


class OpenCvWindow:
    """The session's window: show(frame) and poll_key(wait_ms) -> a cv2.waitKeyEx code (-1: none). Closing the
    window reads as Esc."""

    ESC = 27

    def __init__(self, title: str = "vla teleop"):
        self.title, self.shown = title, False

    def show(self, frame: np.ndarray) -> None:
        cv2.imshow(self.title, frame)
        self.shown = True

    def poll_key(self, wait_ms: int) -> int:
        key = cv2.waitKeyEx(max(1, wait_ms))
        if self.shown and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            return self.ESC
        return key

    def close(self) -> None:
        if self.shown:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
