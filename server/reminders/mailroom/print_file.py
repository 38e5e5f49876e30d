"""One PDF from many, written as it goes: the mail room's print file (``.print_run``).

A campaign's letters are one PDF each, with their own fonts and photos (about 200 kB). Joining them
with a PDF library's writer keeps every page in memory until the file is written: 5,000 letters are a
gigabyte. Here each source is read, its pages and what they use (contents, fonts, images) copied
with new object numbers, written out, and forgotten before the next is opened; what stays is one
offset per object and one reference per page, a few megabytes for a métropole's campaign. The page
tree, the catalogue and the cross-reference table are written last.

``recto_verso``: a letter with an odd number of pages is followed by a blank page, so that a printer
printing both sides starts every letter on a new sheet (without it, the next household's first page
is printed on the back of this one's last: one household's letter in another's envelope).
"""

from __future__ import annotations

import io
from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    EncodedStreamObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NullObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)

HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
CATALOG, PAGES = 1, 2  # their numbers are kept from the start; they are written last
INHERITED = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")  # what a page may take from its parents


def _ref(number: int) -> IndirectObject:
    return IndirectObject(number, 0, None)


def _inherited(page: DictionaryObject, key: str) -> Any:
    """``key`` of the page or of its nearest parent (raw: a reference stays a reference), else None."""
    node: Any = page
    for _ in range(32):  # a page tree deeper than this is a loop
        if node is None:
            return None
        if key in node:
            return dict.__getitem__(node, key)
        parent = dict.get(node, "/Parent")
        node = parent.get_object() if parent is not None else None
    return None


class PdfJoiner:
    """Pages of many PDFs into one; ``start``, ``add`` and ``finish`` return the bytes to write next."""

    def __init__(self, title: str, recto_verso: bool = True) -> None:
        self.title, self.recto_verso = title, recto_verso
        # 8 bytes an object and a page (a métropole's campaign: a few hundred thousand objects)
        self.offsets = array("q", (0, 0))  # object n's offset at n - 1; 1 and 2 are written last
        self.kids = array("q")
        self.position = 0
        self.blank_pages = 0
        self._last = PAGES

    def _new(self) -> int:
        self._last += 1
        self.offsets.append(0)
        return self._last

    def _write(self, out: io.BytesIO, number: int, obj: Any) -> None:
        self.offsets[number - 1] = self.position + out.tell()
        out.write(f"{number} 0 obj\n".encode())
        (NullObject() if obj is None else obj).write_to_stream(out)
        out.write(b"\nendobj\n")

    def _chunk(self, out: io.BytesIO) -> bytes:
        data = out.getvalue()
        self.position += len(data)
        return data

    def start(self) -> bytes:
        out = io.BytesIO()
        out.write(HEADER)
        return self._chunk(out)

    def add(self, source: Path) -> tuple[bytes, int]:
        """Copy every page of ``source``; the bytes to write and the number of pages it had."""
        out = io.BytesIO()
        with source.open("rb") as stream:
            reader = PdfReader(stream)
            pages = list(reader.pages)
            # Pages are numbered first: an annotation or an outline pointing at one of them points at the copy.
            mapping = {(p.indirect_reference.idnum, p.indirect_reference.generation): self._new()
                       for p in pages if p.indirect_reference is not None}
            queue: deque[IndirectObject] = deque()

            def copy(obj: Any) -> Any:
                if isinstance(obj, IndirectObject):
                    key = (obj.idnum, obj.generation)
                    if key not in mapping:
                        mapping[key] = self._new()
                        queue.append(obj)
                    return _ref(mapping[key])
                if isinstance(obj, StreamObject):  # the encoded bytes as they are: nothing decoded
                    stream_copy = EncodedStreamObject() if "/Filter" in obj else DecodedStreamObject()
                    stream_copy._data = obj._data
                    stream_copy.update({k: copy(v) for k, v in dict.items(obj)})
                    return stream_copy
                if isinstance(obj, DictionaryObject):
                    return DictionaryObject({k: copy(v) for k, v in dict.items(obj)})
                if isinstance(obj, ArrayObject):
                    return ArrayObject(copy(v) for v in obj)
                return obj

            for page in pages:
                new = DictionaryObject()
                for key in INHERITED:  # set on the page itself: the source's page tree is not copied
                    if (value := _inherited(page, key)) is not None:
                        new[NameObject(key)] = copy(value)
                new.update({k: copy(v) for k, v in dict.items(page) if k != "/Parent"})
                new[NameObject("/Parent")] = _ref(PAGES)
                number = mapping[(page.indirect_reference.idnum, page.indirect_reference.generation)] \
                    if page.indirect_reference is not None else self._new()
                self._write(out, number, new)
                self.kids.append(number)
            while queue:
                indirect = queue.popleft()
                self._write(out, mapping[(indirect.idnum, indirect.generation)], copy(indirect.get_object()))
            count = len(pages)
            if self.recto_verso and count % 2:
                self._blank(out, pages[-1].mediabox)
            # The reader and its objects point at each other: left to the cycle collector, the letters'
            # images and fonts piled up between its passes (6 MB after 200 letters, growing with them).
            reader.resolved_objects.clear()
            reader.flattened_pages = None
            pages.clear()
        return self._chunk(out), count

    def _blank(self, out: io.BytesIO, mediabox: Any) -> None:
        number = self._new()
        self._write(out, number, DictionaryObject({
            NameObject("/Type"): NameObject("/Page"), NameObject("/Parent"): _ref(PAGES),
            NameObject("/MediaBox"): ArrayObject(FloatObject(float(v)) for v in mediabox),
            NameObject("/Resources"): DictionaryObject()}))
        self.kids.append(number)
        self.blank_pages += 1

    def finish(self) -> bytes:
        out = io.BytesIO()
        self._write(out, PAGES, DictionaryObject({
            NameObject("/Type"): NameObject("/Pages"), NameObject("/Count"): NumberObject(len(self.kids)),
            NameObject("/Kids"): ArrayObject(_ref(k) for k in self.kids)}))
        self._write(out, CATALOG, DictionaryObject({
            NameObject("/Type"): NameObject("/Catalog"), NameObject("/Pages"): _ref(PAGES)}))
        info = self._new()
        self._write(out, info, DictionaryObject({
            NameObject("/Title"): TextStringObject(self.title), NameObject("/Producer"): TextStringObject("Trivue")}))
        start = self.position + out.tell()
        size = self._last + 1
        out.write(f"xref\n0 {size}\n0000000000 65535 f \n".encode())
        out.write("".join(f"{offset:010d} 00000 n \n" for offset in self.offsets).encode())
        out.write(f"trailer\n<< /Size {size} /Root {CATALOG} 0 R /Info {info} 0 R >>\n"
                  f"startxref\n{start}\n%%EOF\n".encode())
        return self._chunk(out)


def joined_pdf(sources: Iterable[Path], joiner: PdfJoiner) -> Iterator[bytes]:
    """The print file in pieces (one a source): for a streamed answer or a file written as it goes."""
    yield joiner.start()
    for source in sources:
        yield joiner.add(source)[0]
    yield joiner.finish()
