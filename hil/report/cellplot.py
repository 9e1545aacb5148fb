"""The cell drawn: floor plan, coverage, S_p rings and the latency budget (`cobotguard check --plot`).

`cell_drawing(cfg)` computes everything a drawing shows as plain geometry (shapely, floor metres in the
cell frame): the hazard region, each zone with its margin, the S_p ring at the robot's maximum speed and at
the highest safe speed, each camera's position, viewing direction and covered floor, the parts of the zones
no camera covers, and the T_r stages. It is pure and testable; `CellDrawing.to_dict()` is what
`cobotguard check --json` reports under "drawing". `render_floor_plan` draws it with matplotlib (the
`[plots]` extra) to PNG or SVG, chosen by the file's suffix. `camera_view` projects the same geometry into
one camera's image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from cobotguard.safety.config import CellConfig

PLOT_SUFFIXES = (".png", ".svg")
CAMERA_COLOURS = ["tab:green", "tab:cyan", "tab:olive", "tab:blue"]
RING_SEGMENTS = 64  # quadrant segments of the S_p ring's round corners (a smooth outline, a small file)


@dataclass(frozen=True)
class ZoneDrawing:
    """One zone: its outline and the margin the budget found for it."""

    name: str
    type: str
    polygon: Any  # shapely.Polygon
    margin_m: float | None
    required_m: float | None


@dataclass(frozen=True)
class CameraDrawing:
    """One camera: where it is, where it looks, what floor it covers for the smallest person."""

    name: str
    position_m: tuple[float, float, float]
    heading: tuple[float, float]  # unit vector of the optical axis on the floor
    covered: Any  # shapely geometry


@dataclass(frozen=True)
class CellDrawing:
    """Everything the floor plan and the budget chart show, as geometry and numbers."""

    name: str
    checksum: str
    verdict: str
    reasons: tuple[str, ...]
    hazard: Any  # shapely.Polygon
    zones: tuple[ZoneDrawing, ...]
    cameras: tuple[CameraDrawing, ...]
    # zone name (and "S_p at maximum speed") -> the part of it no camera covers (may be empty)
    uncovered: dict[str, Any]
    rings: dict[str, tuple[float, float, Any]]  # label -> (robot speed, S_p, ring polygon)
    coverage_margin_m: float | None
    stages: tuple[tuple[str, float, str], ...]  # (symbol, ms, source key) summing to T_r
    reaction_time_ms: float
    failing: tuple[str, ...] = field(default=())  # names of zones (and "coverage") with a negative margin

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: polygons as lists of rings of [x, y] (shapely's GeoJSON-like mapping)."""
        return {
            "hazard": polygon_coords(self.hazard),
            "zones": [
                {"name": z.name, "type": z.type, "polygon": polygon_coords(z.polygon), "margin_m": z.margin_m}
                for z in self.zones
            ],
            "cameras": [
                {
                    "name": c.name,
                    "position_m": list(c.position_m),
                    "heading": list(c.heading),
                    "covered": polygon_coords(c.covered),
                }
                for c in self.cameras
            ],
            "uncovered": {name: polygon_coords(g) for name, g in self.uncovered.items()},
            "rings": {
                label: {"speed_mps": speed, "separation_m": s_p, "polygon": polygon_coords(ring)}
                for label, (speed, s_p, ring) in self.rings.items()
            },
            "coverage_margin_m": self.coverage_margin_m,
            "stages": [{"symbol": s, "ms": ms, "source": src} for s, ms, src in self.stages],
            "reaction_time_ms": self.reaction_time_ms,
            "failing": list(self.failing),
        }


def polygon_coords(geometry: Any) -> list[list[list[list[float]]]]:
    """A (multi)polygon as a list of polygons, each a list of rings of [x, y] (empty: [])."""
    polygons = [
        g for g in getattr(geometry, "geoms", [geometry]) if g.geom_type == "Polygon" and not g.is_empty
    ]
    return [
        [[[round(x, 6), round(y, 6)] for x, y in ring.coords] for ring in (p.exterior, *p.interiors)]
        for p in polygons
    ]


