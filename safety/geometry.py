"""Compiled floor geometry for the safety step: point in polygon and point-to-polygon distance.

Polygons are padded arrays `(MAX_VERTICES, 2)` with a vertex count `n`; the closing edge from vertex
n-1 back to vertex 0 is implied. Points on the boundary count as inside (fail closed). Config-time
geometry (validity, coverage) uses shapely; these kernels run in the loop and allocate nothing.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=False)
def point_in_polygon(vertices: np.ndarray, n: int, x: float, y: float) -> bool:
    """Even-odd crossing test: True when (x, y) lies strictly inside the polygon's first n vertices."""
    inside = False
    j = n - 1
    for i in range(n):
        xi = vertices[i, 0]
        yi = vertices[i, 1]
        xj = vertices[j, 0]
        yj = vertices[j, 1]
        if (yi > y) != (yj > y):
            x_cross = xi + (y - yi) * (xj - xi) / (yj - yi)
            if x < x_cross:
                inside = not inside
        j = i
    return inside


@njit(cache=False)
def distance_squared_to_segment(ax: float, ay: float, bx: float, by: float, x: float, y: float) -> float:
    """Squared distance from (x, y) to the segment a-b."""
    dx = bx - ax
    dy = by - ay
    px = x - ax
    py = y - ay
    length2 = dx * dx + dy * dy
    t = 0.0
    if length2 > 0.0:
        t = (px * dx + py * dy) / length2
        if t < 0.0:
            t = 0.0
        elif t > 1.0:
            t = 1.0
    ex = px - t * dx
    ey = py - t * dy
    return ex * ex + ey * ey


@njit(cache=False)
def distance_to_boundary(vertices: np.ndarray, n: int, x: float, y: float) -> float:
    """Distance from (x, y) to the polygon's boundary."""
    best = np.inf
    j = n - 1
    for i in range(n):
        d2 = distance_squared_to_segment(vertices[j, 0], vertices[j, 1], vertices[i, 0], vertices[i, 1], x, y)
        if d2 < best:
            best = d2
        j = i
    return math.sqrt(best)


@njit(cache=False)
def distance_to_region(vertices: np.ndarray, n: int, x: float, y: float) -> float:
    """Distance from (x, y) to the closed polygon region: 0 inside or on the boundary."""
    if point_in_polygon(vertices, n, x, y):
        return 0.0
    return distance_to_boundary(vertices, n, x, y)


@njit(cache=False)
def bbox_distance_squared(bbox: np.ndarray, x: float, y: float) -> float:
    """Squared distance from (x, y) to the box (xmin, ymin, xmax, ymax); a lower bound for its polygon."""
    dx = 0.0
    if x < bbox[0]:
        dx = bbox[0] - x
    elif x > bbox[2]:
        dx = x - bbox[2]
    dy = 0.0
    if y < bbox[1]:
        dy = bbox[1] - y
    elif y > bbox[3]:
        dy = y - bbox[3]
    return dx * dx + dy * dy


# Slack on the bounding-box shortcut so rounding can never skip a polygon that is within reach.
BBOX_SLACK_M = 1e-6


@njit(cache=False)
def within_distance(
    vertices: np.ndarray, n: int, bbox: np.ndarray, x: float, y: float, radius: float
) -> bool:
    """True when (x, y) is inside the polygon or within `radius` of it (radius >= 0)."""
    reach = radius + BBOX_SLACK_M
    if bbox_distance_squared(bbox, x, y) > reach * reach:
        return False
    return distance_to_region(vertices, n, x, y) <= radius
