"""EdgeSettings: the truck's configuration, from a YAML file, TRIVUE_EDGE_* variables and the command line.

Precedence, lowest first: the YAML file, environment variables (``TRIVUE_EDGE_TRUCK_ID``,
``TRIVUE_EDGE_UPLINK__BROKER`` with ``__`` between nested names), command-line overrides. Unknown
keys are errors: a misspelt ``retention_dayz`` must stop start-up, not silently keep the default.
Relative paths are relative to the working directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from base.ids import TRUCK_ID_PATTERN
from base.paths import data_dir
from base.strict_yaml import blamed, describe, read_mapping
from edge.view_settings import ViewSettings
from vision.schema import Stream

ENV_PREFIX = "TRIVUE_EDGE_"
# Truck installers read these messages; they never met pydantic.
EDGE_WORDING = {"extra_forbidden": "unknown setting", "missing": "required"}
Unit = Annotated[float, Field(ge=0, le=1)]  # a normalised image coordinate: 0 at the left or top, 1 at the other side


class ConfigError(ValueError):
    """Configuration that cannot be used; the message names the field and the value."""


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """``mqtt[s]://user:pass@host:port`` split into its parts."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("expected mqtt://[user:pass@]host[:port] or mqtts://...")
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise ValueError("bad port") from None  # the value follows, its password masked (describe)
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, port, tls, user, password)

    def __str__(self) -> str:  # never prints the password
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _broker(value: str | None) -> str | None:
    if value is not None:
        BrokerUrl.parse(value)
    return value


class TriggerSettings(_Strict):
    kind: Literal["auto", "burst", "serial", "mqtt", "motion"] = Field(
        default="auto", description="Lift boundaries: auto = burst for folders, motion for video")
    serial_port: str | None = Field(default=None, description="Lift-arm signal line: device, pty or pyserial URL")
    serial_baud: int = Field(default=9600, gt=0, description="Baud rate of the signal line")
    mqtt_broker: str | None = Field(default=None, description="In-truck broker of the CAN/GPIO bridge (kind mqtt)")
    mqtt_topic: str | None = Field(default=None, description="Bridge topic (default <prefix>/<truck_id>/lift_signal)")
    motion_threshold: float = Field(default=0.02, gt=0, lt=1, description="Changed share of the hopper that is motion")
    motion_quiet_frames: int = Field(default=8, ge=1, description="Still frames that end a motion lift")
    max_lift_s: float = Field(default=60, gt=0, le=3600, description="Longer lifts (stuck signal, endless motion) end")
    debounce_s: float = Field(default=0.5, ge=0, le=10,
                              description="A drop of the lift signal shorter than this is a bounce, not a lift's end")
    burst_settle_s: float = Field(default=2.0, ge=0, description="A burst folder is complete once unchanged this long")
    # The stills are the camera's raw frames (street, crew, passers-by unblurred) of every lift:
    # docs/privacy.md promises they are analysed, then forgotten. Off by default so that a folder
    # of one's own photos (`--source photos/ --once`) is never deleted unasked; on for a truck.
    burst_delete: bool = Field(default=False,
                               description="Delete a burst folder's photos once its lift is in the outbox")

    @model_validator(mode="after")
    def _port_for_serial(self) -> TriggerSettings:
        if self.kind == "serial" and not self.serial_port:
            raise ValueError("kind 'serial' needs serial_port (a device, pty or pyserial URL)")
        # The bridge lives in the truck: the central broker would refuse its topic (ACL) and, with
        # use_username_as_clientid, a second connection under the truck's account would evict the uplink.
        if self.kind == "mqtt" and not self.mqtt_broker:
            raise ValueError("kind 'mqtt' needs mqtt_broker (the in-truck broker of the lift-signal bridge)")
        return self

    _check_broker = field_validator("mqtt_broker")(_broker)


class TrackingSettings(_Strict):
    """``vision.tracking.TrackerSettings`` as settings (same names and defaults, checked by a test)."""

    activation_conf: float = Field(default=0.35, ge=0, le=1, description="Confidence that may start a track")
    high_conf: float = Field(default=0.35, ge=0, le=1,
                             description="ByteTrack's first-round confidence; at most activation_conf")
    match_iou: float = Field(default=0.1, ge=0, le=1, description="IoU to match a detection to a track")
    lost_frames: int = Field(default=15, ge=0, description="Frames a track survives unseen")
    min_track_frames: int = Field(default=2, ge=1, description="Frames an item must be seen to be counted")

    @model_validator(mode="after")
    def _activation_applies(self) -> TrackingSettings:
        # ByteTrack starts tracks only from its first-round (high) detections: a high_conf above
        # activation_conf would silently raise the threshold that starts a track to high_conf.
        if self.high_conf > self.activation_conf:
            raise ValueError(f"high_conf {self.high_conf} is above activation_conf {self.activation_conf}: new "
                             "tracks start only from detections above both, so activation_conf would not apply")
        return self


