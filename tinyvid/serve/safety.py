"""Safety layers as pluggable checks: each returns None to pass or a reason to refuse.

Prompt checks run before a job is queued (the API answers 422 with the reason); output checks
run on every generated video before it is stored (the job ends `refused` with the reason, and no
video is served). A check is any callable, so a deployment adds its own by appending to a list.

The default output check is statistics-only (no model, nothing to download or train):
  - blank:   the clip barely varies (a collapsed or black sample);
  - noise:   neighbouring pixels are uncorrelated (an untrained or diverged sampler);
  - flicker: the overall brightness jumps between frames, or a frame is not the previous one moved
             a little: even after the best shift of up to 3 pixels, they differ by most of the
             clip's contrast (frames that do not continue one another).
Thresholds leave a wide margin around 500 captioned Moving MNIST test clips (the tests check 300 pass).
`judge_check` adds the course's video judge: the video must show the digits its prompt asks for.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

PromptCheck = Callable[[str], "str | None"]
OutputCheck = Callable[[np.ndarray, str], "str | None"]

# a placeholder list: the course's prompts are digits and directions; a deployment brings its own
DEFAULT_BLOCKLIST = ("gore", "nude", "kill", "bomb")
PRINTABLE = r"[A-Za-z0-9 .,;:!?'\"()\-]*"


def blocklist_check(words: Iterable[str] = DEFAULT_BLOCKLIST) -> PromptCheck:
    """Refuse prompts containing a blocked word (whole words, any case)."""
    words = sorted({w.lower() for w in words})
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.IGNORECASE) if words else None

    def check(prompt: str) -> str | None:
        found = pattern.search(prompt) if pattern else None
        return f"the prompt contains the blocked word {found.group(1).lower()!r}" if found else None

    return check


def length_check(max_chars: int = 200, min_chars: int = 1) -> PromptCheck:
    def check(prompt: str) -> str | None:
        if len(prompt.strip()) < min_chars:
            return f"the prompt is empty (it needs at least {min_chars} non-blank character(s))"
        if len(prompt) > max_chars:
            return f"the prompt has {len(prompt)} characters; the limit is {max_chars}"
        return None

    return check


def charset_check(allowed: str = PRINTABLE) -> PromptCheck:
    """Refuse characters outside `allowed` (a regex character class repeated): control characters,
    invisible Unicode and homoglyphs are how filters get bypassed."""
    pattern = re.compile(allowed)

    def check(prompt: str) -> str | None:
        if pattern.fullmatch(prompt):
            return None
        bad = next(c for c in prompt if not pattern.fullmatch(c))
        return f"the prompt contains a character that is not allowed: {bad!r} (U+{ord(bad):04X})"

    return check


def default_prompt_checks(max_chars: int = 200) -> list[PromptCheck]:
    return [length_check(max_chars), charset_check(), blocklist_check()]


def first_refusal(checks: Sequence[Callable], *args) -> str | None:
    """The reason of the first check that refuses, or None when all pass."""
    for check in checks:
        reason = check(*args)
        if reason:
            return reason
    return None


@dataclass
class OutputThresholds:
    min_std: float = 3.0  # gray levels; real clips have >= 20
    min_spatial_correlation: float = 0.35  # real clips >= 0.65, pixel noise ~0
    max_brightness_jump: float = 0.5  # of the mean brightness, between two frames; real clips <= 0.2
    max_motion_residual: float = 0.65  # of the contrast, after motion compensation; real clips <= 0.45, noise ~1.3
    max_shift: int = 3  # pixels per frame the motion compensation tries (the data moves 2)

    def to_dict(self) -> dict:
        return asdict(self)


def motion_residual(video: np.ndarray, max_shift: int = 3) -> float:
    """Mean over frame pairs of min over shifts |f[t+1] - shift(f[t])|, over the clip's contrast."""
    v = np.asarray(video, dtype=np.float32)
    contrast = float(np.abs(v - v.mean()).mean())
    if len(v) < 2 or contrast == 0:
        return 0.0
    before, after = v[:-1], v[1:]
    best = np.full(len(before), np.inf, dtype=np.float32)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            moved = np.roll(before, (dy, dx), axis=(1, 2))
            best = np.minimum(best, np.abs(after - moved).mean(axis=(1, 2)))
    return float(best.mean() / contrast)


def clip_statistics(video: np.ndarray, max_shift: int = 3) -> dict[str, float]:
    """The numbers the statistics check reads, for a (T, H, W) uint8 clip."""
    v = np.asarray(video)
    if v.ndim != 3:
        raise ValueError(f"expected one clip (T, H, W), got shape {v.shape}")
    v = v.astype(np.float64)
    centred = v - v.mean(axis=(1, 2), keepdims=True)
    pairs = (centred[:, :, 1:] * centred[:, :, :-1]).sum() + (centred[:, 1:] * centred[:, :-1]).sum()
    energy = (centred[:, :, 1:] ** 2).sum() + (centred[:, 1:] ** 2).sum()
    means = v.mean(axis=(1, 2))
    return dict(
        std=float(v.std()),
        spatial_correlation=float(pairs / energy) if energy > 0 else 1.0,
        brightness_jump=float(np.abs(np.diff(means)).max() / (means.mean() + 1.0)) if len(v) > 1 else 0.0,
        motion_residual=motion_residual(v, max_shift),
    )


def statistics_check(thresholds: OutputThresholds | None = None) -> OutputCheck:
    t = thresholds or OutputThresholds()

    def check(video: np.ndarray, prompt: str = "") -> str | None:
        s = clip_statistics(video, t.max_shift)
        if s["std"] < t.min_std:
            return f"blank output: pixel std {s['std']:.2f} < {t.min_std}"
        if s["spatial_correlation"] < t.min_spatial_correlation:
            return (f"noise output: neighbouring pixels correlate {s['spatial_correlation']:.2f} "
                    f"< {t.min_spatial_correlation}")
        if s["brightness_jump"] > t.max_brightness_jump:
            return f"flicker: brightness jumps by {s['brightness_jump']:.2f} of its mean between frames"
        if s["motion_residual"] > t.max_motion_residual:
            return (f"flicker: consecutive frames differ by {s['motion_residual']:.2f}x the clip's contrast even "
                    f"after the best shift of up to {t.max_shift} px (> {t.max_motion_residual}): "
                    "frames do not continue one another")
        return None

    return check


def judge_check(judge=None, min_presence: float = 0.5) -> OutputCheck:
    """The video judge must find the prompt's digits with probability >= min_presence each.

    Prompts outside the caption grammar pass (the judge only reads Moving MNIST). With no judge
    given, the course's trained judge is loaded (`tinyvid.eval.video_judge.load_judge`, trained
    and cached on first use), so this check is opt-in.
    """
    import torch

    from tinyvid.data.moving_mnist import parse_caption, to_model_layout

    state = {"judge": judge}

    def check(video: np.ndarray, prompt: str = "") -> str | None:
        try:
            wanted = sorted({d for d, _ in parse_caption(prompt)})
        except ValueError:
            return None
        if state["judge"] is None:
            from tinyvid.eval.video_judge import load_judge

            state["judge"] = load_judge(progress=False)
        with torch.no_grad():
            p = state["judge"].eval().presence(to_model_layout(np.asarray(video)[None]))[0]
        missing = [d for d in wanted if p[d] < min_presence]
        if missing:
            return (f"the video judge does not see digit(s) {missing} that the prompt asks for "
                    f"(presence {', '.join(f'{p[d]:.2f}' for d in missing)} < {min_presence})")
        return None

    return check


def default_output_checks() -> list[OutputCheck]:
    return [statistics_check()]
