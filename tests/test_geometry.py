"""Compiled floor geometry against shapely (the config-time oracle)."""

import math

import numpy as np
import shapely
from hypothesis import given, note
from hypothesis import strategies as st

from cobotguard.safety.geometry import (
    bbox_distance_squared,
    distance_to_boundary,
    distance_to_region,
    edge_table,
    point_in_polygon,
    polygon_bounds,
    region_distance_squared,
    region_distance_squared_edges,
    region_distance_squared_within,
    within_distance,
)
from cobotguard.safety.records import MAX_VERTICES

coordinate = st.floats(-20.0, 20.0, allow_nan=False)


@st.composite
def star_polygons(draw):
    """Simple polygons: vertices at increasing angles around a centre, random radii (star-shaped)."""
    n = draw(st.integers(3, MAX_VERTICES))
    cx, cy = draw(coordinate), draw(coordinate)
    gaps = draw(st.lists(st.floats(0.2, 1.0), min_size=n, max_size=n))
    radii = draw(st.lists(st.floats(0.1, 5.0), min_size=n, max_size=n))
    angles = np.cumsum(gaps) / sum(gaps) * 2 * math.pi
    points = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii, strict=True)]
    padded = np.zeros((MAX_VERTICES, 2))
    padded[:n] = points
    return padded, n, shapely.Polygon(points)


def bbox_of(padded, n):
    v = padded[:n]
    return np.array([v[:, 0].min(), v[:, 1].min(), v[:, 0].max(), v[:, 1].max()])


@given(star_polygons(), coordinate, coordinate)
def test_point_in_polygon_and_distances_match_shapely(polygon, x, y):
    padded, n, shape = polygon
    point = shapely.Point(x, y)
    boundary_distance = shape.boundary.distance(point)
    note(f"polygon {shape.wkt}, point ({x}, {y}), boundary distance {boundary_distance}")
    assert math.isclose(distance_to_boundary(padded, n, x, y), boundary_distance, rel_tol=1e-9, abs_tol=1e-9)
    if boundary_distance > 1e-9:  # the crossing test is exact only away from the boundary
        assert point_in_polygon(padded, n, x, y) == shape.contains(point)
        assert math.isclose(
            distance_to_region(padded, n, x, y), shape.distance(point), rel_tol=1e-9, abs_tol=1e-9
        )


@given(star_polygons(), coordinate, coordinate, st.floats(0.0, 3.0))
def test_bounding_box_shortcut_never_changes_an_answer(polygon, x, y, radius):
    padded, n, shape = polygon
    exact2 = region_distance_squared(padded, n, x, y)
    assert within_distance(padded, n, bbox_of(padded, n), x, y, radius) == (exact2 <= radius * radius)
    edges = edge_table(padded, n)
    fast2 = region_distance_squared_edges(edges, n, x, y)
    assert math.isclose(fast2, exact2, rel_tol=1e-9, abs_tol=1e-12)
    shortcut = region_distance_squared_within(edges, n, polygon_bounds(padded, n), x, y, radius)
    assert shortcut == fast2 or (shortcut == math.inf and fast2 > radius * radius)


@given(star_polygons(), coordinate, coordinate)
def test_bbox_distance_is_a_lower_bound(polygon, x, y):
    padded, n, _ = polygon
    assert (
        math.sqrt(bbox_distance_squared(bbox_of(padded, n), x, y))
        <= distance_to_region(padded, n, x, y) + 1e-12
    )


def test_square_examples():
    square = np.zeros((MAX_VERTICES, 2))
    square[:4] = [(0, 0), (2, 0), (2, 2), (0, 2)]
    assert point_in_polygon(square, 4, 1.0, 1.0)
    assert not point_in_polygon(square, 4, 3.0, 1.0)
    assert distance_to_region(square, 4, 1.0, 1.0) == 0.0
    assert distance_to_region(square, 4, 5.0, 2.0) == 3.0
    assert distance_to_region(square, 4, 5.0, 6.0) == 5.0  # to the corner (2, 2)
    assert distance_to_boundary(square, 4, 1.0, 1.5) == 0.5
    bbox = bbox_of(square, 4)
    assert within_distance(square, 4, bbox, 2.0, 1.0, 0.0)  # on the boundary counts as inside
    assert within_distance(square, 4, bbox, 2.5, 1.0, 0.5)
    assert not within_distance(square, 4, bbox, 2.5001, 1.0, 0.5)