class EvidenceSettings(_Strict):
    # Under the data directory, never the working directory: a run from a checkout must not leave
    # photos (personal data) in the repository.
    dir: Path = Field(default_factory=lambda: data_dir() / "edge-evidence",
                      description="Local copies of evidence photos; default $TRIVUE_DATA_DIR/edge-evidence")
    # 7 days: the privacy notice (docs/privacy.md) and the DPIA ask for it on the truck; the
    # server keeps its own copy longer, under access control and audit.
    retention_days: int = Field(default=7, ge=0, description="Local photos older than this are deleted")
    max_side: int = Field(default=960, ge=64, le=8192, description="Photos are downscaled to this longest side")
    jpeg_quality: int = Field(default=80, ge=10, le=100)
    # Mosquitto drops a packet over its max_packet_size (3,000,000 in deploy/mosquitto) together with
    # the connection, and the server dead-letters photos over its max_evidence_bytes (2 MiB): 1.5 MB
    # leaves room for both, and for MQTT and TLS overhead. Larger photos are re-encoded smaller.
    max_bytes: int = Field(default=1_500_000, ge=10_000, le=2 * 1024 * 1024,
                           description="Largest JPEG sent: lower quality, then smaller, else no photo")
    outside: Literal["blur", "black"] = Field(default="blur", description="What hides the world outside the hopper")
    # Photos worth labelling (docs/field-loop.md): besides contaminated lifts, a random share of the
    # clean ones (what the model calls clean must be checked too) and the lifts where the model was
    # unsure of an item. 2 % of a truck's ~1,000 daily lifts is ~20 photos a day to label.
    sample_clean_rate: float = Field(default=0.02, ge=0, le=1,
                                     description="Share of clean lifts whose photo is kept, drawn at random")
    uncertain_band: tuple[float, float] = Field(
        default=(0.25, 0.5),
        description="[low, high): a lift with an item whose best confidence falls here keeps its photo")

    @field_validator("uncertain_band")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 <= low < high <= 1:
            raise ValueError(f"needs 0 <= low < high <= 1, got [{low}, {high}]")
        return value


class OutboxSettings(_Strict):
    path: Path = Field(default=Path("outbox.sqlite3"), description="SQLite outbox file")
    max_mb: float = Field(default=500, gt=0, description="Above this, oldest photos are dropped (never lifts)")


class UplinkSettings(_Strict):
    broker: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt[s]://user:pass@host:port")
    topic_prefix: str = Field(default="trivue/v1", min_length=1, pattern=r"^[^#+]+$")
    client_id: str | None = Field(default=None, description="Fixed MQTT client id (default trivue-edge-<truck_id>)")
    ca_file: Path | None = Field(default=None, description="CA bundle for mqtts (default: system CAs)")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_max_s: int = Field(default=60, ge=1, description="Longest wait between reconnection attempts")
    stats_interval_s: float = Field(default=60, gt=0, description="Heartbeat period")
    flush_timeout_s: float = Field(default=120, gt=0, description="--once: how long to wait for acknowledgements")
    max_photo_attempts: int = Field(
        default=5, ge=1, le=1000,
        description="A photo whose sending ends the connection this many times (alone in flight) is dropped, counted")
    delete_after: Literal["receipt", "puback"] = Field(
        default="receipt",
        description="When an outbox row goes: 'receipt' once the server has committed it (survives a broker "
                    "crash); 'puback' once the broker has it in memory (no server needed, a broker crash loses it)")
    receipt_timeout_s: float = Field(
        default=120, gt=0, le=86400,
        description="delete_after=receipt: a row acknowledged by the broker but not receipted this long is "
                    "sent again (then after 2x, 4x, up to 8x this, while the server stays silent)")

    _check_broker = field_validator("broker")(_broker)


class AlertSettings(_Strict):
    serial_port: str | None = Field(default=None, description="Cab buzzer / light line: device, pty or pyserial URL")
    serial_baud: int = Field(default=9600, gt=0)
    broker: str | None = Field(default=None, description="Local (in-truck) broker for the cab tablet")
    topic: str | None = Field(default=None, description="Local topic (default <prefix>/<truck_id>/alert)")
    min_interval_s: float = Field(default=30, ge=0, description="Each class alerts once per lift; within a lift "
                                  "again only after this many seconds (one item tracked again stays quiet)")

    _check_broker = field_validator("broker")(_broker)


class GpsSettings(_Strict):
    source: str | None = Field(default=None, description="fixed:LAT,LON | file.nmea | file.gpx | serial device")
    baud: int = Field(default=4800, gt=0, description="NMEA serial baud rate")
    replay_speed: float = Field(default=1.0, gt=0, description="File replay speed factor")
    max_age_s: float = Field(default=30, gt=0, description="An older fix is no fix")


