"""The error-type filter of the map and the ranking: the categories of the server's sorting rules, in
their order, in the dashboard's words where it has them and in the rules' words where it has not."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import load_settings
from tests.server.edited_rules import COMPOSTABLE, COMPOSTABLE_CATEGORY, COMPOSTABLE_LABEL, edited_rules

# What the filter offered when it was written out by hand from the packaged rules: unchanged.
PACKAGED = ["sac_ferme", "emballage", "papier", "verre", "vaisselle", "biodechet", "textile", "deee", "soins",
            "dangereux"]


def client(tmp_path: Path, lang: str, **settings: object) -> TestClient:
    app = create_app(load_settings(env={}, data_dir=tmp_path / "data", ingest_enabled=False, cookie_secure=False,
                                   dev=True, **settings))
    test_client = TestClient(app)
    test_client.cookies.set("trivue_lang", lang)
    return test_client


def category_filter(page: str) -> list[tuple[str, str]]:
    """(value, label) of the options of the category select, the 'all' option left out."""
    select = re.search(r'<select id="f-category".*?</select>', page, re.S)
    assert select, "no category filter on the page"
    return [(v, label) for v, label in re.findall(r'<option value="([^"]*)">([^<]*)</option>', select.group(0)) if v]


def script_messages(page: str) -> dict[str, str]:
    found = re.search(r'<script type="application/json" id="trivue-config">(.*?)</script>', page, re.S)
    assert found
    return json.loads(found.group(1))["t"]


@pytest.mark.parametrize("path", ["/carte", "/classement"])
def test_the_packaged_rules_give_the_filter_it_always_had(tmp_path: Path, path: str) -> None:
    page = client(tmp_path, "fr").get(path).text
    assert category_filter(page) == [(c, script_messages(page)[f"cat.{c}"]) for c in PACKAGED]
    assert ("dangereux", "Dangereux (pile, gaz)") in category_filter(page)


@pytest.mark.parametrize(("lang", "bag"), [("fr", "Sac fermé"), ("en", "Closed bag")])
def test_a_category_the_deployment_added_is_offered_in_the_rules_words(tmp_path: Path, lang: str, bag: str) -> None:
    rules = edited_rules(tmp_path / "regles")
    page = client(tmp_path, lang, sorting_rules=rules).get("/carte").text
    offered = category_filter(page)
    assert [value for value, _ in offered] == [*PACKAGED, COMPOSTABLE_CATEGORY]  # the rules' order
    assert offered[0] == ("sac_ferme", bag)  # the translations still name the known ones
    assert offered[-1] == (COMPOSTABLE_CATEGORY, COMPOSTABLE_LABEL)  # not an empty option
    # The scripts label the street page's and the ranking's errors, and the annotation tool its boxes,
    # with the same words; the translations keep theirs.
    t = script_messages(page)
    assert (t[f"cat.{COMPOSTABLE_CATEGORY}"], t[f"class.{COMPOSTABLE}"]) == (COMPOSTABLE_LABEL, COMPOSTABLE_LABEL)
    assert t["class.bag"] == ("Sac fermé" if lang == "fr" else "Closed bag")


def stream_filter(page: str) -> list[str]:
    select = re.search(r'<select id="f-stream".*?</select>', page, re.S)
    assert select, "no stream filter on the page"
    return [v for v in re.findall(r'<option value="([^"]*)">', select.group(0)) if v]


def test_the_stream_filter_offers_the_streams_the_rules_collect(tmp_path: Path) -> None:
    """A collectivité without a paper round was offered "Papiers" on the map and the ranking."""
    packaged = stream_filter(client(tmp_path, "fr").get("/carte").text)
    assert packaged == ["recyclables", "glass", "residual", "biowaste", "paper"]
    rules = edited_rules(tmp_path / "regles", drop_streams=("paper",))
    for path in ("/carte", "/classement"):
        assert stream_filter(client(tmp_path, "fr", sorting_rules=rules).get(path).text) == packaged[:-1]
