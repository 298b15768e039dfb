"""Temporal clip sampling shared by audio and video.

Reference step: pytorchvideo's ``ConstantClipsPerVideoSampler`` at git 28fe037d
(the PyPI 0.1.5 release divides by ``clips`` instead of ``clips - 1``; see the
fixture README §5). Times are exact ``Fraction``s built from the float duration,
as the reference does, so sample and frame indices come out identical.
"""

from __future__ import annotations

from fractions import Fraction


def clip_timepoints(
    duration: float, clip_seconds: int, clips: int
) -> list[tuple[Fraction, Fraction]]:
    """(start, end) of ``clips`` evenly spaced clips of ``clip_seconds`` over ``duration``.

    Clip k starts at k · max(duration − clip_seconds, 0) / (clips − 1). Clips of a
    media item shorter than ``clip_seconds`` all start at 0 and end past its end.
    """
    # float − int stays float, then becomes an exact Fraction: the reference's order.
    last_start = Fraction(max(duration - clip_seconds, 0))
    step = last_start / max(clips - 1, 1)
    return [(step * k, step * k + clip_seconds) for k in range(clips)]
