"""Where the server's copy of a household letter lies, whichever directory a command runs from.

Sending writes each letter to ``<data_dir>/reminders/campagne-<c>/courrier-campagne-<c>-<item>.pdf``
and records its path in ``Item.send_detail``, absolute since 2026-12-05. Before, it was the path as
written: relative to the server's working directory with the default relative ``data_dir``
(``trivue-data``), so an erasure run from another directory looked for the letter in the wrong place,
left it on disk and said all was done. A letter is now looked for at its recorded path, then in the
campaign's folder of ``letters_root``; a copy outside the server's folder (``trivue reminders send
--out DIR``) is the operator's and is reported, not deleted; one found nowhere is reported too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from server.reminders.models import Channel, Item


def letter_name(campaign_id: int, item_id: int) -> str:
    """The file name ``Dispatcher`` gives a household letter."""
    return f"courrier-campagne-{campaign_id}-{item_id}.pdf"


# A household letter (``letter_name``), or its copy being rewritten without a purged photo
# (``letter_photos.replace_photos``: ``.<name>.photos``, left behind by a crash). Nothing else: not
# the mail room's print file (``courriers-campagne-<c>.pdf``, ``.partiel``), a street notice
# (``avis-``), a thank-you (``remerciement-``) or a route sheet (``feuille-de-route-``).
LETTER_FILE = re.compile(r"(\.?)courrier-campagne-([0-9]{1,18})-([0-9]{1,18})\.pdf(\.photos)?")
CAMPAIGN_FOLDER = re.compile(r"campagne-([0-9]{1,18})")


def letter_ids(name: str) -> tuple[int, int] | None:
    """(campaign id, item id) of a household letter's file name (``LETTER_FILE``), else None."""
    match = LETTER_FILE.fullmatch(name)
    if match is None or bool(match[1]) != bool(match[4]):  # ".courrier-…pdf" or "courrier-…pdf.photos"
        return None
    return int(match[2]), int(match[3])


def in_server_folder(path: Path, name: str, campaign_id: int, letters_root: Path) -> bool:
    """``path`` (a campaign's file called ``name``: a letter, a route sheet) is the server's own copy:
    inside ``letters_root``, or at an absolute path laid out as a server's reminders folder
    (``…/reminders/campagne-<c>/<name>``: ``letters_root`` seen from another directory)."""
    if path.resolve().is_relative_to(letters_root.resolve()):
        return True
    return path.is_absolute() and path.name == name \
        and path.parent.name == f"campagne-{campaign_id}" and path.parent.parent.name == "reminders"


def own_letter(item: Item, letters_root: Path | None) -> Path | None:
    """The server's copy of the item's letter, when it is on disk."""
    if letters_root is None or item.channel != Channel.letter or not item.send_detail:
        return None
    recorded = Path(item.send_detail)
    for path in (recorded, letters_root / f"campagne-{item.campaign_id}" / letter_name(item.campaign_id, item.id)):
        if path.suffix == ".pdf" and path.is_file() \
                and in_server_folder(path, letter_name(item.campaign_id, item.id), item.campaign_id, letters_root):
            return path
    return None


@dataclass(frozen=True, slots=True)
class LetterRemoval:
    deleted: int  # 1 when the server's copy was deleted
    problem: str | None = None  # a letter the item names that is still somewhere, or could not be found


def delete_letter(item: Item, letters_root: Path | None) -> LetterRemoval:
    """Delete the server's copy of the item's letter; say what could not be deleted, and where."""
    if letters_root is None or item.channel != Channel.letter or not item.send_detail:
        return LetterRemoval(0)
    path = own_letter(item, letters_root)
    if path is not None:
        path.unlink(missing_ok=True)
        return LetterRemoval(1)
    recorded = Path(item.send_detail)
    if recorded.suffix != ".pdf":  # a failure's reason, not a file: nothing was written
        return LetterRemoval(0)
    if recorded.is_file():
        return LetterRemoval(0, f"courrier hors du dossier du serveur, non effacé : {recorded.absolute()}")
    where = "" if recorded.is_absolute() else \
        f" (chemin relatif au dossier du serveur, cherché depuis {Path.cwd()} : lancez la commande depuis ce dossier)"
    return LetterRemoval(0, f"courrier introuvable : {recorded}{where}")