def cell_drawing(cfg: CellConfig) -> CellDrawing:
    """The drawing of a validated cell: geometry from the configuration, numbers from its budget."""
    from cobotguard.safety.budget import (
        evaluate,
        reaction_stages,
        sensor_stage_parts,
        separation_required_m,
        worst_sensor,
    )
    from cobotguard.safety.camera import CameraModel
    from cobotguard.safety.checksum import config_checksum
    from cobotguard.safety.config_rules import covered_area

    report = evaluate(cfg)
    short, _ = config_checksum(cfg)
    hazard = shapely.Polygon(cfg.robot.hazard_polygon_m)
    margins = {z.name: z for z in report.zones}
    zones = tuple(
        ZoneDrawing(
            name,
            zone.type,
            shapely.Polygon(zone.polygon_m),
            margins[name].margin_m if name in margins else None,
            margins[name].required_m if name in margins else None,
        )
        for name, zone in cfg.zones.items()
    )
    cameras = []
    for name, sensor in cfg.sensors.items():
        model = CameraModel.from_config(sensor)
        axis = model.rotation.T @ np.array([0.0, 0.0, 1.0])  # optical axis in the cell frame
        flat = np.hypot(axis[0], axis[1])
        heading = (float(axis[0] / flat), float(axis[1] / flat)) if flat > 1e-9 else (0.0, 0.0)
        centre = tuple(float(c) for c in model.centre_m)
        cameras.append(CameraDrawing(name, (centre[0], centre[1], centre[2]), heading, covered_area(sensor)))
    seen = shapely.union_all([c.covered for c in cameras]) if cameras else shapely.Polygon()
    uncovered = {z.name: z.polygon.difference(seen) for z in zones}
    rings: dict[str, tuple[float, float, Any]] = {}
    if cfg.separation.enabled:
        for label, speed in (
            ("maximum speed", cfg.robot.max_speed_mps),
            ("highest safe speed", report.max_safe_robot_speed_mps),
        ):
            s_p = separation_required_m(cfg, speed)
            rings[label] = (speed, s_p, hazard.buffer(s_p, quad_segs=RING_SEGMENTS))
    if "maximum speed" in rings:  # where separation monitoring would need a camera it does not have
        uncovered["S_p at maximum speed"] = rings["maximum speed"][2].difference(seen).difference(hazard)
    failing = [z.name for z in zones if z.margin_m is not None and z.margin_m < 0.0]
    if report.coverage_margin_m is not None and report.coverage_margin_m < 0.0:
        failing.append("coverage")
    worst, _ = worst_sensor(cfg)
    parts = [*sensor_stage_parts(worst, cfg.sensors[worst]), *reaction_stages(cfg)[1:]]  # T_sensor in parts
    stages = tuple((s.symbol, s.ns / 1e6, s.source) for s in parts)
    return CellDrawing(
        name=cfg.name,
        checksum=short,
        verdict=report.verdict,
        reasons=tuple(report.reasons),
        hazard=hazard,
        zones=zones,
        cameras=tuple(cameras),
        uncovered=uncovered,
        rings=rings,
        coverage_margin_m=report.coverage_margin_m,
        stages=stages,
        reaction_time_ms=report.reaction_time_ns / 1e6,
        failing=tuple(failing),
    )


def plot_suffix(path: Path) -> str:
    """The drawing's format from the file name, or ValueError naming what is accepted."""
    suffix = path.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise ValueError(f"{path}: expected a file name ending in {' or '.join(PLOT_SUFFIXES)}")
    return suffix