class RfidSettings(_Strict):
    port: str | None = Field(default=None, description="RFID reader line: device, pty or pyserial URL")
    baud: int = Field(default=9600, gt=0)
    window_s: float = Field(default=15, ge=0, description="A tag read this long before the lift belongs to it")


class SelfCheckSettings(_Strict):
    enabled: bool = Field(default=True, description="At start-up, compare an INT8 model (X-int8.onnx) with X.onnx")
    # The scale (docs/edge.md, INT8 self-check): 0 = the same detections; the shipped INT8 model
    # measured 0.04 against its FP32 original on a 2-core AVX2 CPU; FP32 weights with 2 % noise
    # 0.10, with 5 % noise 0.16. Above 0.15 the quantised model no longer sees what FP32 sees.
    max_disagreement: float = Field(default=0.15, ge=0, le=1,
                                    description="Above this disagreement the truck runs the FP32 model instead")
    photos: Path | None = Field(default=None,
                                description="Folder of photos to compare on (default: those shipped in the package)")


class ModelUpdateSettings(_Strict):
    """Where the truck downloads the models the server asks for (``TruckConfig.model``)."""

    server: str | None = Field(default=None, description="https://host[:port] of the Trivue server; without it, "
                               "model changes are refused (the truck keeps its model)")
    token: str | None = Field(default=None, repr=False,
                              description="The truck's token (trivue tokens create --role truck); better token_file")
    token_file: Path | None = Field(default=None, description="File holding the truck's token (mode 600)")
    ca_file: Path | None = Field(default=None, description="CA bundle for https (default: system CAs)")
    dir: Path = Field(default_factory=lambda: data_dir() / "edge-models", description="Downloaded models (current "
                      "and previous are kept); default $TRIVUE_DATA_DIR/edge-models")
    timeout_s: float = Field(default=60, gt=0, le=3600, description="Download: longest silence of the server")
    max_mb: float = Field(default=512, gt=0, le=16384, description="Larger downloads are refused")

    @field_validator("server")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("expected https://host[:port]")
        return value

    @model_validator(mode="after")
    def _one_token(self) -> ModelUpdateSettings:
        if self.token and self.token_file:
            raise ValueError("token and token_file are both set: choose one")
        return self

    def read_token(self) -> str | None:
        """The token, from ``token`` or ``token_file`` (read at each download: it may be rotated)."""
        if self.token_file is None:
            return self.token
        try:
            return self.token_file.read_text(encoding="utf-8").strip() or None
        except OSError as error:
            raise ConfigError(f"models.token_file: cannot read {self.token_file} ({error.strerror})") from None


