"""The model the server asks for (``TruckConfig.model``): download, check, stage; swapped between lifts.

A new model is fetched and checked in a thread of its own, so that the lift in progress goes on
with the old one. Checks, in order, each a refusal with its reason in the heartbeat
(``TruckStats.model_update``) while the old model keeps running:

1. the download (``GET /api/models/<sha256>.onnx`` with the truck's token) and its SHA-256;
2. the file loads in onnxruntime, and its metadata name the model the server announced;
3. every class of the model has a rule for the stream (``vision.rules``);
4. the self-check: on the calibration photos (``vision.selfcheck``) the model sees something, and an
   INT8 model agrees with its FP32 reference within ``selfcheck.max_disagreement``.

The pipeline calls ``take`` when a lift begins: a staged model runs from that lift on, never in
the middle of one. Downloaded files live in ``models.dir``; the running and the previous model
(and their FP32 references) are kept, older ones deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from edge.config import ConfigError, EdgeSettings
from vision.model import DetectorError
from vision.rules import SortingRules
from vision.schema import ModelInfo, ModelRef, ModelUpdate, Stream
from vision.selfcheck import SelfCheckError, calibration_photos, check_int8

log = logging.getLogger(__name__)

CHUNK = 1 << 20
DOWNLOADED = re.compile(r"[0-9a-f]{64}\.onnx")  # the names download() gives; nothing else is deleted
PART = re.compile(r"[0-9a-f]{64}\.onnx\.part")  # what download() writes before the hash is checked


class ModelRefused(Exception):
    """A model the truck will not run; the message is the reason sent to the server."""


@dataclass(frozen=True, slots=True)
class RunningModel:
    """A loaded model: its detector, what lifts carry (``info``: name, version and, since wire 1.2,
    the SHA-256 of the file: ``model_info``), the SHA-256 of its file."""

    detector: Any
    info: ModelInfo
    sha256: str | None
    path: Path | None
    reference: str | None = None  # FP32 model an INT8 one was checked against (kept on disk with it)


def model_info(meta: Any, sha: str | None) -> ModelInfo:
    """What each lift names its model by: the file's metadata and the hash of the file that runs (an
    INT8 file and its FP32 sibling share name and version; the server tells them apart by this)."""
    return ModelInfo(name=meta.name, version=meta.version, sha256=sha)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib follows a redirect with every header of the request, the truck's bearer token included,
    to any host and over plain http too; the server never redirects a model download."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        raise ModelRefused(f"download refused: {req.full_url} redirects to {newurl} (the truck sends its token to "
                           "models.server only)")


def remove_stale_parts(folder: Path, writing: str | None = None) -> None:
    """Delete the ``<sha256>.onnx.part`` files of downloads a crash or a power cut interrupted, except
    ``writing`` (the name of the one being written). Nothing else deleted them (``_prune`` looks at
    ``.onnx`` files): the truck's disk filled slowly, a partial model per interruption. Downloads
    run one at a time, in the updater's thread: at start-up and before a download, any other
    ``.part`` is stale."""
    if not folder.is_dir():
        return
    for path in folder.glob("*.onnx.part"):
        if PART.fullmatch(path.name) and path.name != writing:
            try:
                path.unlink(missing_ok=True)
            except OSError as error:  # a read-only disk: the download itself will say so
                log.warning("partial download %s not deleted: %s", path.name, error.strerror or error)
            else:
                log.info("deleted %s, left by an interrupted download", path.name)


def download(settings: EdgeSettings, sha: str, target: Path) -> None:
    """``GET <server>/api/models/<sha>.onnx`` into ``target``, hash checked; ModelRefused says what failed."""
    models = settings.models
    if models.server is None:
        raise ModelRefused("download impossible: models.server is not set on this truck")
    try:
        token = models.read_token()
    except ConfigError as error:
        raise ModelRefused(f"download impossible: {error}") from None
    url = f"{models.server.rstrip('/')}/api/models/{sha}.onnx"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    context = ssl.create_default_context(cafile=str(models.ca_file) if models.ca_file else None)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirect)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    remove_stale_parts(target.parent, writing=part.name)
    digest, size, limit = hashlib.sha256(), 0, int(models.max_mb * 2**20)
    try:
        with opener.open(request, timeout=models.timeout_s) as response, open(part, "wb") as out:
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ModelRefused(f"download refused: larger than models.max_mb ({models.max_mb:g} MB)")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
    except urllib.error.HTTPError as error:
        part.unlink(missing_ok=True)
        detail = error.read(300).decode("utf-8", "replace")
        raise ModelRefused(f"download failed: HTTP {error.code} from {url} {detail}".strip()) from None
    except (urllib.error.URLError, OSError) as error:
        part.unlink(missing_ok=True)
        reason = getattr(error, "reason", None) or error
        raise ModelRefused(f"download failed: {url}: {reason}") from None
    except ModelRefused:
        part.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != sha:
        part.unlink(missing_ok=True)
        raise ModelRefused(f"wrong hash: the server sent {size} bytes with sha256 {digest.hexdigest()}, expected {sha}")
    os.replace(part, target)


class ModelUpdater:
    """``request`` (any thread) -> background download and checks -> ``take`` (the pipeline, between lifts)."""

    def __init__(self, settings: EdgeSettings, rules: SortingRules, stream: Callable[[], Stream],
                 build: Callable[[Path], Any], running: RunningModel,
                 on_install: Callable[[RunningModel], None], on_change: Callable[[], None]) -> None:
        self.settings, self.rules, self.stream, self.build = settings, rules, stream, build
        self.running, self.previous = running, running
        # The start-up model (``model:``, never deleted): a rollback two swaps later asks for it again,
        # and the server may have no copy of a model shipped with the truck.
        self.started = running
        self.on_install = on_install  # the recorder and evidence follow the new model
        self.on_change = on_change  # a refusal or a swap: the heartbeat goes out now
        self.update: ModelUpdate | None = None
        self._lock = threading.Lock()
        self._wanted: ModelRef | None = None
        self._staged: RunningModel | None = None
        self._taken: RunningModel | None = None  # taken by the pipeline, installed when its lift begins
        self._thread: threading.Thread | None = None
        remove_stale_parts(settings.models.dir)  # start-up: no download runs yet

    def _state(self, sha: str, state: str, reason: str | None = None) -> None:
        self.update = ModelUpdate(sha256=sha, state=state, reason=reason[:300] if reason else None,  # type: ignore[arg-type]
                                  at=datetime.now(UTC))

    def request(self, ref: ModelRef) -> None:
        """The server asks for ``ref``; returns at once (the work happens in a thread)."""
        with self._lock:
            if self._wanted is not None and self._wanted.sha256 == ref.sha256:
                return  # already on it
            if ref.sha256 == (self._taken or self.running).sha256:  # the model (about to be) running: nothing to load
                self._wanted, self._staged = None, None
                self._state(ref.sha256, "installed")
                return
            if self._staged is not None and self._staged.sha256 == ref.sha256:
                return
            self._wanted, self._staged = ref, None
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="model-update", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                ref = self._wanted
                if ref is None:
                    self._thread = None
                    return
                self._state(ref.sha256, "downloading")
            try:
                model = self.prepare(ref)
            except ModelRefused as error:
                log.error("model %s %s (sha256 %s) refused, keeping %s %s: %s", ref.name, ref.version, ref.sha256[:12],
                          self.running.info.name, self.running.info.version, error)
                model, reason = None, str(error)
            except Exception as error:  # this thread must report, whatever happened
                log.exception("model %s: check failed", ref.sha256[:12])
                model, reason = None, f"check failed: {type(error).__name__}: {error}"
            with self._lock:
                if self._wanted is not ref:
                    continue  # a newer request came meanwhile: that one wins
                self._wanted = None
                if model is None:
                    self._state(ref.sha256, "refused", reason)
                    self._prune()  # a refused download leaves nothing behind
                else:
                    self._staged = model
                    self._state(ref.sha256, "ready")
                    log.info("model %s %s checked; it runs from the next lift", ref.name, ref.version)
            self.on_change()

    def prepare(self, ref: ModelRef) -> RunningModel:
        """Fetch and check ``ref``; ModelRefused with the reason."""
        path = self._fetch(ref.sha256)
        try:
            detector = self.build(path)
        except DetectorError as error:
            raise ModelRefused(f"not a usable model: {str(error).replace(str(path), path.name)}") from None
        meta = detector.meta
        if (meta.name, meta.version) != (ref.name, ref.version):
            raise ModelRefused(f"the file's metadata name {meta.name} {meta.version}, the server announced "
                               f"{ref.name} {ref.version}")
        stream = self.stream()
        try:
            self.rules.check_model(tuple(detector.names), stream)
        except ValueError as error:
            raise ModelRefused(f"classes without rules: {error}") from None
        self._self_check(detector, path, ref)
        return RunningModel(detector, model_info(meta, ref.sha256), ref.sha256, path, ref.reference)

    def _fetch(self, sha: str) -> Path:
        """A local file with this SHA-256: the running, previous or start-up model, one in ``models.dir``, else
        downloaded."""
        for known in (self.running, self.previous):
            if known.sha256 == sha and known.path is not None and known.path.is_file():
                return known.path
        started = self.started.path
        if self.started.sha256 == sha and started is not None and started.is_file() and file_sha256(started) == sha:
            return started  # hashed again: an upgrade may have replaced the file since start-up
        target = self.settings.models.dir / f"{sha}.onnx"
        if target.is_file() and file_sha256(target) == sha:
            return target
        download(self.settings, sha, target)
        return target

    def _self_check(self, detector: Any, path: Path, ref: ModelRef) -> None:
        check = self.settings.selfcheck
        if not check.enabled:
            return
        try:
            photos = calibration_photos(check.photos)
        except SelfCheckError as error:
            log.warning("model self-check skipped: %s", error)
            return
        seen = 0
        for photo in photos:
            image = cv2.imread(str(photo))
            if image is None:
                raise ModelRefused(f"self-check impossible: {photo} is not a readable image")
            seen += len(detector.detect(image))
        if seen == 0:
            raise ModelRefused(f"self-check failed: the model sees nothing on the {len(photos)} calibration photos")
        if ref.reference is None:
            return
        reference = self._fetch(ref.reference)
        try:
            verdict = check_int8(path, check.max_disagreement, photos, reference=reference,
                                 threads=self.settings.detector_threads)
        except SelfCheckError as error:
            raise ModelRefused(f"self-check impossible: {error}") from None
        assert verdict is not None  # a reference was given
        if not verdict.passed:
            disagreement = verdict.agreement.disagreement
            raise ModelRefused(f"self-check failed: disagrees with its FP32 model by {disagreement:.3f} > "
                               f"{check.max_disagreement} on {len(photos)} photos")

    def take(self) -> RunningModel | None:
        """The staged model, for the lift whose first frame comes in now; None when there is none."""
        with self._lock:
            staged, self._staged = self._staged, None
            self._taken = staged
            return staged

    def install(self, model: RunningModel) -> None:
        """``model`` runs from the lift beginning now (the previous lift is closed)."""
        self.on_install(model)
        with self._lock:
            self.previous, self.running, self._taken = self.running, model, None
            self._state(model.sha256 or "", "installed")
        log.info("now running model %s %s (sha256 %s)", model.info.name, model.info.version, (model.sha256 or "")[:12])
        self._prune()
        self.on_change()

    def _prune(self) -> None:
        """Keep the running and previous models (and their references) in ``models.dir``; delete the
        older downloads. Only files named ``<sha256>.onnx`` (what ``download`` writes) are ever deleted:
        ``model:`` may point into ``models.dir``, and a truck whose start-up model was deleted could not
        start again after its next reboot."""
        keep = {f"{sha}.onnx" for m in (self.running, self.previous) for sha in (m.sha256, m.reference) if sha}
        folder = self.settings.models.dir
        if not folder.is_dir():
            return
        for path in folder.glob("*.onnx"):
            if DOWNLOADED.fullmatch(path.name) and path.name not in keep:
                path.unlink(missing_ok=True)
                log.info("deleted old model %s", path.name)
