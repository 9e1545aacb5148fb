"""Compiled floor geometry for the safety step: point in polygon and point-to-polygon distance.

Polygons are padded arrays `(MAX_VERTICES, 2)` with a vertex count `n`; the closing edge from vertex
n-1 back to vertex 0 is implied. The step uses `edge_table(...)`, computed once at configuration time
(edge vectors and 1 / length^2), so that the loop needs no division per edge. Points on the boundary
count as inside (fail closed). Config-time geometry (validity, coverage) uses shapely; these kernels run
in the loop and allocate nothing.
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


@njit(cache=False, inline="always")
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


# Rows of an edge table (see `edge_table`): edge k runs from vertex k to vertex k+1 (mod n).
AX, AY, BY, DX, DY, INV = range(6)


def edge_table(vertices: np.ndarray, n: int) -> np.ndarray:
    """(6, MAX_VERTICES) rows ax, ay, by, dx, dy, 1/|d|^2 (0 for a zero-length edge), built at config time."""
    table = np.zeros((6, vertices.shape[0]))
    for k in range(n):
        ax, ay = vertices[k]
        bx, by = vertices[(k + 1) % n]
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        table[:, k] = (ax, ay, by, dx, dy, 1.0 / length2 if length2 > 0.0 else 0.0)
    return table


# Without NaNs (the step checks every input first) these flags change no result: the minimum is exact in
# any order; they only let LLVM vectorise the loops. No reassociation or contraction is allowed.
@njit(cache=False, fastmath={"nnan", "ninf", "nsz"})
def region_distance_squared_edges(edges: np.ndarray, n: int, x: float, y: float) -> float:
    """Squared distance to the closed polygon region (0 inside) from its edge table.

    Two branch-free loops (so both vectorise): the nearest edge, then the crossings of the ray to +x
    (an upward edge with the point on its left, or a downward edge with the point on its right).
    """
    best = np.inf
    for k in range(n):
        px = x - edges[AX, k]
        py = y - edges[AY, k]
        dx = edges[DX, k]
        dy = edges[DY, k]
        t = (px * dx + py * dy) * edges[INV, k]
        t = t if t > 0.0 else 0.0
        t = t if t < 1.0 else 1.0
        ex = px - t * dx
        ey = py - t * dy
        d2 = ex * ex + ey * ey
        best = d2 if d2 < best else best
    crossings = 0
    for k in range(n):
        side = edges[DX, k] * (y - edges[AY, k]) - edges[DY, k] * (x - edges[AX, k])  # > 0: point on the left
        a_below = edges[AY, k] <= y
        b_below = edges[BY, k] <= y
        crossings += (a_below != b_below) and (side != 0.0) and ((side > 0.0) == a_below)
    return 0.0 if crossings & 1 else best


@njit(cache=False, inline="always")  # the shortcuts are a few instructions: no call for them
def region_distance_squared_within(
    edges: np.ndarray,
    n: int,
    bounds: np.ndarray,
    x: float,
    y: float,
    reach: float,
) -> float:
    """Squared distance to the region, or +inf when it is certainly farther than `reach`.

    `bounds` = (xmin, ymin, xmax, ymax, centre x, centre y, radius, inner radius): the bounding box and
    circle (lower bounds of the distance) and a circle inside the polygon (see `polygon_bounds`).
    """
    r = reach + BBOX_SLACK_M
    r2 = r * r
    if bbox_distance_squared(bounds, x, y) > r2:
        return np.inf
    cx = x - bounds[4]
    cy = y - bounds[5]
    c2 = cx * cx + cy * cy
    far = bounds[6] + r
    if c2 > far * far:
        return np.inf
    if c2 < bounds[7] * bounds[7]:
        return 0.0  # well inside
    return region_distance_squared_edges(edges, n, x, y)


def polygon_bounds(vertices: np.ndarray, n: int) -> np.ndarray:
    """(xmin, ymin, xmax, ymax, cx, cy, radius, inner radius) of a polygon, for the loop's shortcuts.

    The circle around the vertices' mean contains the polygon; the inner circle (same centre; radius 0
    when the centre is outside) lies inside it. Both are rounded the safe way.
    """
    v = vertices[:n]
    centre = v.mean(axis=0)
    radius = float(np.sqrt(((v - centre) ** 2).sum(axis=1)).max())
    radius = radius * (1.0 + 1e-12) + 1e-9
    inner = 0.0
    if point_in_polygon(vertices, n, float(centre[0]), float(centre[1])):
        clearance = float(distance_to_boundary(vertices, n, float(centre[0]), float(centre[1])))
        inner = max(clearance * (1.0 - 1e-9) - 1e-6, 0.0)
    box = [v[:, 0].min(), v[:, 1].min(), v[:, 0].max(), v[:, 1].max()]
    return np.array([*box, centre[0], centre[1], radius, inner])


@njit(cache=False)
def within_distance(
    vertices: np.ndarray, n: int, bbox: np.ndarray, x: float, y: float, radius: float
) -> bool:
    """True when (x, y) is inside the polygon or within `radius` of it: squared distance <= radius^2."""
    reach = radius + BBOX_SLACK_M
    if bbox_distance_squared(bbox, x, y) > reach * reach:
        return False
    return region_distance_squared(vertices, n, x, y) <= radius * radius
