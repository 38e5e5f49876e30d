"""The open data package: its description (``datapackage.json``, a Frictionless Data Package with a
Table Schema per file and the licences of each) and writing it to a folder so that the folder holds
the old package or the new one, never a mix."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any

from server.opendata.export import (
    COLUMNS,
    CSV_NAME,
    GEOJSON_NAME,
    PACKAGE_NAME,
    TOP_ERRORS,
    OpenDataQuery,
    Publication,
    to_csv,
    to_geojson,
)
from vision.schema import Stream

STAGING_PREFIX = ".trivue-export-"
PACKAGE_FILES = (CSV_NAME, GEOJSON_NAME, PACKAGE_NAME)  # moved in this order: the description last
ETALAB = {"name": "etalab-2.0", "title": "Licence Ouverte / Open Licence version 2.0 (figures)",
          "path": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"}
ODBL = {"name": "ODbL-1.0", "title": "Open Database License 1.0 (street names and geometries, OpenStreetMap)",
        "path": "https://opendatacommons.org/licenses/odbl/1-0/"}
OSM_SOURCE = {"title": "© les contributeurs d'OpenStreetMap", "path": "https://www.openstreetmap.org/copyright"}
# code_insee comes from the BAN addresses linked to each street, else the street import (docs/streets.md):
# each named only when a published code came from it (``server.opendata.export.code_sources``).
BAN_SOURCE = {"title": "Base Adresse Nationale (codes INSEE des communes)", "path": "https://adresse.data.gouv.fr"}
IMPORT_SOURCE = {"title": "Codes INSEE des communes donnés à l'import des rues : ref:INSEE des limites de "
                          "communes d'OpenStreetMap, ou code officiel géographique saisi (--insee)"}
CODE_SOURCES = {"ban": BAN_SOURCE, "import": IMPORT_SOURCE}
CODE_INSEE_PATTERN = r"^(?:[0-9]{2}|2[AB])[0-9]{3}$"  # as server.streets.insee checks it


# The interval counts every lift as independent; a bin lifted at each round is not: said to re-users.
WILSON = ("Intervalle de Wilson à 95 % qui compte chaque levée comme indépendante ; les levées d'un même bac "
          "ne le sont pas tout à fait : l'incertitude réelle est un peu plus grande, surtout pour les petites "
          "cases.")


def _fields(q: OpenDataQuery) -> list[dict[str, Any]]:
    share = {"type": "number", "constraints": {"required": True, "minimum": 0, "maximum": 1}}
    pattern = r"^\d{4}-\d{2}$" if q.period == "month" else r"^\d{4}$"
    return [
        {"name": "street_id", "type": "integer", "title": "Identifiant Trivue de la rue",
         "constraints": {"required": True, "minimum": 1}},
        {"name": "street_name", "type": "string", "title": "Nom de la rue (OpenStreetMap)"},
        {"name": "commune", "type": "string", "title": "Commune"},
        {"name": "code_insee", "type": "string", "title": "Code INSEE de la commune (code officiel géographique)",
         "description": "Celui des adresses de la Base Adresse Nationale rattachées à la rue (le plus fréquent), "
                        "sinon celui donné à l'import des rues ; vide quand aucune donnée ne le dit.",
         "constraints": {"pattern": CODE_INSEE_PATTERN}},
        {"name": "period", "type": "string", "title": f"Période ({'mois AAAA-MM' if q.period == 'month' else 'année'}"
         ", jours de collecte en heure locale)", "constraints": {"required": True, "pattern": pattern}},
        {"name": "stream", "type": "string", "title": "Flux collecté",
         "constraints": {"required": True, "enum": [s.value for s in Stream]}},
        {"name": "lifts", "type": "integer", "title": "Levées de bacs",
         "constraints": {"required": True, "minimum": q.k}},
        {"name": "contaminated_lifts", "type": "integer", "title": "Levées avec erreur de tri",
         "description": "Levées où au moins un objet n'avait pas sa place dans ce flux (erreur ou alerte, "
                        "hors simple information)", "constraints": {"required": True, "minimum": 0}},
        {"name": "rate", "title": "Part des levées avec erreur de tri",
         "description": "contaminated_lifts / lifts", **share},
        {"name": "ci_low", "title": "Borne basse de l'intervalle de Wilson à 95 % de rate", "description": WILSON,
         **share},
        {"name": "ci_high", "title": "Borne haute de l'intervalle de Wilson à 95 % de rate", "description": WILSON,
         **share},
        *({"name": f"top_error_{i}", "type": "string", "title": f"Erreur de tri n° {i} (catégorie)"}
          for i in range(1, TOP_ERRORS + 1)),
    ]


def datapackage(q: OpenDataQuery, created: datetime, code_sources: Collection[str] = ()) -> dict[str, Any]:
    """The Frictionless Data Package describing ``streets.csv`` and ``streets.geojson``; its sources
    name those of the codes INSEE published (``code_sources``: ``ban``, ``import``), and no other."""
    fields = _fields(q)
    covered = f"du {q.since or 'début'} au {q.until or 'dernier jour collecté'}"
    return {
        "name": f"trivue-qualite-du-tri-par-rue-{q.period}",
        "title": "Qualité du tri des déchets ménagers par rue",
        "description": (f"Levées de bacs et part des levées avec erreur de tri, par rue, "
                        f"{'mois' if q.period == 'month' else 'année'} et flux, {covered}, mesurées par les "
                        f"caméras des camions de collecte (Trivue). Les cases de moins de {q.k} levées ne sont "
                        "pas publiées. Aucune adresse, aucun bac, aucune photo, aucun camion ni aucune heure."),
        "created": created.isoformat(timespec="seconds"),
        "licenses": [ETALAB, ODBL],
        "sources": [{"title": "Caméras Trivue des camions de collecte"}, OSM_SOURCE,
                    *(source for name, source in CODE_SOURCES.items() if name in code_sources)],
        "keywords": ["déchets", "tri", "collecte", "qualité du tri"],
        "resources": [
            {"name": "streets", "path": CSV_NAME, "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
             "title": "Qualité du tri par rue (tableau)", "licenses": [ETALAB, ODBL],
             "schema": {"fields": fields, "primaryKey": ["street_id", "period", "stream"]}},
            {"name": "streets-geojson", "type": "table", "path": GEOJSON_NAME, "format": "json",
             "mediatype": "application/geo+json", "encoding": "utf-8",
             "title": "Qualité du tri par rue (carte, GeoJSON)", "licenses": [ODBL, ETALAB],
             # Frictionless reads the features as rows: each has a type, an id, a geometry and properties.
             "dialect": {"json": {"property": "features", "keyed": True}},
             "schema": {"fields": [
                 {"name": "type", "type": "string", "constraints": {"required": True, "enum": ["Feature"]}},
                 {"name": "id", "type": "string", "constraints": {"required": True, "unique": True}},
                 {"name": "geometry", "type": "geojson", "title": "Géométrie de la rue (OpenStreetMap, ODbL)"},
                 {"name": "properties", "type": "object",
                  "description": "Les colonnes de streets.csv: " + ", ".join(COLUMNS)},
             ]}},
        ],
    }



def write_package(pub: Publication, q: OpenDataQuery, out: Path, created: datetime) -> None:
    """``streets.csv``, ``streets.geojson`` and ``datapackage.json`` of ``pub`` in ``out`` (created if needed).

    ``out`` holds the package it held before or the new one, never a mix (a new CSV beside the
    previous export's ``datapackage.json`` looks published): the three files are written and
    flushed to disk in a staging folder inside ``out`` (the same filesystem, where a rename is
    atomic, even when ``out`` is a mount point), then renamed over the old ones, which are kept as
    hard links until all three are in place and put back if a rename fails. An ``OSError`` (disk
    full, permissions) leaves the previous package as it was and the staging folder removed.
    """
    files = {CSV_NAME: to_csv(pub), GEOJSON_NAME: to_geojson(pub),
             PACKAGE_NAME: json.dumps(datapackage(q, created, pub.code_sources), ensure_ascii=False, indent=2) + "\n"}
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    try:
        for name in PACKAGE_FILES:
            with (staging / name).open("w", encoding="utf-8", newline="") as file:
                file.write(files[name])
                file.flush()
                os.fsync(file.fileno())  # on disk before the rename makes it the published file
        _move_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_in(staging: Path, out: Path) -> None:
    previous = staging / "previous"
    previous.mkdir()
    for name in PACKAGE_FILES:  # keep the old files reachable: nothing is replaced if this fails
        if (out / name).exists():
            try:
                os.link(out / name, previous / name)
            except OSError:  # a filesystem without hard links
                shutil.copy2(out / name, previous / name)
    moved: list[str] = []
    try:
        for name in PACKAGE_FILES:
            os.replace(staging / name, out / name)
            moved.append(name)
    except OSError:
        for name in reversed(moved):  # back to the previous package, file by file
            if (previous / name).exists():
                os.replace(previous / name, out / name)
            else:
                (out / name).unlink(missing_ok=True)
        raise
    descriptor = os.open(out, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # the renames themselves survive a power cut
    finally:
        os.close(descriptor)
