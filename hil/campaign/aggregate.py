"""Chunk records -> the campaign report: violations, stops without cause, the gap per approach direction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from cobotguard.hil.campaign.runner import CAMPAIGN_FAULTS, VIOLATIONS, PreparedCell

DIRECTION_BINS = 36  # 10 degree sectors around the hazard region
LISTED = 50  # violations and stops without cause listed by index (all are counted)


def summarise(
    cell: PreparedCell, seed: int, chunks: Iterable[dict[str, Any]], *, listed: int = LISTED
) -> dict[str, Any]:
    """The report of a campaign from its chunk records (any order)."""
    records = sorted(chunks, key=lambda c: c["chunk"])
    runs = sum(c["count"] for c in records)
    violations = [v for c in records for v in c["violations"]]
    uncaused = [u for c in records for u in c["stops_without_cause"]]
    directions = np.concatenate([np.asarray(c["from_ddeg"], dtype=float) / 10 for c in records] or [[]])
    gaps = np.concatenate([np.asarray(c["min_gap_mm"], dtype=float) / 1000 for c in records] or [[]])
    p = cell.params[0]
    reach = float(p["intrusion_m"] + p["robot_z_r_m"])
    counts = Counter(v["kind"] for v in violations)
    return {
        "cell": cell.cfg.name,
        "checksum": cell.checksum,
        "seed": seed,
        "runs": runs,
        "chunks": len(records),
        "verdict": "pass" if not violations and not uncaused else "fail",
        "violations": {
            "counts": {kind: counts.get(kind, 0) for kind in VIOLATIONS},
            "listed": sorted(violations, key=lambda v: v["index"])[:listed],
        },
        "stops_without_cause": {
            "count": len(uncaused),
            "listed": sorted(uncaused, key=lambda u: u["index"])[:listed],
        },
        "stopped": sum(c["stopped"] for c in records),
        "stop_reasons": _added(c["stop_reasons"] for c in records),
        "patterns": _added(c["patterns"] for c in records),
        "faults": _added(c["faults"] for c in records),
        "faults_not_simulated": _not_simulated(),
        "contact_gap_m": reach,
        "min_gap_by_direction": by_direction(directions, gaps),
        "min_gap_m": _quantiles(gaps),
        "cycles": sum(c["cycles"] for c in records),
        "cpu_s": round(sum(c["cpu_s"] for c in records), 3),
    }


def _added(dicts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for d in dicts:
        total.update(d)
    return dict(sorted(total.items()))


def _not_simulated() -> list[str]:
    """The catalogue's faults that end at the link endpoint, before the step (covered by the HIL rig)."""
    from cobotguard.hil.faults import fault_names

    played = {catalogue for *_rest, catalogue in CAMPAIGN_FAULTS if catalogue is not None}
    return [name for name in fault_names() if name not in played]


def _quantiles(gaps: np.ndarray) -> dict[str, float | None]:
    if gaps.size == 0:
        return {"min": None, "p01": None, "p05": None, "median": None}
    q = np.quantile(gaps, [0.01, 0.05, 0.5])
    return {"min": float(gaps.min()), "p01": float(q[0]), "p05": float(q[1]), "median": float(q[2])}


def by_direction(directions_deg: np.ndarray, gaps_m: np.ndarray, bins: int = DIRECTION_BINS) -> list[dict]:
    """Per sector of approach directions: count and the smallest-gap distribution (min, p01, p05, median)."""
    width = 360.0 / bins
    sector = np.minimum((np.mod(directions_deg, 360.0) // width).astype(int), bins - 1)
    out = []
    for k in range(bins):
        g = gaps_m[sector == k]
        out.append({"from_deg": k * width, "to_deg": (k + 1) * width, "count": int(g.size), **_quantiles(g)})
    return out
