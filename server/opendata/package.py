"""The open data package: its description (``datapackage.json``, a Frictionless Data Package with a
Table Schema per file and the licences of each) and writing it to a folder so that the folder holds
the old package or the new one, never a mix."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Collection
from datetime import date, datetime
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
    months_k,
    to_csv,
    to_geojson,
)
from server.reminders.phrases import plural
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


# The CSV's guard against spreadsheet formulas (server.web.csvexport), which changes the text read.
FORMULA_GUARD = ("Dans le CSV, un texte qui commence par =, +, -, @, une tabulation ou un retour chariot est "
                 "précédé d'une apostrophe (') pour qu'aucun tableur ne l'exécute comme une formule ; le GeoJSON "
                 "le donne tel quel.")


def _withheld(q: OpenDataQuery) -> str:
    """The suppression rule, as the description and the ``lifts`` field say it."""
    rule = (f"Les cases (rue, période, flux) de moins de {q.k} levées ne sont pas publiées, pas même vides, ni "
            f"aucune case d'une rue de moins de {q.households} adresses connues (celles de la Base Adresse Nationale "
            "ou du fichier local rattachées à la rue), quel que soit son nombre de levées : une levée compte un bac, "
            "pas un foyer.")
    rule += (" Les rues sans aucune adresse connue sont publiées au seul seuil de levées, leurs foyers n'étant pas "
             "comptés." if q.publish_without_addresses else " Les rues sans aucune adresse connue ne sont pas "
             "publiées : leurs foyers ne peuvent pas être comptés.")
    if q.period == "year":  # complementary suppression: server.opendata.export._differenced
        rule += (f" Une année est aussi retenue quand ses mois de moins de {months_k(q)} levées (ceux que l'export "
                 f"mensuel ne publie pas) en totalisent entre 1 et {months_k(q) - 1} : l'année moins ses mois "
                 "publiés les donnerait.")
    return rule


def _held_back(pub: Publication | None) -> str:
    """How many cells the rules held back, by reason (never which)."""
    if pub is None:
        return ""
    return (f" Dans cet export, {pub.suppressed} {plural(pub.suppressed, 'case retenue', 'cases retenues')} : "
            f"{pub.few_households} sur des rues de trop peu d'adresses connues, {pub.no_addresses} sur des rues "
            f"sans adresse connue, {pub.under_k} pour leur nombre de levées.")


def _fields(q: OpenDataQuery) -> list[dict[str, Any]]:
    share = {"type": "number", "constraints": {"required": True, "minimum": 0, "maximum": 1}}
    pattern = r"^\d{4}-\d{2}$" if q.period == "month" else r"^\d{4}$"
    rounded = "arrondie à 4 décimales ; une part de 0 à 1, pas un pourcentage."
    return [
        {"name": "street_id", "type": "integer", "title": "Identifiant Trivue de la rue",
         "description": "Le même d'un export à l'autre tant que la rue (même nom, même commune) reste dans les "
                        "rues importées ; propre à ce jeu de données (ni FANTOIR ni identifiant BAN).",
         "constraints": {"required": True, "minimum": 1}},
        {"name": "street_name", "type": "string", "title": "Nom de la rue (OpenStreetMap)",
         "description": FORMULA_GUARD},
        {"name": "commune", "type": "string", "title": "Commune", "description": FORMULA_GUARD},
        {"name": "code_insee", "type": "string", "title": "Code INSEE de la commune (code officiel géographique)",
         "description": "Celui des adresses de la Base Adresse Nationale rattachées à la rue (le plus fréquent), "
                        "sinon celui donné à l'import des rues ; vide quand aucune donnée ne le dit. Un texte de "
                        "5 caractères (01053, 2A004) : à lire comme texte, pas comme nombre.",
         "constraints": {"pattern": CODE_INSEE_PATTERN}},
        {"name": "period", "type": "string", "title": f"Période ({'mois AAAA-MM' if q.period == 'month' else 'année'}"
         ", jours de collecte en heure locale)",
         "description": "Les levées comptent au jour de collecte local (le fuseau du serveur, Europe/Paris par "
                        "défaut), pas au jour UTC.",
         "constraints": {"required": True, "pattern": pattern}},
        {"name": "stream", "type": "string", "title": "Flux collecté",
         "description": "recyclables : emballages (bac jaune) ; glass : verre ; residual : ordures ménagères "
                        "résiduelles ; biowaste : biodéchets ; paper : papiers.",
         "constraints": {"required": True, "enum": [s.value for s in Stream]}},
        {"name": "lifts", "type": "integer", "title": "Levées de bacs",
         "description": "Levées de bacs de ce flux rattachées à la rue (par la position du camion, ou le registre "
                        "des bacs) pendant la période, par les seuls camions équipés d'une caméra (le premier mois "
                        "d'un déploiement en compte moins : comparer les parts, rate, plutôt que les levées) ; les "
                        "levées rattachées à aucune rue ne sont pas publiées. "
                        + _withheld(q), "constraints": {"required": True, "minimum": q.k}},
        {"name": "contaminated_lifts", "type": "integer", "title": "Levées avec erreur de tri",
         "description": "Levées où au moins un objet n'avait pas sa place dans ce flux (erreur ou alerte, "
                        "hors simple information)", "constraints": {"required": True, "minimum": 0}},
        {"name": "rate", "title": "Part des levées avec erreur de tri",
         "description": "contaminated_lifts / lifts, " + rounded, **share},
        {"name": "ci_low", "title": "Borne basse de l'intervalle de Wilson à 95 % de rate",
         "description": f"{WILSON} Borne {rounded}", **share},
        {"name": "ci_high", "title": "Borne haute de l'intervalle de Wilson à 95 % de rate",
         "description": f"{WILSON} Borne {rounded}", **share},
        *({"name": f"top_error_{i}", "type": "string", "title": f"Erreur de tri n° {i} (catégorie)",
           "description": f"La catégorie d'erreur de tri (sac_ferme, verre, textile… : celles des consignes de tri "
                          f"locales) au rang {i} dans la case : classées par nombre de levées où elle apparaît, "
                          "puis par nombre d'objets, puis par ordre alphabétique, comme sur le tableau de bord ; "
                          f"hors simple information ; vide quand la case en a moins de {i}."}
          for i in range(1, TOP_ERRORS + 1)),
    ]


def _first_day(q: OpenDataQuery, pub: Publication | None) -> date | None:
    """``--since``, else the first day of the first period published (all the history: "du début"
    dated nothing a re-user could read)."""
    if q.since is not None or pub is None or not pub.count:
        return q.since
    first = min(cell[0] for street in pub.streets for cell in street.cells)  # "2026-10" or "2026"
    return date(int(first[:4]), int(first[5:7] or 1), 1)


def datapackage(q: OpenDataQuery, created: datetime, code_sources: Collection[str] = (),
                pub: Publication | None = None) -> dict[str, Any]:
    """The Frictionless Data Package describing ``streets.csv`` and ``streets.geojson``; its sources
    name those of the codes INSEE published (``code_sources``: ``ban``, ``import``), and no other;
    with ``pub``, its coverage: the days (``temporal``) and the communes (``spatial``) published."""
    fields = _fields(q)
    first = _first_day(q, pub)
    covered = f"du {first or 'début'} au {q.until or 'dernier jour collecté'}"
    coverage: dict[str, Any] = {}
    # Properties of our own (a Data Package allows them): data.gouv.fr reads neither, its dataset
    # form asks for the coverage again (docs/opendata.md), but a re-user holding the files has them.
    if first is not None and q.until is not None:
        coverage["temporal"] = {"start": first.isoformat(), "end": q.until.isoformat()}
    if pub is not None:
        communes = sorted({(s.commune, s.code_insee or "") for s in pub.streets})
        coverage["spatial"] = [{"commune": name, "code_insee": code or None} for name, code in communes]
    return {
        "name": f"trivue-qualite-du-tri-par-rue-{q.period}",
        "title": "Qualité du tri des déchets ménagers par rue",
        "description": (f"Levées de bacs et part des levées avec erreur de tri, par rue, "
                        f"{'mois' if q.period == 'month' else 'année'} et flux, {covered}, mesurées par les "
                        f"caméras des camions de collecte (Trivue). {_withheld(q)}{_held_back(pub)} Aucune "
                        "adresse, aucun bac, "
                        "aucune photo, aucun camion ni aucune heure."),
        "created": created.isoformat(timespec="seconds"),
        **coverage,
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
             PACKAGE_NAME: json.dumps(datapackage(q, created, pub.code_sources, pub), ensure_ascii=False,
                                      indent=2) + "\n"}
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
