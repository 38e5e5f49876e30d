"""Street-name keys: one spelling for ``Av. du Gal de Gaulle``, ``AV DU GENERAL DE GAULLE`` and
``Avenue du Général de Gaulle``.

Address files and OSM spell the same street differently: upper case without accents and with
the DGFiP abbreviations (cadastre, FANTOIR, the Toulouse extract), mixed case with accents (BAN,
OSM). Addresses are linked to streets by comparing keys inside one commune; communes are
compared by ``commune_key``, which also reads « St- » and « Ste- » as « Saint- » and « Sainte- ».
"""

from __future__ import annotations

import re
import unicodedata

# Abbreviations of the kind of way, recognised as the first word only ("ALL" or "PL" elsewhere
# in a name are ordinary words or initials). From the FANTOIR / DGFiP nomenclature.
WAY_TYPES = {
    "all": "allee", "av": "avenue", "ave": "avenue", "bd": "boulevard", "bld": "boulevard",
    "boul": "boulevard", "car": "carrefour", "ch": "chemin", "che": "chemin", "chem": "chemin",
    "chs": "chaussee", "cite": "cite", "cours": "cours", "crs": "cours", "cv": "chemin vicinal",
    "esp": "esplanade", "fg": "faubourg", "fbg": "faubourg", "gr": "grande rue", "ham": "hameau",
    "imp": "impasse", "lot": "lotissement", "mte": "montee", "pas": "passage", "pass": "passage",
    "pl": "place", "prom": "promenade", "prv": "parvis", "pt": "pont", "pte": "porte",
    "qu": "quai", "qua": "quai", "r": "rue", "res": "residence", "rle": "ruelle", "rpt": "rond point",
    "rte": "route", "sen": "sentier", "sente": "sente", "sq": "square", "tsse": "terrasse",
    "tra": "traverse", "vla": "villa", "vc": "voie communale", "zac": "zac", "za": "za", "zi": "zi",
}

# Abbreviations of titles and saints, anywhere in the name.
WORDS = {
    "st": "saint", "ste": "sainte", "sts": "saints", "stes": "saintes", "gal": "general",
    "gen": "general", "mal": "marechal", "pdt": "president", "pres": "president", "dr": "docteur",
    "doct": "docteur", "prof": "professeur", "cdt": "commandant", "cmdt": "commandant",
    "cne": "capitaine", "lt": "lieutenant", "col": "colonel", "adj": "adjudant", "sgt": "sergent",
    "mgr": "monseigneur", "abbe": "abbe", "ns": "notre", "nd": "notre dame", "chan": "chanoine",
}

# Articles and prepositions vary between sources ("Rue Louis Pasteur" / "Rue Pasteur" aside,
# "Place de la Mairie" / "Place Mairie"): dropped from the key.
STOP_WORDS = {"de", "du", "des", "la", "le", "les", "l", "d", "a", "au", "aux", "en", "et", "sur"}

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def fold(text: str) -> str:
    """Lower case, accents and ligatures removed, punctuation turned into single spaces."""
    text = text.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE")
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_ALNUM.sub(" ", ascii_only.lower()).strip()


def street_key(name: str) -> str:
    """The comparison key of a street name; equal keys mean the same street within a commune."""
    words = fold(name).split()
    if not words:
        return ""
    expanded = [WAY_TYPES.get(words[0], words[0])]
    expanded += [WORDS.get(word, word) for word in words[1:]]
    kept = " ".join(expanded).split()
    return " ".join(word for word in kept if word not in STOP_WORDS)


def significant_words(key: str) -> set[str]:
    """Words of a key that identify a street rather than its kind (the ``pasteur`` of a key)."""
    words = key.split()
    return {word for word in words[1:] if len(word) >= 4} or set(words[-1:])


# « St- » and « Ste- » in commune names: OSM, bin registries and people write « St-Jean-de-Braye »
# where BAN and the INSEE write « Saint-Jean-de-Braye ». Whole words only: Stenay, Estrées.
COMMUNE_WORDS = {"st": "saint", "ste": "sainte"}


def commune_key(name: str) -> str:
    """Communes compared without case, accents, the hyphens some sources leave out, or the
    abbreviations « St » and « Ste »."""
    return "-".join(COMMUNE_WORDS.get(word, word) for word in fold(name).split())
