"""Compiled floor geometry for the safety step: point in polygon and point-to-polygon distance.

Polygons are padded arrays `(MAX_VERTICES, 2)` with a vertex count `n`; the closing edge from vertex
n-1 back to vertex 0 is implied. Edge k runs from vertex k-1 to vertex k; the step's fast variants take
`edge_inverses(...)`, each edge's 1 / length^2 computed once at configuration time, to avoid a division
per edge in the loop. Points on the boundary count as inside (fail closed). Config-time
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
def region_distance_squared(vertices: np.ndarray, n: int, x: float, y: float) -> float:
    """Squared distance from (x, y) to the closed polygon region (0 inside), in one pass over the edges."""
    inside = False
    best = np.inf
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
        d2 = distance_squared_to_segment(xj, yj, xi, yi, x, y)
        if d2 < best:
            best = d2
        j = i
    return 0.0 if inside else best


@njit(cache=False)
def distance_to_region(vertices: np.ndarray, n: int, x: float, y: float) -> float:
    """Distance from (x, y) to the closed polygon region: 0 inside or on the boundary."""
    return math.sqrt(region_distance_squared(vertices, n, x, y))


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
def boundary_distance_squared_fast(
    vertices: np.ndarray, inverses: np.ndarray, n: int, x: float, y: float
) -> float:
    """Squared distance to the polygon's boundary with precomputed 1 / edge length^2 (see `edge_inverses`)."""
    best = np.inf
    j = n - 1
    for i in range(n):
        dx = vertices[i, 0] - vertices[j, 0]
        dy = vertices[i, 1] - vertices[j, 1]
        px = x - vertices[j, 0]
        py = y - vertices[j, 1]
        t = (px * dx + py * dy) * inverses[i]
        if t < 0.0:
            t = 0.0
        elif t > 1.0:
            t = 1.0
        ex = px - t * dx
        ey = py - t * dy
        d2 = ex * ex + ey * ey
        if d2 < best:
            best = d2
        j = i
    return best


@njit(cache=False)
def region_distance_squared_fast(
    vertices: np.ndarray, inverses: np.ndarray, n: int, x: float, y: float
) -> float:
    """Squared distance to the closed region (0 inside): crossing test first, the edges only if outside."""
    if point_in_polygon(vertices, n, x, y):
        return 0.0
    return boundary_distance_squared_fast(vertices, inverses, n, x, y)


@njit(cache=False)
def region_distance_squared_within(
    vertices: np.ndarray,
    inverses: np.ndarray,
    n: int,
    bounds: np.ndarray,
    x: float,
    y: float,
    reach: float,
) -> float:
    """Squared distance to the region (fast variant), or +inf when it is certainly farther than `reach`.

    `bounds` = (xmin, ymin, xmax, ymax, centre x, centre y, radius): the bounding box and a bounding
    circle, both lower bounds of the distance (see `polygon_bounds`).
    """
    r = reach + BBOX_SLACK_M
    r2 = r * r
    if bbox_distance_squared(bounds, x, y) > r2:
        return np.inf
    cx = x - bounds[4]
    cy = y - bounds[5]
    far = bounds[6] + r
    if cx * cx + cy * cy > far * far:
        return np.inf
    return region_distance_squared_fast(vertices, inverses, n, x, y)


def polygon_bounds(vertices: np.ndarray, n: int) -> np.ndarray:
    """(xmin, ymin, xmax, ymax, cx, cy, radius): bounding box, and a circle around the vertices' mean."""
    v = vertices[:n]
    centre = v.mean(axis=0)
    radius = float(np.sqrt(((v - centre) ** 2).sum(axis=1)).max())
    radius = radius * (1.0 + 1e-12) + 1e-9  # round up: the circle must contain every vertex
    return np.array(
        [v[:, 0].min(), v[:, 1].min(), v[:, 0].max(), v[:, 1].max(), centre[0], centre[1], radius]
    )


def edge_inverses(vertices: np.ndarray, n: int) -> np.ndarray:
    """1 / length^2 of each edge k (vertex k-1 -> vertex k), 0 for a zero-length edge; padded."""
    out = np.zeros(vertices.shape[0])
    for i in range(n):
        dx = vertices[i, 0] - vertices[i - 1 if i > 0 else n - 1, 0]
        dy = vertices[i, 1] - vertices[i - 1 if i > 0 else n - 1, 1]
        length2 = dx * dx + dy * dy
        out[i] = 1.0 / length2 if length2 > 0.0 else 0.0
    return out


@njit(cache=False)
def within_distance(
    vertices: np.ndarray, n: int, bbox: np.ndarray, x: float, y: float, radius: float
) -> bool:
    """True when (x, y) is inside the polygon or within `radius` of it: squared distance <= radius^2."""
    reach = radius + BBOX_SLACK_M
    if bbox_distance_squared(bbox, x, y) > reach * reach:
        return False
    return region_distance_squared(vertices, n, x, y) <= radius * radius
