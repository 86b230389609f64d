from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InterveneKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTO: _ClassVar[InterveneKind]
    SUBTASK: _ClassVar[InterveneKind]
    INSTRUCTION: _ClassVar[InterveneKind]
AUTO: InterveneKind
SUBTASK: InterveneKind
INSTRUCTION: InterveneKind

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CameraSpec(_message.Message):
    __slots__ = ("name", "height", "width")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    height: int
    width: int
    def __init__(self, name: _Optional[str] = ..., height: _Optional[int] = ..., width: _Optional[int] = ...) -> None: ...

class PolicyInfo(_message.Message):
    __slots__ = ("robot", "num_joints", "cameras", "chunk_size", "control_hz", "model", "joint_names", "max_message_bytes")
    ROBOT_FIELD_NUMBER: _ClassVar[int]
    NUM_JOINTS_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTROL_HZ_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    JOINT_NAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    robot: str
    num_joints: int
    cameras: _containers.RepeatedCompositeFieldContainer[CameraSpec]
    chunk_size: int
    control_hz: float
    model: str
    joint_names: _containers.RepeatedScalarFieldContainer[str]
    max_message_bytes: int
    def __init__(self, robot: _Optional[str] = ..., num_joints: _Optional[int] = ..., cameras: _Optional[_Iterable[_Union[CameraSpec, _Mapping]]] = ..., chunk_size: _Optional[int] = ..., control_hz: _Optional[float] = ..., model: _Optional[str] = ..., joint_names: _Optional[_Iterable[str]] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("camera", "height", "width", "encoding", "data")
    class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RAW_RGB8: _ClassVar[Image.Encoding]
        JPEG: _ClassVar[Image.Encoding]
        PNG: _ClassVar[Image.Encoding]
    RAW_RGB8: Image.Encoding
    JPEG: Image.Encoding
    PNG: Image.Encoding
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    camera: str
    height: int
    width: int
    encoding: Image.Encoding
    data: bytes
    def __init__(self, camera: _Optional[str] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., encoding: _Optional[_Union[Image.Encoding, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Observation(_message.Message):
    __slots__ = ("images", "joint_positions", "gripper", "timestamp")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    JOINT_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    GRIPPER_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    joint_positions: _containers.RepeatedScalarFieldContainer[float]
    gripper: float
    timestamp: float
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., joint_positions: _Optional[_Iterable[float]] = ..., gripper: _Optional[float] = ..., timestamp: _Optional[float] = ...) -> None: ...

class StartSessionRequest(_message.Message):
    __slots__ = ("robot", "instruction", "robot_instance")
    ROBOT_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    ROBOT_INSTANCE_FIELD_NUMBER: _ClassVar[int]
    robot: str
    instruction: str
    robot_instance: str
    def __init__(self, robot: _Optional[str] = ..., instruction: _Optional[str] = ..., robot_instance: _Optional[str] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("session_id", "lease_ms")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    lease_ms: int
    def __init__(self, session_id: _Optional[str] = ..., lease_ms: _Optional[int] = ...) -> None: ...

class ActRequest(_message.Message):
    __slots__ = ("session_id", "sequence", "observation")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    sequence: int
    observation: Observation
    def __init__(self, session_id: _Optional[str] = ..., sequence: _Optional[int] = ..., observation: _Optional[_Union[Observation, _Mapping]] = ...) -> None: ...

class JointCommand(_message.Message):
    __slots__ = ("joint_positions", "gripper")
    JOINT_POSITIONS_FIELD_NUMBER: _ClassVar[int]
    GRIPPER_FIELD_NUMBER: _ClassVar[int]
    joint_positions: _containers.RepeatedScalarFieldContainer[float]
    gripper: float
    def __init__(self, joint_positions: _Optional[_Iterable[float]] = ..., gripper: _Optional[float] = ...) -> None: ...

class ActResponse(_message.Message):
    __slots__ = ("sequence", "actions", "subtask", "inference_ms", "expires_in_ms")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    actions: _containers.RepeatedCompositeFieldContainer[JointCommand]
    subtask: str
    inference_ms: float
    expires_in_ms: float
    def __init__(self, sequence: _Optional[int] = ..., actions: _Optional[_Iterable[_Union[JointCommand, _Mapping]]] = ..., subtask: _Optional[str] = ..., inference_ms: _Optional[float] = ..., expires_in_ms: _Optional[float] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class EndSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InterveneRequest(_message.Message):
    __slots__ = ("session_id", "text", "kind")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    text: str
    kind: InterveneKind
    def __init__(self, session_id: _Optional[str] = ..., text: _Optional[str] = ..., kind: _Optional[_Union[InterveneKind, str]] = ...) -> None: ...

class InterveneResponse(_message.Message):
    __slots__ = ("applied", "subtask", "instruction")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    SUBTASK_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    applied: InterveneKind
    subtask: str
    instruction: str
    def __init__(self, applied: _Optional[_Union[InterveneKind, str]] = ..., subtask: _Optional[str] = ..., instruction: _Optional[str] = ...) -> None: ...
