"""The server's copy of a household letter loses each photo when the retention purges it.

A letter reproduces up to two evidence photos of the household's lifts (``server.reminders.letters``).
Its copy under ``<data_dir>/reminders/`` is kept until the item is pseudonymised
(``reminder_retention_days``, 365 days or more), while the privacy notice keeps photos 30 days
(``evidence_retention_days``): the copy kept the photos eleven months longer. Each hourly purge now
looks at the letters that still hold photos (``Item.letter_photos``, set by the send) and, once one of
those photos is purged, replaces its image by a grey box saying « Photo supprimée (durée de
conservation) », in place: the same pages, the same layout, the same file, so that the mail room's
print run and a letter not yet printed stay whole and correct (and say why the photo is missing).

Images are matched to photos by content: fpdf2 embeds a JPEG as it is, so an image's bytes hash to
its photo's file. The send records, in ``Item.letter_photos``, each photo the letter holds as
``{lift: sha256}`` (``photos_held``): the purge replaces only the images of those hashes whose lift's
photo is purged, so another image of the letter (a logo, a signature added to the template) stays.
A letter sent before (2026-12), or one whose photo fpdf2 re-encoded (no image of the file's hash in
the PDF), is recorded as a list of lifts: the purge replaces every image whose hash no kept photo of
the item has, as it always did. Those letters hold no other image (the template of the time drew
only photos) and a re-encoded photo must go all the same; their hashes are not computed at upgrade:
a photo purged before then (its letter's rewrite failed and waits for the next purge) has no
evidence row left to hash. A letter written with ``--out DIR`` elsewhere is the operator's
(``server.reminders.letter_files``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path

from pypdf import PdfReader, PdfWriter
from pypdf.errors import PyPdfError
from pypdf.generic import NameObject, NumberObject, StreamObject
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.ingest.models import Evidence
from server.reminders.letter_files import own_letter
from server.reminders.letters import font_files, shown_photos
from server.reminders.models import Channel, Item

log = logging.getLogger(__name__)

DELETED = ("Photo supprimée", "(durée de conservation)")
PLACEHOLDER_WIDTH = 480  # pixels: the box is drawn at the photo's size on the page, whatever this is


@lru_cache(maxsize=16)
def placeholder_jpeg(width: int, height: int) -> bytes:
    """A grey JPEG with the photo's proportions (``width`` × ``height``) saying the photo was deleted."""
    from PIL import Image, ImageDraw, ImageFont  # fpdf2's own dependency

    size = (PLACEHOLDER_WIDTH, max(1, round(PLACEHOLDER_WIDTH * height / max(width, 1))))
    image = Image.new("RGB", size, (232, 232, 232))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, size[0] - 1, size[1] - 1), outline=(150, 150, 150), width=3)
    font = ImageFont.truetype(str(font_files()[0]), max(12, size[0] // 16))
    draw.multiline_text((size[0] / 2, size[1] / 2), "\n".join(DELETED), fill=(60, 60, 60), font=font,
                        anchor="mm", align="center", spacing=8)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def _images(pdf: PdfReader | PdfWriter) -> Iterator[tuple[StreamObject, str]]:
    """Every image the PDF's pages draw, with the sha256 of its bytes."""
    for page in pdf.pages:
        resources = page.get("/Resources")
        xobjects = resources.get_object().get("/XObject") if resources is not None else None
        for ref in (xobjects.get_object().values() if xobjects is not None else ()):
            image = ref.get_object()
            if image.get("/Subtype") == "/Image":
                yield image, hashlib.sha256(image._data).hexdigest()


def image_hashes(reader: PdfReader | PdfWriter) -> set[str]:
    """sha256 of the bytes of every image the PDF's pages draw."""
    return {digest for _image, digest in _images(reader)}


def photos_held(photos: Sequence[tuple[str, Path]], letter: bytes) -> dict[str, str] | list[str] | None:
    """What ``Item.letter_photos`` records for a letter built with ``photos`` (lift, file): each
    printed photo's lift and sha256; the lifts only (every image not kept is replaced) when a photo
    is not in the letter as is, or its file cannot be read again; None when it prints none."""
    shown = shown_photos(photos)
    if not shown:
        return None
    files = dict(photos)
    try:
        held = {event: hashlib.sha256(files[event].read_bytes()).hexdigest() for event in shown}
        drawn = image_hashes(PdfReader(io.BytesIO(letter)))
    except (OSError, PyPdfError) as error:  # the purge took the photo meanwhile: the broad rule
        log.warning("letter photos of lifts %s not hashed: %s", shown, error)
        return shown
    if not set(held.values()) <= drawn:
        log.warning("letter photos of lifts %s re-encoded in the PDF: every image not kept is replaced", shown)
        return shown
    return held


def replace_photos(path: Path, kept: set[str], purged: set[str] | None = None) -> int:
    """Replace, in the PDF at ``path``, every image whose sha256 is in ``purged`` by the placeholder
    (``purged`` None, a letter recorded by lifts only: every image whose sha256 is not in ``kept``);
    the number replaced. The file is rewritten whole under a temporary name, then renamed: a print
    run reading it at that moment gets the old copy or the new one, never half of each."""
    reader = PdfReader(path)
    writer = PdfWriter(clone_from=reader)
    replaced = 0
    for image, digest in _images(writer):
        if (digest not in purged) if purged is not None else (digest in kept):
            continue
        grey = placeholder_jpeg(int(image["/Width"]), int(image["/Height"]))
        if image._data == grey:
            continue
        for key in ("/SMask", "/Mask", "/Decode", "/DecodeParms"):  # the photo's, not the box's
            image.pop(key, None)
        width = PLACEHOLDER_WIDTH
        height = max(1, round(PLACEHOLDER_WIDTH * int(image["/Height"]) / max(int(image["/Width"]), 1)))
        image._data = grey
        image.update({NameObject("/Filter"): NameObject("/DCTDecode"),
                      NameObject("/ColorSpace"): NameObject("/DeviceRGB"),
                      NameObject("/BitsPerComponent"): NumberObject(8),
                      NameObject("/Width"): NumberObject(width), NameObject("/Height"): NumberObject(height)})
        replaced += 1
    if replaced:
        partial = path.with_name(f".{path.name}.photos")
        with partial.open("wb") as out:
            writer.write(out)
        os.replace(partial, path)
    return replaced


def forget_purged_photos(session: Session, letters_root: Path | None) -> int:
    """Letters whose copy held a photo the retention purged since: that photo replaced. The number
    of letters rewritten; the caller commits (the items' ``letter_photos`` shrink)."""
    if letters_root is None:
        return 0
    items = list(session.scalars(select(Item).where(Item.letter_photos.is_not(None),
                                                    Item.channel == Channel.letter)))
    wanted = sorted({event for item in items for event in item.letter_photos or []})
    photos: dict[str, str] = {}  # a campaign's month of letters: thousands of lifts, asked 500 at a time
    for start in range(0, len(wanted), 500):
        photos.update(session.execute(select(Evidence.event_id, Evidence.sha256)
                                      .where(Evidence.event_id.in_(wanted[start:start + 500]))).tuples().all())
    rewritten = 0
    for item in items:
        held = item.letter_photos or []
        events = list(held)  # a dict's keys ({lift: sha256}) or a list of lifts (sent before 2026-12)
        kept = {event: photos[event] for event in events if event in photos}
        if events and len(kept) == len(events):
            continue  # every photo it holds is still kept
        # the hashes of its purged photos, less any a kept photo shares (the same file twice)
        purged = ({held[e] for e in events if e not in kept} - {held[e] for e in kept}
                  if isinstance(held, dict) else None)
        path = own_letter(item, letters_root)
        if path is not None:
            try:
                rewritten += bool(replace_photos(path, set(kept.values()), purged))
            except (OSError, PyPdfError, ValueError, KeyError) as error:  # tried again by the next purge
                log.warning("letter of reminder item %s: purged photos not removed: %s", item.id, error)
                continue
        item.letter_photos = ({e: held[e] for e in kept} if isinstance(held, dict) else list(kept)) or None
    return rewritten
