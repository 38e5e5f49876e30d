"""The composition root of the truck agent: builds every part from EdgeSettings, runs, shuts down.

``Agent.create(settings)`` reads like a table of contents of the truck; tests pass their own
detector (a scripted one) through the same factory.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from edge.alert import CrewAlert
from edge.alert_checks import warn_no_alert_output, warn_undetectable_alerts
from edge.applied_config import config_file, read_applied, write_applied
from edge.broker import make_client
from edge.camera import Frame, check_source, frames, is_file_source, throttle
from edge.camera_clock_file import persistent_camera_clock
from edge.config import EdgeSettings
from edge.evidence import EvidenceStore, burst_on_disk, forget_burst, photo_policy
from edge.gps import Gps, open_gps
from edge.lines import LineWriter
from edge.model_choice import choose_model, load_sorting_rules
from edge.model_update import ModelUpdater, RunningModel, file_sha256, model_info
from edge.models_lock import lock_models_dir
from edge.outbox import Outbox
from edge.pipeline import Pipeline
from edge.prefetch import prefetch
from edge.preflight import preflight
from edge.rfid import RfidReader
from edge.rfid_file import rfid_file
from edge.trigger import BurstTrigger, LiftTrigger, MotionTrigger, MqttTrigger, SerialTrigger
from edge.uplink import Uplink
from edge.view import ViewWatch
from vision.detection import Detections
from vision.lift import EvidenceFrame, LiftContext, LiftRecorder
from vision.model import Detector
from vision.region import Region
from vision.rules import SortingRules
from vision.schema import EvidenceReason, ModelCheck, Stream, TruckConfig, TruckStats
from vision.tracking import Tracker, TrackerSettings

log = logging.getLogger(__name__)


@dataclass
class LiveConfig:
    """Settings the server may change at run time (retained config topic); read at each lift start."""

    stream: Stream
    conf: float  # the detector's threshold: a model swapped in takes it (``Agent._install_model``)
    version: str | None = None
    refused: str | None = None  # why the last config was not applied (heartbeat), None once one is


class Agent:
    """The truck: every part built from EdgeSettings; ``run`` then ``close``."""

    def __init__(self, settings: EdgeSettings, detector: Any, rules: SortingRules,
                 model_check: ModelCheck | None = None) -> None:
        # first, before anything is opened: a second agent on the same models.dir corrupts its models
        self._models_lock = lock_models_dir(settings)
        self.settings, self.detector, self.rules = settings, detector, rules
        self.model_check = model_check  # published in every heartbeat
        self.names: tuple[str, ...] = tuple(detector.names)
        self.region = Region.from_points(settings.hopper)
        self.live = LiveConfig(settings.stream, settings.conf)
        # a video file is replayable: remember how far its lifts are committed (resumed after a crash)
        self._progress_key = str(Path(settings.source).resolve()) if is_file_source(settings.source) else None
        self.started = time.monotonic()
        self.stopping = False  # set by request_stop (SIGTERM/SIGINT)
        self._overdue: threading.Timer | None = None
        self.outbox = Outbox(settings.outbox.path, int(settings.outbox.max_mb * 1024 * 1024))
        self.evidence = EvidenceStore(settings.evidence, self.region, self.names)
        # the camera box's clock, learnt from bursts seen being written: a lift's times (and so its GPS
        # fix and bin tag) on this agent's clock, where a box minutes behind put every lift minutes back;
        # saved beside the outbox, so that the bursts shot while the agent restarts are corrected too
        self.camera_clock = persistent_camera_clock(settings.outbox.path)
        self.gps: Gps = open_gps(settings.gps.source, settings.gps.baud, settings.gps.replay_speed,
                                 settings.gps.max_age_s)
        # the reads a lift may still claim are kept beside the outbox too: a kill -9 mid-lift keeps its tag
        self.rfid = RfidReader.open(settings.rfid.port, settings.rfid.baud, settings.rfid.window_s,
                                    rfid_file(settings.outbox.path))
        self.alert = self._crew_alert()
        # The file that runs (the FP32 sibling after a self-check fallback): lifts name it by its hash.
        running = self._running_model(detector)
        warn_undetectable_alerts(rules, self.names, settings.stream, running.info)
        # the random share of clean lifts kept for labelling (evidence.sample_clean_rate)
        photos = photo_policy(settings.evidence, random.Random().random)
        self.recorder = LiftRecorder(self.names, rules, running.info, settings.tracking.min_track_frames, photos)
        self.uplink = Uplink(settings, self.outbox, self.stats, self.apply_config, self._config_refused)
        self.models = ModelUpdater(settings, rules, lambda: self.live.stream, self._build_detector,
                                   running, self._install_model, self.uplink.send_stats_soon)
        self.trigger = self._trigger()
        self.view = ViewWatch(settings.view)  # is the camera's view usable? (the lift's verdict, the heartbeat's)
        knobs = settings.tracking.model_dump(exclude={"min_track_frames"})  # by name: never by position
        tracker = Tracker(TrackerSettings(**knobs, frame_rate=settings.frame_rate))
        # Several frames at once only with a detector that allows it (a test's scripted one does not).
        workers = settings.detector_workers if getattr(detector, "concurrent", False) else 1
        self.pipeline = Pipeline(detector.detect, tracker, self.recorder, self.trigger, self.deliver,
                                 # once per lift and class: the lift is named by when it began
                                 lambda classes: self.alert.fire(settings.truck_id, classes,
                                                                 lift=self.recorder.started_at),
                                 lambda: self.live.stream, workers, switch=self.models, view=self.view)
        # the server's last config, until its retained one arrives: the broker may be out of reach
        if (applied := read_applied(config_file(settings.outbox.path), settings.truck_id)) is not None:
            self.apply_config(applied)

    @staticmethod
    def _running_model(detector: Any) -> RunningModel:
        """The model started with; its SHA-256 names it in lifts and lets the server roll back to it
        without a download."""
        path = Path(getattr(detector, "path", ""))
        sha = file_sha256(path) if path.is_file() else None
        return RunningModel(detector, model_info(detector.meta, sha), sha, path if sha else None)

    def _build_detector(self, path: Path) -> Any:
        """A detector for a model the server sent, with this truck's live thresholds and hopper."""
        return Detector(path, conf=self.live.conf, iou=self.settings.iou,
                        threads=self.settings.detector_threads, region=self.region)

    def _install_model(self, model: RunningModel) -> None:
        """Between two lifts (``Pipeline``): lifts, evidence and stream checks follow the new model."""
        self.detector, self.names = model.detector, tuple(model.detector.names)
        # After the swap, from the live value: a threshold the server sent while this model was
        # being built (in the updater's thread, from the value then) still reaches it.
        if hasattr(self.detector, "conf"):
            self.detector.conf = self.live.conf
        self.recorder.names, self.recorder.model = self.names, model.info
        self.evidence.names = self.names
        warn_undetectable_alerts(self.rules, self.names, self.live.stream, model.info)

    @classmethod
    def create(cls, settings: EdgeSettings, detector: Any = None) -> Agent:
        preflight(settings)  # every error the settings alone show, before the model's load and self-check
        model_check = None
        if detector is None:
            model, model_check = choose_model(settings)
            detector = Detector(model, conf=settings.conf, iou=settings.iou, threads=settings.detector_threads,
                                region=Region.from_points(settings.hopper))
        check_source(settings.source)
        model_path = Path(getattr(detector, "path", settings.model or ""))
        rules = load_sorting_rules(settings, model_path, tuple(detector.names))
        return cls(settings, detector, rules, model_check)

    def _with_broker(self, broker: str) -> EdgeSettings:
        return self.settings.model_copy(update={"uplink": self.settings.uplink.model_copy(update={"broker": broker})})

    def _crew_alert(self) -> CrewAlert:
        a = self.settings.alert
        warn_no_alert_output(a)
        writer = LineWriter(a.serial_port, a.serial_baud) if a.serial_port else None
        client, url = (make_client(self._with_broker(a.broker), f"{self.settings.client_id}-alert", clean=True)
                       if a.broker else (None, None))
        alert = CrewAlert(writer, client, a.topic or self.settings.topic("alert"), a.min_interval_s)
        if client is not None and url is not None:  # connected once CrewAlert has bounded its queue
            client.connect_async(url.host, url.port)
            client.loop_start()
        return alert

    def _trigger(self) -> LiftTrigger:
        t, source = self.settings.trigger, self.settings.source
        kind = t.kind if t.kind != "auto" else ("burst" if Path(source).is_dir() else "motion")
        if kind == "serial" and t.serial_port:  # the settings refuse serial without a port
            return SerialTrigger(t.serial_port, t.serial_baud, t.max_lift_s, t.debounce_s)
        if kind == "mqtt" and t.mqtt_broker:  # the settings refuse mqtt without a broker
            client, url = make_client(self._with_broker(t.mqtt_broker), f"{self.settings.client_id}-lift",
                                      clean=True)
            trigger = MqttTrigger(client, t.mqtt_topic or self.settings.topic("lift_signal"), t.max_lift_s,
                                  t.debounce_s)
            client.connect_async(url.host, url.port)
            client.loop_start()
            return trigger
        if kind == "motion":
            return MotionTrigger(self.region, t.motion_threshold, t.motion_quiet_frames, t.max_lift_s)
        return BurstTrigger()

    def deliver(self, last: Frame) -> None:
        """Finish the lift and commit it (and its photo) to the outbox before any network I/O."""
        started_at, ended_at = self.recorder.started_at, last.captured_at
        context = LiftContext(self.settings.truck_id, self.outbox.next_sequence(), self.gps.at(ended_at),
                              self.rfid.tag_for(started_at, ended_at))
        lift = self.recorder.finish(ended_at, context)
        event, photo = lift.event, None
        if (unusable := self.view.finish(event.sequence, started_at)) is not None:  # sent, counted as not judged
            event = event.model_copy(update={"view_unusable": unusable})
        kept, reason = lift.evidence, lift.reason
        if (kept is None or reason is None) and (seen := self.view.turned_photo()) is not None:
            # the view just turned unusable: one photo of what the camera saw (a bag on the lens), blurred
            # as any photo, for the technician; a lift keeping its own photo shows the view already
            kept, reason = EvidenceFrame(seen, Detections.empty()), EvidenceReason.view
        counters: tuple[str, ...] = ()
        if kept is not None and reason is not None:
            try:
                photo = self.evidence.render(kept, reason)
                if photo is None:  # no encoding fits evidence.max_bytes: counted with the lift, in its transaction
                    counters = ("photos_too_large",)
                    log.warning("lift %d: evidence photo too large; sending the lift without it", event.sequence)
                else:
                    event = event.model_copy(update={"evidence": photo.evidence})
            except (ValueError, cv2.error):  # a lift without its photo beats no lift at all
                log.exception("lift %d: evidence photo failed; sending the lift without it", event.sequence)
        event_id = str(event.event_id)
        evidence = (self.settings.topic(f"evidence/{event_id}"), photo.jpeg) if photo else None
        position = (self._progress_key, last.index) if self._progress_key else None
        self.outbox.put_lift(event_id, (self.settings.topic("lift"), event.to_json().encode()), evidence,
                             last.burst, position, counters)
        self.rfid.committed()  # its tag is the lift's now, on disk: a restart gives it to no other lift
        if photo is not None:
            try:
                self.evidence.keep(event_id, photo)
            except OSError as error:  # a full or read-only disk: the lift is committed, the truck counts on
                log.error("lift %d: local copy of its photo not written (%s); the lift and its photo are in the "
                          "outbox", event.sequence, error.strerror or error)
        if self.settings.trigger.burst_delete and last.burst and last.ends_lift:
            # Committed above, so a crash from here on neither loses the lift nor recounts it. Only at
            # the burst's last photo: a lift cut short (max_lift_s) still has photos to be read.
            try:
                forget_burst(Path(self.settings.source), last.burst)
            except OSError as error:  # a read-only card: the lift counts, the photos stay (said)
                log.error("lift %d: burst photos not deleted (%s)", event.sequence, error.strerror or error)
        self.uplink.wake()
        verdict = (f"not judged (view {event.view_unusable.value})" if event.view_unusable
                   else "CONTAMINATED" if event.contaminated else "ok")
        log.info("lift %d: %s, %d frames, counts %s%s", event.sequence, verdict, event.frames, event.counts or "{}",
                 f", bin {event.bin_id}" if event.bin_id else "")

    def apply_config(self, config: TruckConfig) -> None:
        """Server config, applied live: stream from the next lift, thresholds at once.

        The server republishes every setting it sets, so one absent is one it no longer sets (an admin's
        ``reset``): the settings file's value runs again at once, where the server's old one ran until
        the next restart. The model is the exception: absent, the running one stays (rollouts set it).
        """
        stream = config.stream or self.settings.stream
        try:  # the settings file's stream too: a model installed since may not fit its rules
            self.rules.check_model(self.names, stream)
        except ValueError as error:
            log.error("config %s refused: %s", config.config_version, error)
            self._config_refused(f"{config.config_version}: {error}"[:400])
            return
        self.live.stream = stream
        self.live.conf = self.settings.conf if config.conf is None else config.conf  # first: see _install_model
        if hasattr(self.detector, "conf"):
            self.detector.conf = self.live.conf
        self.recorder.min_track_frames = (self.settings.tracking.min_track_frames if config.min_track_frames is None
                                          else config.min_track_frames)
        if config.model is not None:  # fetched and checked in a thread; swapped at a lift's start
            self.models.request(config.model)
        self.live.version, self.live.refused = config.config_version, None
        write_applied(config_file(self.settings.outbox.path), self.settings.truck_id, config)

    def _config_refused(self, reason: str) -> None:
        """The server's config was not applied: the previous settings stay, the heartbeat says why now."""
        self.live.refused = reason
        self.uplink.send_stats_soon()

    def stats(self) -> TruckStats:
        meter, disk = self.pipeline.meter, shutil.disk_usage(self.settings.outbox.path.parent)
        age = self.gps.fix_age_s()
        return TruckStats(
            truck_id=self.settings.truck_id, sent_at=datetime.now(UTC), uptime_s=time.monotonic() - self.started,
            fps=meter.fps, inference_ms=meter.inference_ms, outbox_depth=self.outbox.depth(),
            outbox_photos_dropped=self.outbox.counter("photos_dropped"),
            outbox_photos_expired=self.outbox.counter("photos_expired"), disk_short=not self.outbox.reserve.held,
            disk_free_mb=disk.free / 2**20, camera_clock_offset_s=self.camera_clock.reported_offset_s(),
            photos_too_large=self.outbox.counter("photos_too_large"),
            photos_refused=self.outbox.counter("photos_refused"),
            model=self.recorder.model, stream=self.live.stream, gps_fix_age_s=age,
            config_version=self.live.version, config_refused=self.live.refused, lifts_total=meter.lifts,
            model_check=self.model_check,
            model_sha256=self.models.running.sha256, model_update=self.models.update, camera_view=self.view.state(),
        )

    def frame_source(self, once: bool) -> Iterator[Frame]:
        """The frames the loop analyses: throttled, then read and decoded a few ahead by a thread so
        that decoding overlaps inference (``bench/edge.py`` runs the loop on this very source)."""
        stop = threading.Event()  # set when the loop closes its frames: an idle scanner's thread ends too
        source = frames(self.settings.source, self._consumed, follow=not once,
                        settle_s=self.settings.trigger.burst_settle_s, clock=self.camera_clock,
                        resume_after=self.outbox.resume_after(self._progress_key) if self._progress_key else -1,
                        stop=stop)
        return prefetch(throttle(source, self.settings.frame_rate), stop=stop)

    def _consumed(self, key: str) -> bool:
        """Whether burst ``key`` was counted. With ``burst_delete``, one counted but still there (the
        agent stopped mid-burst, or between a commit and the deletion) is deleted now: its raw photos
        stayed on the camera's disk for good, and its mark could never be forgotten."""
        if not self.outbox.is_consumed(key):
            return False
        if self.settings.trigger.burst_delete and self.outbox.is_consumed(key, exact=True):
            try:
                forget_burst(Path(self.settings.source), key)
            except OSError as error:  # a read-only card: said, as in deliver()
                log.error("burst %s, already counted: photos not deleted (%s)", key, error.strerror or error)
        return True

    def check_bursts(self) -> int:
        """The hourly check of the consumed bursts' marks (``edge.consumed``), for a burst root that
        can be listed now (a card pulled out proves nothing). Returns the marks forgotten."""
        root = Path(self.settings.source)
        try:
            os.listdir(root)
        except OSError:
            return 0
        return self.outbox.forget_consumed(lambda key: burst_on_disk(root, key))

    def request_stop(self) -> None:
        """SIGTERM/SIGINT (from the handler, in the loop's thread): finish the lift in progress, commit
        it, wait a bounded time for acknowledgements, exit 0. A watchdog ends the process at
        ``stop_timeout_s`` whatever happens (committed rows are safe on disk either way)."""
        if self.stopping:
            return
        self.stopping = True
        self._overdue = threading.Timer(self.settings.stop_timeout_s, self._stop_overdue)
        self._overdue.daemon = True
        self._overdue.start()
        self.pipeline.request_stop()  # may raise StopRequested into the loop's wait: run() catches it

    def _stop_overdue(self) -> None:
        log.error("could not stop within %.0f s; exiting now (committed lifts stay in the outbox %s)",
                  self.settings.stop_timeout_s, self.settings.outbox.path)
        logging.shutdown()
        os._exit(1)

    def run(self, once: bool) -> int:
        """Process the source; with ``once``, flush and return 0 only if every row was acknowledged.

        After ``request_stop`` the lift in progress is committed, acknowledgements are awaited for at
        most half of ``stop_timeout_s`` (the other half is for closing), and 0 is returned.
        """
        # now, then hourly: the agent runs for weeks without a restart (nor a signal: unsent photos expire too)
        self.evidence.start_pruning(outbox=self.outbox, hourly=self.check_bursts)
        self.uplink.start()
        lifts = self.pipeline.run(self.frame_source(once))
        if self.stopping:
            log.info("stopping after %d lift(s); waiting up to %.0f s for acknowledgements", lifts,
                     self.settings.stop_timeout_s / 2)
            self.uplink.flush(self.settings.stop_timeout_s / 2)
            return 0
        log.info("source ended after %d lift(s)", lifts)
        if not once:
            return 0
        if self._flush(self.settings.uplink.flush_timeout_s):
            return 0
        if self.stopping:  # stopped while flushing: what is not acknowledged waits in the outbox
            return 0
        log.error("%d message(s) not acknowledged by %s within %.0f s; they stay in the outbox %s",
                  self.uplink.pending(), self.uplink.url, self.settings.uplink.flush_timeout_s,
                  self.settings.outbox.path)
        return 1

    def _flush(self, timeout_s: float) -> bool:
        """``uplink.flush`` in short steps, cut short (to half of stop_timeout_s) by a stop request."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if self.uplink.flush(min(left, 0.5)):
                return True
            if self.stopping:
                deadline = min(deadline, time.monotonic() + self.settings.stop_timeout_s / 2)
        return self.uplink.pending() == 0

    def close(self) -> None:
        self.evidence.stop_pruning()
        self.uplink.stop()
        for part in (self.trigger, self.gps, self.rfid, self.alert, self.outbox):
            part.close()
        if self._overdue is not None:  # stopped in time: the watchdog has nothing left to do
            self._overdue.cancel()
        if self._models_lock is not None:
            self._models_lock.close()
