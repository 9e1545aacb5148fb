"""The serial safety link ("black channel" protocol), sans-IO.

    ep = Endpoint(Role.CONTROLLER, connection_id, LinkPolicy(max_delay_ns=..., watchdog_ns=...), now_ns)
    port.write(ep.send(Command(CommandKind.RUN, 1.0), now_ns))
    ep.feed(port.read(), now_ns)
    while (event := ep.next_event()) is not NEED_DATA:
        ...  # Received(message, seq, t_sent_ns, t_received_ns) or LinkError(reason, detail, t_ns)
    ep.check_watchdog(now_ns)
    if ep.state is not ReceiverState.CONNECTED: ...  # no data yet, or latched error: stop

Frame layout, CRC parameters and test vectors: docs/protocol.md. Transports: safety.link.transport.
"""

from cobotguard.safety.link.acceptance import DelayCheck, LinkPolicy
from cobotguard.safety.link.cobs import cobs_decode, cobs_encode
from cobotguard.safety.link.codec import (
    COMMAND_FRAME_BYTES,
    CRC_BYTES,
    HEADER_BYTES,
    MAX_DETECTIONS_FRAME_BYTES,
    MAX_FRAME_BYTES,
    PERSON_WIRE_BYTES,
    PROTOCOL_VERSION,
    ROBOT_STATE_FRAME_BYTES,
    FrameError,
    Header,
    decode_frame,
    detections_frame_bytes,
    encode_frame,
    encode_payload,
    encode_raw_frame,
    parse_frame,
)
from cobotguard.safety.link.crc import crc32, warm_up
from cobotguard.safety.link.endpoint import (
    NEED_DATA,
    ROLE_ACCEPTS,
    ROLE_SENDS,
    Endpoint,
    Event,
    LinkError,
    LinkStats,
    LocalProtocolError,
    NeedData,
    Received,
    Role,
    link_error_reasons,
)
from cobotguard.safety.link.messages import (
    Command,
    Detections,
    Message,
    MessageType,
    RobotState,
    SyncReply,
    SyncRequest,
)
from cobotguard.safety.link.pair import Pair, drain
from cobotguard.safety.link.setup import (
    robot_link_endpoint,
    robot_link_policy,
    sensor_clock_policy,
    sensor_end_policy,
    sensor_link_endpoint,
    sensor_link_policy,
)
from cobotguard.safety.link.states import TRANSITIONS, Input, ReceiverState

__all__ = [
    "COMMAND_FRAME_BYTES",
    "CRC_BYTES",
    "HEADER_BYTES",
    "MAX_DETECTIONS_FRAME_BYTES",
    "MAX_FRAME_BYTES",
    "NEED_DATA",
    "PERSON_WIRE_BYTES",
    "PROTOCOL_VERSION",
    "ROBOT_STATE_FRAME_BYTES",
    "ROLE_ACCEPTS",
    "ROLE_SENDS",
    "TRANSITIONS",
    "Command",
    "DelayCheck",
    "Detections",
    "Endpoint",
    "Event",
    "FrameError",
    "Header",
    "Input",
    "LinkError",
    "LinkPolicy",
    "LinkStats",
    "LocalProtocolError",
    "Message",
    "MessageType",
    "NeedData",
    "Pair",
    "ReceiverState",
    "Received",
    "RobotState",
    "Role",
    "SyncReply",
    "SyncRequest",
    "cobs_decode",
    "cobs_encode",
    "crc32",
    "decode_frame",
    "detections_frame_bytes",
    "drain",
    "encode_frame",
    "encode_payload",
    "encode_raw_frame",
    "link_error_reasons",
    "parse_frame",
    "robot_link_endpoint",
    "robot_link_policy",
    "sensor_clock_policy",
    "sensor_end_policy",
    "sensor_link_endpoint",
    "sensor_link_policy",
    "warm_up",
]
