"""Capability figures of a matched sequence at one score threshold, the PR curve, and what they back.

"Backed" (the verdict): the smallest size band from which every band up, among those with at least
`min_samples` boxes, reaches `required` k-frame recall; bands with fewer boxes are shown but neither back
nor break anything. A configuration's `min_person_height_px` is backed when it is at least that band's
lower edge (as a fraction of its image height).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from cobotguard.hil.capability.metrics import (
    DEFAULT_BAND_EDGES,
    FALSE_POSITIVE,
    TRUE_POSITIVE,
    Matched,
    found_within,
    longest_miss_streaks,
)

REQUIRED_RECALL = 0.95
MIN_BAND_SAMPLES = 20
PR_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))  # 0.05 .. 0.95


def clopper_pearson(found: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided confidence interval of a proportion found / n."""
    if n == 0:
        return (0.0, 1.0)
    alpha = 1.0 - level
    lo = 0.0 if found == 0 else float(stats.beta.ppf(alpha / 2, found, n - found + 1))
    hi = 1.0 if found == n else float(stats.beta.ppf(1 - alpha / 2, found + 1, n - found))
    return (lo, hi)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def band_table(
    m: Matched, threshold: float, k: int, edges: Sequence[float] = DEFAULT_BAND_EDGES
) -> list[dict[str, Any]]:
    """Recall and k-frame recall per size band at this score threshold."""
    found = m.gt_match_score >= threshold
    found_k = found_within(m.gt_frame, m.gt_track, found, k)
    frac = m.gt_fraction
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        last = hi >= edges[-1]
        inside = (frac >= lo) & ((frac <= hi) if last else (frac < hi))
        n, f, fk = int(inside.sum()), int(found[inside].sum()), int(found_k[inside].sum())
        rows.append(
            {
                "lo": lo,
                "hi": hi,
                "lo_px": lo * m.height,
                "hi_px": hi * m.height,
                "n": n,
                "found": f,
                "recall": _ratio(f, n),
                "recall_ci95": list(clopper_pearson(f, n)),
                "found_k": fk,
                "recall_k": _ratio(fk, n),
                "recall_k_ci95": list(clopper_pearson(fk, n)),
            }
        )
    return rows


def overall(m: Matched, threshold: float, k: int) -> dict[str, Any]:
    """Recall, k-frame recall, false positives per frame and precision over every size."""
    found = m.gt_match_score >= threshold
    found_k = found_within(m.gt_frame, m.gt_track, found, k)
    above = m.det_score >= threshold
    tp = int(np.sum(above & (m.det_kind == TRUE_POSITIVE)))
    fp = int(np.sum(above & (m.det_kind == FALSE_POSITIVE)))
    n = len(found)
    return {
        "n": n,
        "found": int(found.sum()),
        "recall": _ratio(int(found.sum()), n),
        "recall_k": _ratio(int(found_k.sum()), n),
        "true_positives": tp,
        "false_positives": fp,
        "fp_per_frame": fp / m.frames if m.frames else None,
        "precision": _ratio(tp, tp + fp),
    }


def streaks(m: Matched, threshold: float, k: int) -> dict[str, Any]:
    """Each track's longest miss streak, their histogram, and how many tracks a k-frame window misses."""
    longest = longest_miss_streaks(m.gt_frame, m.gt_track, m.gt_match_score >= threshold)
    histogram = Counter(longest.values())
    return {
        "tracks": len(longest),
        "longest_per_track": {str(t): v for t, v in sorted(longest.items())},
        "histogram": {str(v): histogram[v] for v in sorted(histogram)},
        "max": max(longest.values(), default=0),
        "tracks_missed_k_frames_in_a_row": sum(v >= k for v in longest.values()),
    }


def pr_curve(
    matched_at: Callable[[float], Matched], k: int, thresholds: Sequence[float] = PR_THRESHOLDS
) -> list[dict[str, Any]]:
    """Recall, k-frame recall, precision and false positives per frame at each score threshold.

    `matched_at(t)` gives the matching of what the detector reports at threshold t; for a detector whose
    output at t is its output at a lower floor filtered (greedy NMS), one matching serves every t.
    """
    return [{"threshold": float(t), **overall(matched_at(float(t)), float(t), k)} for t in thresholds]


def backed_band(
    bands: Sequence[dict[str, Any]], required: float = REQUIRED_RECALL, min_samples: int = MIN_BAND_SAMPLES
) -> int | None:
    """Index of the smallest band from which every measured band up reaches `required` k-frame recall."""
    best = None
    for i in range(len(bands) - 1, -1, -1):
        band = bands[i]
        if band["n"] < max(min_samples, 1):
            continue
        if band["recall_k"] < required:
            break
        best = i
    return best


def verdict(
    bands: Sequence[dict[str, Any]],
    height_px: int,
    declared_px: float,
    declared_height_px: int,
    required: float = REQUIRED_RECALL,
    min_samples: int = MIN_BAND_SAMPLES,
) -> dict[str, Any]:
    """Whether a declared min_person_height_px (of a declared image height) is backed by these bands."""
    best = backed_band(bands, required, min_samples)
    measured = [b for b in bands if b["n"] >= max(min_samples, 1)]
    declared_fraction = declared_px / declared_height_px
    out: dict[str, Any] = {
        "required_recall_k": required,
        "min_band_samples": min_samples,
        "backed_from_fraction": None if best is None else bands[best]["lo"],
        "backed_from_px": None if best is None else bands[best]["lo"] * declared_height_px,
        "measured_up_to_fraction": max((b["hi"] for b in measured), default=None),
        "declared_min_person_height_px": declared_px,
        "declared_fraction": declared_fraction,
        "measured_height_px": height_px,
    }
    if best is None:
        out["backed"] = False
        out["reason"] = (
            f"no size band with >= {min_samples} persons reaches {required:.0%} k-frame recall from it up: "
            f"nothing is backed"
        )
    elif declared_fraction + 1e-9 < bands[best]["lo"]:
        out["backed"] = False
        out["reason"] = (
            f"min_person_height_px {declared_px:g} ({declared_fraction:.1%} of {declared_height_px} px) is "
            f"below what the measurement backs: {required:.0%} k-frame recall holds only from "
            f"{bands[best]['lo']:.0%} of the frame height ({bands[best]['lo'] * declared_height_px:g} px) up"
        )
    else:
        out["backed"] = True
        out["reason"] = (
            f"min_person_height_px {declared_px:g} ({declared_fraction:.1%}) is backed: {required:.0%} "
            f"k-frame recall from {bands[best]['lo']:.0%} of the frame height up"
        )
    return out
