"""Strategies and small builders shared by the link tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from cobotguard.safety.link import Command, Detections, Endpoint, LinkPolicy, RobotState, Role
from cobotguard.safety.reasons import CommandKind, Reason, StopCategory
from cobotguard.safety.records import MAX_PERSONS, PERSON_DTYPE

CONNECTION_ID = 0x0101
MS = 1_000_000
POLICY = LinkPolicy(max_delay_ns=20 * MS, watchdog_ns=50 * MS)


def endpoint(role: Role, policy: LinkPolicy = POLICY, connection_id: int = CONNECTION_ID) -> Endpoint:
    """An endpoint created at t = 0."""
    return Endpoint(role, connection_id, policy, 0)


def synced(role: Role, policy: LinkPolicy = POLICY, connection_id: int = CONNECTION_ID) -> Endpoint:
    """An endpoint that has already seen a frame delimiter (so it judges the very next bytes)."""
    ep = endpoint(role, policy, connection_id)
    ep.feed(b"\x00", 0)
    return ep


def persons(n: int, seed: int = 0) -> np.ndarray:
    """n plausible person records."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n, dtype=PERSON_DTYPE)
    out["x_m"] = rng.uniform(-6, 6, n)
    out["y_m"] = rng.uniform(-6, 6, n)
    out["z_d_m"] = rng.uniform(0.0, 0.3, n)
    out["score"] = rng.uniform(0.5, 1.0, n).astype(np.float32)
    y0 = rng.uniform(0, 0.5, n)
    x0 = rng.uniform(0, 0.5, n)
    out["box"] = np.stack([y0, x0, y0 + 0.4, x0 + 0.2], axis=1).astype(np.float32)
    return out


def detections(person_count: int = 2, frame_counter: int = 7, seed: int = 0) -> Detections:
    """A detection frame with person_count persons (records capped at MAX_PERSONS)."""
    return Detections(
        sensor_index=0,
        frame_counter=frame_counter,
        person_count=person_count,
        health=0,
        inference_us=21_500,
        t_exposure_ns=900 * MS,
        t_inference_done_ns=930 * MS,
        persons=persons(min(person_count, MAX_PERSONS), seed),
    )


RUN = Command(CommandKind.RUN, 0.25)
STOP = Command(CommandKind.PROTECTIVE_STOP, 0.0, StopCategory.CAT1, Reason.PERSON_IN_PROTECTIVE_ZONE, 0, 1, 0)
STATE = RobotState(0.25, CommandKind.RUN, False, 41)

speeds = st.floats(min_value=0.0, max_value=65.535, allow_nan=False)
small = st.integers(min_value=-1, max_value=127)

commands = st.builds(
    Command,
    kind=st.sampled_from(CommandKind),
    speed_limit_mps=speeds,
    stop_category=st.sampled_from(StopCategory),
    reason=st.sampled_from(Reason),
    reason_sensor=small,
    reason_person=small,
    reason_zone=small,
)
robot_states = st.builds(
    RobotState,
    speed_mps=speeds,
    mode=st.sampled_from(CommandKind),
    at_rest=st.booleans(),
    last_command_seq=st.integers(min_value=-1, max_value=0xFFFFFFFF),
)


@st.composite
def detection_messages(draw: st.DrawFn) -> Detections:
    """Any valid Detections, including NaN/inf floats and counts above MAX_PERSONS."""
    count = draw(st.integers(min_value=0, max_value=255))
    n = min(count, MAX_PERSONS)
    floats = st.floats(width=32, allow_nan=True, allow_infinity=True)
    recs = np.zeros(n, dtype=PERSON_DTYPE)
    for i in range(n):
        recs[i]["x_m"] = draw(st.floats(min_value=-50, max_value=50))
        recs[i]["y_m"] = draw(st.floats(min_value=-50, max_value=50))
        recs[i]["z_d_m"] = draw(st.floats(min_value=0, max_value=10))
        recs[i]["score"] = draw(floats)
        recs[i]["box"] = draw(st.lists(st.floats(min_value=0, max_value=1, width=32), min_size=4, max_size=4))
    i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
    return Detections(
        sensor_index=draw(st.integers(0, 255)),
        frame_counter=draw(st.integers(0, 255)),
        person_count=count,
        health=draw(st.integers(0, 0xFFFFFFFF)),
        inference_us=draw(st.integers(-(2**31), 2**31 - 1)),
        t_exposure_ns=draw(i64),
        t_inference_done_ns=draw(i64),
        persons=recs,
    )
