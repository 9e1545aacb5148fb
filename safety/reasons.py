"""Command kinds, reason codes and sensor health flags shared by every layer.

Values are part of the trace and wire formats: append new members, never renumber.
"""

from enum import IntEnum, IntFlag


class CommandKind(IntEnum):
    """What the robot is told to do, ordered from least to most restrictive."""

    RUN = 0
    SLOW = 1
    PROTECTIVE_STOP = 2
    FAULT_STOP = 3


class StopCategory(IntEnum):
    """IEC 60204-1 stop categories."""

    CAT0 = 0  # remove power at once
    CAT1 = 1  # controlled stop, then remove power
    CAT2 = 2  # controlled stop, power kept, standstill monitored


class Reason(IntEnum):
    """Why the command is what it is; recorded with every command."""

    NONE = 0  # running, nothing restricts motion
    # person-related (protective)
    PERSON_IN_WARNING_ZONE = 1
    PERSON_IN_PROTECTIVE_ZONE = 2
    SEPARATION_BELOW_SP = 3  # dynamic ISO/TS 15066 speed and separation monitoring
    RESTART_INTERLOCK = 4  # zones clear, waiting for a reset edge or the automatic-restart time
    NOT_ARMED = 5  # controller not armed yet (start-up)
    # sensor supervision (fault)
    SENSOR_NO_DATA = 10  # no frame ever received
    SENSOR_STALE = 11  # newest frame older than its budget
    SENSOR_FRAMES_MISSED = 12  # counter gap larger than the tolerated missed frames
    SENSOR_COUNTER_REPEATED = 13
    SENSOR_COUNTER_OUT_OF_ORDER = 14
    SENSOR_HEALTH = 15  # a health flag is set (see HealthFlag)
    SENSOR_TOO_MANY_PERSONS = 16
    SENSOR_BAD_VALUE = 17  # NaN, infinity or out-of-range field
    SENSOR_TIME_INCONSISTENT = 18  # stage timestamps out of order or in the future
    # robot supervision (fault)
    ROBOT_NO_DATA = 20
    ROBOT_STALE = 21
    ROBOT_BAD_VALUE = 22
    ROBOT_OVERSPEED = 23  # robot faster than the commanded limit allows
    # executor (fault)
    LOOP_OVERRUN = 30
    STATE_INVALID = 31  # unknown state value: fail closed
    CHECKSUM_MISMATCH = 32
    # link errors, IEC 61784-3 classes (fault)
    LINK_CORRUPTION = 40
    LINK_REPETITION = 41
    LINK_INCORRECT_SEQUENCE = 42
    LINK_LOSS = 43
    LINK_UNACCEPTABLE_DELAY = 44
    LINK_INSERTION = 45
    LINK_MASQUERADE = 46
    LINK_ADDRESSING = 47
    LINK_TIMEOUT = 48  # watchdog: nothing valid received in time
    # executor, appended (fault)
    BUDGET_UNSAFE = 33  # the configuration's latency budget is unsafe: the controller refuses to arm
    # sensor clock synchronisation, for sensors with a clock of their own (fault; docs/protocol.md, 14)
    SENSOR_CLOCK_SYNC_LOST = 50  # no SYNC_REPLY to a SYNC_REQUEST within the sync timeout
    SENSOR_CLOCK_BOUND = 51  # the offset estimate's error bound grew past the sensor's limit
    SENSOR_CLOCK_STEP = 52  # a new estimate contradicts the previous one beyond both bounds: a clock step
    SENSOR_CLOCK_DRIFT = 53  # estimates drift apart faster than the declared maximum drift allows


class HealthFlag(IntFlag):
    """Sensor self-check results carried in every detection frame; any set bit stops the cell."""

    OK = 0
    LENS_COVERED = 1  # near-uniform image: covered or blinded lens
    FROZEN = 2  # identical consecutive frames
    OVEREXPOSED = 4
    UNDEREXPOSED = 8
    INFERENCE_SLOW = 16  # inference took longer than the frame period
    INVALID = 32  # inference did not finish for this frame; detections are not valid