def _patch(ax: Any, geometry: Any, **style: Any) -> list[Any]:
    """Add a (multi)polygon as filled matplotlib patches (holes kept); returns them."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath

    patches = []
    for polygon in getattr(geometry, "geoms", [geometry]):
        if polygon.geom_type != "Polygon" or polygon.is_empty:
            continue
        rings = [np.asarray(polygon.exterior.coords), *(np.asarray(r.coords) for r in polygon.interiors)]
        vertices = np.concatenate(rings)
        codes = np.concatenate(
            [[MplPath.MOVETO] + [MplPath.LINETO] * (len(r) - 2) + [MplPath.CLOSEPOLY] for r in rings]
        )
        patch = PathPatch(MplPath(vertices, codes), **style)
        ax.add_patch(patch)
        patches.append(patch)
    return patches


def draw(drawing: CellDrawing) -> Any:
    """The figure: the floor plan above, the T_r stages as one stacked bar below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bar) = plt.subplots(2, 1, figsize=(10, 9), gridspec_kw={"height_ratios": [5, 1]})
    for label, (speed, s_p, ring) in drawing.rings.items():
        dashes = "--" if label == "maximum speed" else ":"
        _patch(ax, ring, fill=False, edgecolor="tab:purple", linestyle=dashes, linewidth=1.2,
               label=f"S_p {s_p:.3f} m at {label} ({speed:.3f} m/s)")  # fmt: skip
    for camera, colour in zip(drawing.cameras, CAMERA_COLOURS * len(drawing.cameras), strict=False):
        _patch(ax, camera.covered, facecolor=colour, alpha=0.10, edgecolor=colour, linewidth=0.8,
               label=f"covered by {camera.name}")  # fmt: skip
        x, y, z = camera.position_m
        ax.plot([x], [y], marker="^", color=colour, markersize=9)
        ax.annotate("", xy=(x + 0.8 * camera.heading[0], y + 0.8 * camera.heading[1]), xytext=(x, y),
                    arrowprops={"arrowstyle": "->", "color": colour})  # fmt: skip
        ax.annotate(f"{camera.name} ({z:.2f} m high)", (x, y), textcoords="offset points", xytext=(6, -12),
                    fontsize=8, color=colour)  # fmt: skip
    for zone in drawing.zones:
        colour = "tab:red" if zone.type == "protective" else "tab:orange"
        failing = zone.name in drawing.failing
        _patch(ax, zone.polygon, fill=False, edgecolor=colour, linewidth=3.0 if failing else 1.5,
               label=f"{zone.type} zone {zone.name}")  # fmt: skip
        margin = "-" if zone.margin_m is None else f"{zone.margin_m:+.3f} m"
        x0, y0 = zone.polygon.exterior.coords[0]
        ax.annotate(f"{zone.name}: margin {margin}" + (" FAILS" if failing else ""), (x0, y0), fontsize=8,
                    color=colour, textcoords="offset points", xytext=(3, 3))  # fmt: skip
    for name, blind in drawing.uncovered.items():
        if not blind.is_empty:
            _patch(ax, blind, fill=False, hatch="////", edgecolor="black", linewidth=0.0,
                   label=f"not covered ({name})")  # fmt: skip
    _patch(ax, drawing.hazard, facecolor="tab:gray", alpha=0.6, edgecolor="black", label="hazard region")
    ax.set_aspect("equal", adjustable="datalim")  # fill the box: a wide cell keeps its height
    ax.autoscale_view()
    ax.set_xlabel("x (m, cell frame)")
    ax.set_ylabel("y (m)")
    ax.grid(True, linewidth=0.3)
    margin = "-" if drawing.coverage_margin_m is None else f"{drawing.coverage_margin_m:+.3f} m"
    ax.text(0.01, 0.01, f"coverage margin {margin}", transform=ax.transAxes, fontsize=8)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, framealpha=0.8)
    fig.suptitle(f"{drawing.name}   checksum {drawing.checksum}   verdict {drawing.verdict.upper()}")

    left = 0.0
    for symbol, ms, source in drawing.stages:
        bar.barh([0], [ms], left=[left], edgecolor="black", label=f"{symbol} {ms:.1f} ms [{source}]")
        left += ms
    bar.set_yticks([])
    bar.set_ylim(-0.6, 0.6)
    bar.set_xlabel(f"reaction time budget T_r = {drawing.reaction_time_ms:.1f} ms (ms)")
    bar.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    fig.tight_layout()
    return fig


def render_floor_plan(drawing: CellDrawing, path: Path) -> Path:
    """Draw the cell to PNG or SVG (by suffix); returns the path."""
    import matplotlib.pyplot as plt

    suffix = plot_suffix(path)
    fig = draw(drawing)
    # SVGs without a date or random ids, so that the same cell gives the same file; text stays text
    metadata = {"Date": None} if suffix == ".svg" else {}
    with plt.rc_context({"svg.hashsalt": "cobotguard", "svg.fonttype": "none"}):
        fig.savefig(path, dpi=100, metadata=metadata, bbox_inches="tight")
    plt.close(fig)
    return path


# -- one camera's view -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraView:
    """The cell's geometry as one camera sees it: pixel outlines (NaN where behind the camera)."""

    name: str
    width_px: int
    height_px: int
    outlines: dict[str, np.ndarray]  # label -> (N, 2) pixels along the outline, NaN-separated pieces
    person_foot_px: tuple[float, float]  # the smallest protected person at the far edge of the coverage
    person_head_px: tuple[float, float]
    person_floor_m: tuple[float, float]
    person_height_m: float


