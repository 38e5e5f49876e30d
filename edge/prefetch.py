"""Frames read ahead by a thread: capture and JPEG decode overlap inference (``prefetch``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from edge.camera import Frame


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


_END = object()


class Prefetched(Iterator[Frame]):
    """The frames of ``prefetch``; ``ready()`` says whether the next one would come without waiting."""

    def __init__(self, frames: Iterator[Frame], ahead: queue.Queue[object] | None,
                 stop: threading.Event | None = None) -> None:
        self._frames, self._ahead, self._stop = frames, ahead, stop

    def __next__(self) -> Frame:
        return next(self._frames)

    def ready(self) -> bool:
        """A frame (or the source's end or error) is waiting: ``next`` returns at once. The edge loop
        asks before it blocks, to finish the frames it has in flight first (``edge.pipeline``)."""
        return self._ahead is None or not self._ahead.empty()

    def close(self) -> None:
        """Stops the reading thread (it closes the source): at once when the source waits on the
        ``stop`` event given to ``prefetch`` (a live scanner between bursts), else at its next frame."""
        if self._stop is not None:
            self._stop.set()
        close = getattr(self._frames, "close", None)
        if close is not None:
            close()


def prefetch(source: Iterator[Frame], depth: int = 2, stop: threading.Event | None = None) -> Prefetched:
    """``source`` read ``depth`` frames ahead by a thread: capture and JPEG decode overlap inference.

    OpenCV's decode and onnxruntime's run both release the GIL, so on a 2-core truck computer the
    next frame is decoded while this one is detected. The bounded queue keeps memory flat and
    applies back-pressure: a source faster than the detector waits as it did without the thread.
    An error of the source is raised here, in the consumer, with its own type; closing the result
    stops the thread at its next frame, or at once when ``source`` waits on ``stop`` (``edge.camera``'s
    live sources take it): an idle scanner's thread used to outlive the loop.
    """
    stop = stop or threading.Event()
    if depth <= 0:
        return Prefetched(iter(source), None, stop)
    ahead: queue.Queue[object] = queue.Queue(maxsize=depth)
    return Prefetched(_read_ahead(source, ahead, stop), ahead, stop)


def _read_ahead(source: Iterator[Frame], ahead: queue.Queue[object], stop: threading.Event) -> Iterator[Frame]:

    def hand_over(item: object) -> bool:
        while not stop.is_set():  # poll, so that a closed consumer never leaves the thread blocked
            try:
                ahead.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in source:
                if not hand_over(frame):
                    return
            hand_over(_END)
        except BaseException as error:  # re-raised in the consumer's thread, with its type
            hand_over(_Failed(error))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # a generator source releases its capture or folder scan in this thread

    thread = threading.Thread(target=produce, name="frame-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ahead.get()
            if item is _END or isinstance(item, _Failed):
                # The thread has only the source to close now: the frames are over when it is gone (a
                # caller that checks for leftover threads right after the last frame saw it still there).
                thread.join(timeout=1.0)
                if isinstance(item, _Failed):
                    raise item.error
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
