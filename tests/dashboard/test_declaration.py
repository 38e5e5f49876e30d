"""``/accessibilite``: the déclaration d'accessibilité, open without login, filled from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import ConfigError, load_settings


def client(tmp_path: Path, **settings: object) -> TestClient:
    return TestClient(create_app(load_settings(env={}, data_dir=tmp_path, ingest_enabled=False,
                                               cookie_secure=False, **settings)))


def test_declaration_is_public_and_says_non_conforme_until_an_audit(tmp_path: Path) -> None:
    page = client(tmp_path).get("/accessibilite")
    assert page.status_code == 200
    text = page.text
    assert "est <strong>non conforme</strong> avec le référentiel général d'amélioration" in text
    assert "Aucun audit de conformité n'a encore été réalisé" in text
    for must in ("Voies de recours", "Défenseur des droits", "Libre réponse 71120", "Contenus non accessibles",
                 "Dérogations pour charge disproportionnée", "Retour d'information et contact"):
        assert must in text, must
    assert 'href="/accessibilite"' in client(tmp_path).get("/login").text  # every page's footer


def test_declaration_shows_the_collectivites_audit_and_contact(tmp_path: Path) -> None:
    text = client(tmp_path, accessibility_entity="Orléans Métropole", accessibility_status="partiellement conforme",
                  accessibility_audit="Audit du 12 mars 2027 : 82 % des critères RGAA respectés.",
                  accessibility_contact="accessibilite@orleans-metropole.fr").get("/accessibilite").text
    assert "Orléans Métropole s'engage à rendre ses services numériques accessibles" in text
    assert "<strong>partiellement conforme</strong>" in text and "82 % des critères" in text
    assert 'href="mailto:accessibilite@orleans-metropole.fr"' in text
    assert "Accessibilité : partiellement conforme" in text


def test_an_unknown_conformity_state_is_refused_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="accessibility_status: Input should be 'non conforme', 'partiellement "
                                          "conforme' or 'totalement conforme'"):
        load_settings(env={"TRIVUE_ACCESSIBILITY_STATUS": "conforme"})


def test_the_default_contact_sentence_reads_right_whatever_the_entitys_name(tmp_path: Path) -> None:
    # Found by a first-use review (2026-12-06): "des déchets de La collectivité", a capital mid-sentence
    # with the default name (and "de Orléans Métropole" with a vowel): the name now stands apart.
    text = client(tmp_path).get("/accessibilite").text
    assert "de La collectivité" not in text
    assert "le service de gestion des déchets (La collectivité)" in text
    text = client(tmp_path, accessibility_entity="Orléans Métropole").get("/accessibilite").text
    assert "de Orléans" not in text and "(Orléans Métropole)" in text