class EdgeSettings(_Strict):
    """Everything a truck needs to run; every field has a default except the truck id and the source."""

    truck_id: str = Field(max_length=64, pattern=TRUCK_ID_PATTERN, description="Fleet number, unique per truck")
    stream: Stream = Field(default=Stream.recyclables, description="Stream collected (server config may change it)")
    source: str = Field(min_length=1, description="Burst folder root, video file, rtsp://..., or usb:N")
    model: Path | None = Field(default=None, description="ONNX model (default: shipped INT8, else FP32, else COCO)")
    rules: Path | None = Field(default=None, description="Sorting rules YAML (default: those of the model)")
    conf: float = Field(default=0.25, ge=0, le=1, description="Detector confidence threshold")
    iou: float = Field(default=0.45, ge=0, le=1, description="NMS IoU threshold")
    threads: int = Field(default=0, ge=0, description="onnxruntime threads per frame (0 = cores / workers)")
    # Two frames at once with one thread each beat one frame with two threads on a 2-core computer
    # (bench/edge.py, docs/edge.md Performance): a 320 px model is too small to split well.
    workers: int | Literal["auto"] = Field(
        default="auto", description="Frames detected at once (auto = the cores this process may use; 1 = serial)")
    hopper: list[tuple[Unit, Unit]] = Field(
        default=[(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)], min_length=3,
        description="Hopper polygon, normalised image coordinates")
    frame_rate: float = Field(default=10.0, gt=0, description="Frames analysed per second in a lift")
    # systemd waits TimeoutStopSec (45 s in deploy/systemd) before SIGKILL: finish well before it.
    stop_timeout_s: float = Field(
        default=30, gt=0, le=600,
        description="On SIGTERM/SIGINT: close the lift in progress, wait for acknowledgements, exit within this")
    trigger: TriggerSettings = TriggerSettings()
    tracking: TrackingSettings = TrackingSettings()
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)  # reads $TRIVUE_DATA_DIR per load
    outbox: OutboxSettings = OutboxSettings()
    uplink: UplinkSettings = UplinkSettings()
    alert: AlertSettings = AlertSettings()
    gps: GpsSettings = GpsSettings()
    rfid: RfidSettings = RfidSettings()
    selfcheck: SelfCheckSettings = SelfCheckSettings()
    models: ModelUpdateSettings = Field(default_factory=ModelUpdateSettings)  # reads $TRIVUE_DATA_DIR per load
    view: ViewSettings = ViewSettings()

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> object:  # one error: the union said workers.constrained-int, ...literal['auto']
        value = int(value) if isinstance(value, str) and value.strip().isdigit() else value  # TRIVUE_EDGE_WORKERS=2
        if value == "auto" or (type(value) is int and 1 <= value <= 64):
            return value
        raise ValueError("expected auto or a whole number from 1 to 64")

    @property
    def detector_workers(self) -> int:
        """``workers`` resolved: ``auto`` is the cores this process may use (a cgroup cpuset or taskset counts)."""
        return len(os.sched_getaffinity(0)) if self.workers == "auto" else self.workers

    @property
    def detector_threads(self) -> int:
        """onnxruntime intra-op threads per frame: ``threads``, else the cores shared by the workers."""
        return self.threads or max(1, len(os.sched_getaffinity(0)) // self.detector_workers)

    @property
    def client_id(self) -> str:
        return self.uplink.client_id or f"trivue-edge-{self.truck_id}"

    def topic(self, suffix: str) -> str:
        return f"{self.uplink.topic_prefix}/{self.truck_id}/{suffix}"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    nested = {key for key, value in extra.items() if isinstance(value, Mapping) and isinstance(base.get(key), Mapping)}
    return {**base, **{key: _merge(base[key], value) if key in nested else value for key, value in extra.items()}}


def _env_settings(environ: Mapping[str, str]) -> list[tuple[str, tuple[str, ...], Any]]:
    """``(variable, path, value)`` of each ``TRIVUE_EDGE_*`` variable; values read as YAML scalars."""
    found = []
    for name, raw in environ.items():
        if name.startswith(ENV_PREFIX):
            try:
                value = yaml.safe_load(raw) if raw else raw
            except yaml.YAMLError:
                value = raw
            found.append((name, tuple(name[len(ENV_PREFIX):].lower().split("__")), value))
    return found


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``TRIVUE_EDGE_UPLINK__BROKER=...`` -> ``{"uplink": {"broker": ...}}``; values read as YAML scalars."""
    tree: dict[str, Any] = {}
    found = _env_settings(environ)
    for name, path, value in found:
        # TRIVUE_EDGE_UPLINK=x beside TRIVUE_EDGE_UPLINK__BROKER: a TypeError, or the last read won.
        if clash := [other for other, where, _ in found if len(where) > len(path) and where[:len(path)] == path]:
            raise ConfigError(f"environment: {name} sets {'.'.join(path)} to a value, but {clash[0]} sets a "
                              "setting inside it")
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree


def _given(tree: Any, loc: tuple[int | str, ...]) -> bool:
    """Whether ``tree`` sets the field at ``loc``, or a whole value above it (a list, a scalar)."""
    for key in loc:
        if not isinstance(tree, Mapping) or key not in tree:
            return not isinstance(tree, Mapping)
        tree = tree[key]
    return True


def _source(error: ValidationError, path: Path | None, environ: Mapping[str, str], overrides: Mapping[str, Any],
            overrides_source: str) -> str:
    """Where the bad values came from: a mistyped ``--broker`` or ``TRIVUE_EDGE_UPLINK__BROKR`` was
    blamed on ``truck.yaml``, and the installer searched the file for a value that was not there."""
    env, env_tree = _env_settings(environ), env_overrides(environ)

    def origin(loc: tuple[int | str, ...]) -> str | list[str]:
        keys = tuple(str(key) for key in loc)
        if _given(overrides, loc):
            return overrides_source
        if _given(env_tree, loc):
            return [name for name, where, _ in env if keys[:len(where)] == where or where[:len(keys)] == keys]
        return str(path) if path else "settings"

    return blamed(error, origin)


def load_settings(
    path: Path | None, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
    overrides_source: str = "settings",
) -> EdgeSettings:
    """YAML file (optional) < environment < overrides, validated; ConfigError names what is wrong and
    where it was set (``overrides_source`` names the overrides: ``command line`` for ``trivue edge``)."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    data = read_mapping(path, ConfigError) if path is not None else {}
    data = _merge(_merge(data, env_overrides(environ)), overrides)
    try:
        return EdgeSettings.model_validate(data)
    except ValidationError as error:
        source = _source(error, path, environ, overrides, overrides_source)
        raise ConfigError(describe(error, source, root="(settings)", wording=EDGE_WORDING)) from None