def _densified_ring(polygon: Any, step_m: float = 0.02) -> np.ndarray:
    """The exterior of a polygon as points every `step_m` (straight floor lines bend in the image only
    through lens models we do not have, but densifying keeps segments behind the camera short)."""
    ring = shapely.segmentize(polygon.exterior, step_m)
    return np.asarray(ring.coords)


def camera_view(cfg: CellConfig, sensor_name: str) -> CameraView:
    """Hazard, zones and the S_p ring at maximum speed in one camera's pixels, and the smallest person."""
    from cobotguard.safety.budget import separation_required_m
    from cobotguard.safety.camera import CameraModel
    from cobotguard.safety.config_rules import covered_area

    sensor = cfg.sensors[sensor_name]
    model = CameraModel.from_config(sensor)
    shapes: dict[str, Any] = {"hazard region": shapely.Polygon(cfg.robot.hazard_polygon_m)}
    for name, zone in cfg.zones.items():
        shapes[f"{zone.type} zone {name}"] = shapely.Polygon(zone.polygon_m)
    if cfg.separation.enabled:
        s_p = separation_required_m(cfg, cfg.robot.max_speed_mps)
        shapes[f"S_p {s_p:.3f} m at maximum speed"] = shapes["hazard region"].buffer(s_p, quad_segs=16)
    outlines = {}
    for label, polygon in shapes.items():
        floor = _densified_ring(polygon)
        u, v = model.floor_to_pixel(floor[:, 0], floor[:, 1])
        outlines[label] = np.column_stack([u, v])
    # the smallest protected person where the camera sees one least well: the covered point farthest away
    covered = covered_area(sensor)
    boundary = np.concatenate([_densified_ring(p, 0.05) for p in getattr(covered, "geoms", [covered])])
    far = boundary[np.argmax(np.hypot(*(boundary - model.centre_m[:2]).T))]
    height = sensor.assumed_person_height_m
    foot = model.project(far[0], far[1], 0.0)
    head = model.project(far[0], far[1], height)
    return CameraView(
        sensor_name, sensor.image_width_px, sensor.image_height_px, outlines,
        (float(foot[0]), float(foot[1])), (float(head[0]), float(head[1])),
        (float(far[0]), float(far[1])), height,
    )  # fmt: skip


def render_camera_view(view: CameraView, path: Path, photo: Path | None = None) -> Path:
    """Draw a camera's view to PNG or SVG, over a photo taken from it when given (same size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suffix = plot_suffix(path)
    fig, ax = plt.subplots(figsize=(view.width_px / 100, view.height_px / 100 + 0.6))
    if photo is not None:
        from PIL import Image

        with Image.open(photo) as image:
            if image.size != (view.width_px, view.height_px):
                raise ValueError(
                    f"{photo}: {image.size[0]}x{image.size[1]} px; expected the camera's "
                    f"{view.width_px}x{view.height_px} px"
                )
            ax.imshow(np.asarray(image.convert("RGB")))
    else:
        ax.imshow(np.full((view.height_px, view.width_px, 3), 235, dtype=np.uint8))
    colours = {"hazard": "black", "protective": "tab:red", "warning": "tab:orange", "S_p": "tab:purple"}
    for label, pixels in view.outlines.items():
        colour = next((c for key, c in colours.items() if label.startswith(key)), "tab:blue")
        ax.plot(pixels[:, 0], pixels[:, 1], color=colour, linewidth=1.5, label=label)
    (fu, fv), (hu, hv) = view.person_foot_px, view.person_head_px
    length = float(np.hypot(fu - hu, fv - hv))  # the person's image length (it leans off-axis)
    half_width = 0.15 * length  # a person is about 0.3 x as wide as tall
    ax.fill([fu - half_width, fu + half_width, hu + half_width, hu - half_width],
            [fv, fv, hv, hv], color="tab:blue", alpha=0.5,
            label=f"smallest protected person ({view.person_height_m} m, {length:.0f} px) at "
                  f"({view.person_floor_m[0]:.2f}, {view.person_floor_m[1]:.2f}) m")  # fmt: skip
    ax.set_xlim(0, view.width_px)
    ax.set_ylim(view.height_px, 0)
    ax.set_title(f"camera {view.name}", fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=6, ncol=2)
    metadata = {"Date": None} if suffix == ".svg" else {}
    with plt.rc_context({"svg.hashsalt": "cobotguard", "svg.fonttype": "none"}):
        fig.savefig(path, dpi=100, metadata=metadata, bbox_inches="tight")
    plt.close(fig)
    return path
