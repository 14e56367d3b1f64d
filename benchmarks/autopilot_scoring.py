"""Pure helpers of the autopilot suite: the oracle's window count chosen in hindsight, where a
decay starts, how long until a post-change model serves, and the issue's targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "DECAY_GAP",
    "best_window_count",
    "decay_starts",
    "labelled_until",
    "windows_to_post_change",
]

DECAY_GAP = 0.02
"""A decay: the oracle beats the never-retrained model by this much, three windows running."""


def labelled_until(window: int, warmup: int, delay: int) -> int:
    """The last window (absolute index) whose labels are in before ``window`` is served: the
    warm-up windows are labelled from the start, a replayed window ``delay`` windows after it
    ends (0: by its end)."""
    return max(warmup - 1, window - 1 - delay)


def best_window_count(accuracy: Mapping[int, Sequence[float]]) -> int:
    """The K (most recent windows trained on) whose model had the best mean accuracy; the
    smaller K on a tie (fewer rows to train on for the same result)."""
    if not accuracy:
        raise ValueError("accuracy: expected at least one K with its accuracy per window, got none")
    return min(accuracy, key=lambda k: (-sum(accuracy[k]) / max(len(accuracy[k]), 1), k))


def decay_starts(
    static: Sequence[float], oracle: Sequence[float], gap: float = DECAY_GAP, run: int = 3
) -> list[int]:
    """Windows where a decay starts: the oracle beats the never-retrained model by ``gap`` or
    more in that window and the ``run - 1`` after it, and did not in the window before."""
    behind = [o - s >= gap for s, o in zip(static, oracle, strict=True)]
    starts = []
    for w in range(len(behind) - run + 1):
        if all(behind[w : w + run]) and (w == 0 or not behind[w - 1]):
            starts.append(w)
    return starts


def windows_to_post_change(
    start: int,
    served: Sequence[Sequence[int]],
    registered_in: Mapping[int, int],
    delay: int,
) -> int | None:
    """Windows from a decay's ``start`` until every row of a window is served by a model
    registered once the start's labels could be in (``start + delay`` or later); None if
    never. ``served[w]`` are the versions that answered window ``w``'s rows;
    ``registered_in[v]`` the window version ``v`` was registered in (-1: before the replay)."""
    for w in range(start, len(served)):
        if served[w] and all(registered_in.get(v, -1) >= start + delay for v in served[w]):
            return w - start
    return None
