"""The *Journal d'audit* page (``/journal``, admins) in Chromium: from a truck on *Flotte* to its
configuration history, paged with « Entrées plus anciennes », filtered by the form, escaped, in the
collectivité's time, at 320 px, in French and English; refused to a manager."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from server.audit import AuditEntry
from tests.dashboard.conftest import SILENT_TRUCK, Browser, LiveServer
from tests.dashboard.test_rgaa import OVERFLOWING, english

pytestmark = pytest.mark.slow

ADMIN = "administratrice"
PAGE = 50  # journal.js
FIRST = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # 09:00 in Paris
HOSTILE_ACTOR = 'user:<img src=x onerror="window.pwned=1">'
HOSTILE_DETAIL = '</td><script>window.pwned=2</script><svg onload="window.pwned=3">stream: "glass" -> null'
HISTORY = 60  # the truck's config changes: more than a page


def stored(live_server: LiveServer, rows: list[AuditEntry]) -> Iterator[list[int]]:
    """``rows`` written to the journal for one test, their ids yielded, then removed."""
    with live_server.sessions() as db:
        db.add_all(rows)
        db.commit()
        ids = [row.id for row in rows]
    try:
        yield ids
    finally:
        with live_server.sessions() as db:
            db.execute(delete(AuditEntry).where(AuditEntry.id.in_(ids)))
            db.commit()


@pytest.fixture
def config_history(live_server: LiveServer) -> Iterator[list[int]]:
    """SILENT_TRUCK's configuration changes, one a minute from FIRST (ids in that order), the 46th
    by an actor and with a detail a hostile name would write, then a rollout's model change, and two
    by another admin the next day."""
    rows = [AuditEntry(at=FIRST + timedelta(minutes=i), actor="user:camille", action="truck.config",
                       target=SILENT_TRUCK, detail=f"conf: {i / 100} -> {(i + 1) / 100}") for i in range(HISTORY)]
    rows[45].actor, rows[45].detail = HOSTILE_ACTOR, HOSTILE_DETAIL
    rows.append(AuditEntry(at=FIRST + timedelta(minutes=HISTORY), actor="system", action="truck.model",
                           target=SILENT_TRUCK, detail="trivue-waste 2026.12.03 (was 2026.12.02)"))  # a rollout
    rows += [AuditEntry(at=FIRST + timedelta(days=1, minutes=i), actor="user:dominique", action="truck.config",
                        target=SILENT_TRUCK, detail='stream: null -> "glass"') for i in range(2)]
    yield from stored(live_server, rows)


def cells(browser: Browser, column: int) -> list[str]:
    return browser.page.locator(f"#journal tbody tr td:nth-child({column})").all_inner_texts()


def test_a_trucks_configuration_history_from_the_fleet_page_filtered_and_paged(browser: Browser,
                                                                                config_history: list[int]) -> None:
    page = browser.page
    browser.login(ADMIN, "/flotte")
    page.wait_for_selector("body[data-ready=true]")
    link = page.locator(f"tr[data-truck={SILENT_TRUCK}] a[data-history=config]")
    assert link.inner_text() == "historique de configuration"
    assert link.get_attribute("href") == f"/journal?target={SILENT_TRUCK}"
    assert "Journal d'audit" in page.locator("nav .nav a").all_inner_texts()
    browser.shot("journal-fleet-admin")
    link.click()
    page.wait_for_url("**/journal?*")
    page.wait_for_selector("body[data-ready=true]")
    assert page.get_by_label("Cible").input_value() == SILENT_TRUCK
    assert page.get_by_label("Action").input_value() == ""  # its config and its models (truck.model) alike

    ids = [int(i) for i in page.locator("#journal tbody tr").evaluate_all("rs => rs.map((r) => r.dataset.id)")]
    assert ids == sorted(config_history, reverse=True)[:PAGE]  # newest first, one page
    codes = page.locator("#journal tbody td.action code").all_inner_texts()
    assert set(cells(browser, 4)) == {SILENT_TRUCK} and set(codes) == {"truck.config", "truck.model"}
    # The newest change of FIRST's day by an admin: 08:59 UTC is 09:59:00 in Paris, whatever the browser's zone.
    assert cells(browser, 1)[3] == "01/12/2026 09:59:00"
    assert page.locator("#journal-status").inner_text() == "50 entrées affichées, les plus récentes en premier."
    hostile = page.locator(f"#journal tbody tr[data-id='{config_history[45]}'] td")
    assert hostile.nth(1).inner_text() == HOSTILE_ACTOR and hostile.nth(4).inner_text() == HOSTILE_DETAIL
    browser.shot("journal-truck-history")

    older = page.get_by_role("button", name="Entrées plus anciennes")
    page.get_by_label("Auteur").fill("user:dominique")  # typed, not applied: the list on screen goes on
    older.click()
    page.locator("#journal tbody tr").nth(HISTORY + 1).wait_for()
    ids = [int(i) for i in page.locator("#journal tbody tr").evaluate_all("rs => rs.map((r) => r.dataset.id)")]
    assert ids == sorted(config_history, reverse=True)  # the rest, no gap, no repeat
    assert older.is_hidden()
    assert page.locator("#journal-status").inner_text().endswith("Il n'y en a pas d'autre.")
    # Text, never markup: no element of theirs, no script run.
    assert page.locator("#journal tbody img, #journal tbody svg, #journal tbody script").count() == 0
    assert page.evaluate("window.pwned") is None

    page.get_by_label("Auteur").fill("user:dominique")
    page.get_by_role("button", name="Filtrer").click()
    page.wait_for_function("document.querySelectorAll('#journal tbody tr').length === 2")
    assert set(cells(browser, 2)) == {"user:dominique"} and "actor=user%3Adominique" in page.url
    assert older.is_hidden()

    page.get_by_label("Du", exact=True).fill("2026-12-03")
    page.get_by_label("Au", exact=True).fill("2026-12-02")
    page.get_by_role("button", name="Filtrer").click()
    assert "« Du » doit venir avant" in page.locator("#j-dates-error").inner_text()
    assert "since=" not in page.url  # nothing asked, the entries shown stay
    page.get_by_label("Du", exact=True).fill("2026-12-02")
    page.get_by_role("button", name="Filtrer").click()
    page.wait_for_url("**since=2026-12-02*")
    page.wait_for_function("document.querySelectorAll('#journal tbody tr').length === 2")
    page.get_by_label("Du", exact=True).fill("2026-12-01")
    page.get_by_label("Au", exact=True).fill("2026-12-01")
    page.get_by_role("button", name="Filtrer").click()  # dominique's changes are on the 2nd
    page.locator("#journal tbody td[colspan]").filter(has_text="Aucune entrée pour ces filtres.").wait_for()
    browser.shot("journal-filtered-empty")


def test_a_manager_gets_the_notice_and_no_history_link(browser: Browser) -> None:
    browser.login("gestionnaire", "/flotte")
    browser.page.wait_for_selector("body[data-ready=true]")
    assert browser.page.locator("a[data-history]").count() == 0
    assert "Journal d'audit" not in browser.page.locator("nav .nav a").all_inner_texts()
    browser.goto(f"/journal?target={SILENT_TRUCK}")
    assert browser.page.get_by_text("Cette page est réservée aux administrateurs.").is_visible()
    assert browser.page.locator("#journal, #journal-filters").count() == 0


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_journal_reflows_at_320_px_in_both_languages(browser: Browser, config_history: list[int],
                                                         lang: str) -> None:
    browser.login(ADMIN, "/journal")
    if lang == "en":
        browser.page.context.add_cookies([{"name": "trivue_lang", "value": "en", "url": browser.server.url}])
    page = browser.page
    page.set_viewport_size({"width": 320, "height": 640})
    browser.goto(f"/journal?target={SILENT_TRUCK}")
    page.wait_for_selector("body[data-ready=true]")
    heading = {"fr": "Journal d'audit", "en": "Audit log"}[lang]
    assert page.locator("h1").inner_text() == heading
    assert page.get_by_role("button", name={"fr": "Entrées plus anciennes", "en": "Older entries"}[lang]).is_visible()
    label = {"fr": "Modification de la configuration d'un camion", "en": "Truck configuration changed"}[lang]
    assert page.locator("#journal tbody td.action .action-label").first.inner_text() == label
    assert page.get_by_label("Action").locator("option").first.inner_text() == {"fr": "Toutes les actions",
                                                                                "en": "All actions"}[lang]
    assert page.evaluate("document.documentElement.scrollWidth") <= 320, page.evaluate(OVERFLOWING)
    browser.shot(f"journal-320-{lang}")


DAY = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # a day of its own: ?since=2026-11-20&until=2026-11-20
OLD_ACTION = "legacy.retired_action"  # an old database's action, no longer written: shown as is
# (actor, action, target, detail), oldest first
VARIED = [("user:camille", "evidence.read", "7b1c0c9e-lift", None),
          ("user:camille", "dead_letters.read", None, "12 messages, payloads hidden"),
          ("cli", "user.add", "alice", "role=viewer"),
          ("user:dominique", "reminders.household.access", "foyer:ab12", "3 lifts"),
          ("system", OLD_ACTION, None, "from an old database"),
          ("user:camille", "truck.config", SILENT_TRUCK, "conf: 0.4 -> 0.5")]
ON_DAY = "/journal?since=2026-11-20&until=2026-11-20"


@pytest.fixture
def varied(live_server: LiveServer) -> Iterator[list[int]]:
    rows = [AuditEntry(at=DAY + timedelta(minutes=i), actor=actor, action=action, target=target, detail=detail)
            for i, (actor, action, target, detail) in enumerate(VARIED)]
    yield from stored(live_server, rows)


def action_cell(browser: Browser, entry_id: int) -> tuple[str, str]:
    """The label and the code an entry's action shows."""
    cell = browser.page.locator(f"#journal tbody tr[data-id='{entry_id}'] td.action")
    return cell.locator(".action-label").inner_text(), cell.locator("code").inner_text()


def test_actions_read_as_labels_with_their_code_and_the_filter_picks_one_by_label(browser: Browser,
                                                                                  varied: list[int]) -> None:
    page = browser.page
    browser.login(ADMIN, ON_DAY)
    page.wait_for_selector("body[data-ready=true]")
    for width in (1366, 375):
        page.set_viewport_size({"width": width, "height": 900})
        browser.shot(f"journal-actions-{width}")
    assert action_cell(browser, varied[0]) == ("Lecture d'une photo de preuve", "evidence.read")
    assert action_cell(browser, varied[1]) == ("Lecture des messages rejetés", "dead_letters.read")
    assert action_cell(browser, varied[2]) == ("Ajout d'un compte", "user.add")
    old = page.locator(f"#journal tbody tr[data-id='{varied[4]}'] td.action")
    assert old.inner_text() == OLD_ACTION and old.locator(".action-label").count() == 0

    action = page.get_by_label("Action")
    assert action.evaluate("e => e.tagName") == "SELECT" and action.input_value() == ""
    assert action.locator("option").first.inner_text() == "Toutes les actions"
    with page.expect_request(lambda r: "/api/audit?" in r.url) as request:
        action.select_option(label="Ajout d'un compte")
        page.get_by_role("button", name="Filtrer").click()
    assert "action=user.add" in request.value.url and "action=user.add" in page.url
    page.wait_for_function("document.querySelectorAll('#journal tbody tr').length === 1")
    assert action_cell(browser, varied[2]) == ("Ajout d'un compte", "user.add")

    # A code linked or typed in the address that the list does not know is kept, offered and applied.
    browser.goto(f"{ON_DAY}&action={OLD_ACTION}")
    page.wait_for_selector("body[data-ready=true]")
    assert action.input_value() == OLD_ACTION
    assert action.locator("option:checked").inner_text() == OLD_ACTION
    assert [int(i) for i in page.locator("#journal tbody tr").evaluate_all("rs => rs.map((r) => r.dataset.id)")] \
        == [varied[4]]
    # The fleet page's link with an action: the known one shows selected by its label.
    browser.goto(f"/journal?action=truck.config&target={SILENT_TRUCK}&since=2026-11-20&until=2026-11-20")
    page.wait_for_selector("body[data-ready=true]")
    assert action.locator("option:checked").inner_text() == "Modification de la configuration d'un camion"
    assert action_cell(browser, varied[5]) == ("Modification de la configuration d'un camion", "truck.config")


WORDED_DAY = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)  # a day of its own
# (action, detail as stored, French, English): the journal words a known detail in the page's language.
WORDED = [
    ("lifts.list", "1 lifts, street_id=343, day_since=2026-11-06, household_level=False",
     "1 levée, rue = 343, du jour = 6 nov. 2026, niveau rue",
     "1 lift, street = 343, from day = 6 Nov 2026, street level"),
    ("user.disable", "2 sessions ended", "2 sessions fermées", "2 sessions ended"),
    ("user.role", "viewer -> admin", "lecteur → administrateur", "viewer → admin"),
    ("reminders.send", "letter to addr:45234:12 level 2", "courrier à addr:45234:12, niveau 2",
     "letter to addr:45234:12, level 2"),
    ("reminders.campaign.create", "40 items, lifts 2026-11-01..2026-11-30",
     "40 éléments, levées du 1er nov. 2026 au 30 nov. 2026", "40 items, lifts from 1 Nov 2026 to 30 Nov 2026"),
    ("streets.export", "geojson, no filter", "GeoJSON, aucun filtre", "GeoJSON, no filter"),
    ("reminders.household.opt_in", "opposition recorded 2026-11-20 08:30 UTC by user:camille",  # UTC: 09:30 Paris
     "opposition enregistrée le 20/11/2026 09:30 par user:camille",
     "opt-out recorded on 20/11/2026, 09:30 by user:camille"),
    ("labels.undo", "add of 2026-11-20T08:30:00+00:00", "annulation de : ajout du 20/11/2026 09:30",
     "undo of: add of 20/11/2026, 09:30"),
    ("reminders.household.opt_out", "ne souhaite plus de courrier", "ne souhaite plus de courrier",
     "ne souhaite plus de courrier"),  # a manager's own words: as typed
    ("truck.config", 'stream: null -> "glass", conf: 0.4 -> 0.5', "flux : non réglé → Verre ; seuil de confiance : "
     "0,4 → 0,5", "stream: not set → Glass; confidence threshold: 0.4 → 0.5"),
    ("model.rollout", "trivue-waste 2026.12.03: canary ['benne-01'], then ['benne-02', 'benne-03'] after 50 lifts each",
     "trivue-waste 2026.12.03 : camions pilotes benne-01, puis benne-02, benne-03 après 50 levées chacun",
     "trivue-waste 2026.12.03: canaries benne-01, then benne-02, benne-03 after 50 lifts each"),
    ("model.promote", "every canary sent at least 50 lifts with the model, none refused: {'benne-01': 52, 'benne-02': "
     "1250}", "chaque camion pilote a envoyé au moins 50 levées avec le modèle, aucun refus : benne-01 : 52, "
     "benne-02 : 1 250", "every canary sent at least 50 lifts with the model, none refused: benne-01: 52, "
     "benne-02: 1,250"),
    ("dead_letters.replay", "stopped after 500 of 1200: dead letters replayed: 480 stored, 20 refused again "
     "(reason=unknown_stream since=2026-11-01T00:00:00Z)", "arrêté après 500 sur 1200 : 480 enregistrés, 20 de "
     "nouveau refusés (motif = Flux non collecté, depuis = 01/11/2026 01:00)", "stopped after 500 of 1200: 480 "
     "stored, 20 refused again (reason = Stream not collected, since = 01/11/2026, 01:00)"),
    ("aggregates.rebuild", "from UTC: 900 lifts read, 12 moved; 40 days before 2026-10-01 keep UTC: their raw lifts "
     "were deleted by retention, only their street totals remain, and 2026-10-01 runs from midnight UTC to midnight "
     "Europe/Paris", "depuis UTC : 900 levées lues, 12 déplacées ; 40 jours avant le 1er oct. 2026 restent en UTC : "
     "leurs levées ont été supprimées à la fin de leur durée de conservation, seuls leurs totaux par rue restent, et "
     "le 1er oct. 2026 va de minuit UTC à minuit Europe/Paris", "from UTC: 900 lifts read, 12 moved; 40 days before "
     "1 Oct 2026 keep UTC: their lifts were deleted at the end of their retention, only their street totals remain, "
     "and 1 Oct 2026 runs from midnight UTC to midnight Europe/Paris"),
    # Its « unknown » is a count, not the rollback's trucks of the same group name.
    ("bins.import", "120 rows, 100 added, 5 moved, 10 unchanged, 2 removed, 3 unknown address, replace=False",
     "120 lignes, 100 ajoutés, 5 déplacés, 10 inchangés, 2 retirés, 3 à l'adresse inconnue, remplacement : non",
     "120 rows, 100 added, 5 moved, 10 unchanged, 2 removed, 3 at an unknown address, replace: no"),
    ("reminders.send.failed", "courrier impossible : adresse incomplète", "échec de l'envoi : courrier impossible : "
     "adresse incomplète", "sending failed: courrier impossible : adresse incomplète"),  # the channel's words
    ("model.halt", "halted by hand", "halted by hand", "halted by hand"),  # no known form: as stored
]


@pytest.fixture
def worded(live_server: LiveServer) -> Iterator[list[int]]:
    rows = [AuditEntry(at=WORDED_DAY + timedelta(minutes=i), actor="user:camille", action=action, target=None,
                       detail=detail) for i, (action, detail, _, _) in enumerate(WORDED)]
    yield from stored(live_server, rows)


def test_details_read_in_the_pages_language_the_stored_ones_unchanged(browser: Browser, worded: list[int]) -> None:
    page = browser.page
    browser.login(ADMIN, "/journal?since=2026-11-21&until=2026-11-21")
    for lang in ("fr", "en"):
        if lang == "en":
            english(browser)
            browser.goto("/journal?since=2026-11-21&until=2026-11-21")
        page.wait_for_selector("body[data-ready=true]")
        shown = {int(i): page.locator(f"#journal tbody tr[data-id='{i}'] td").nth(4) for i in worded}
        for entry_id, (_, stored_detail, french, english_text) in zip(worded, WORDED, strict=True):
            cell = shown[entry_id]
            assert cell.inner_text().replace("\u202f", " ") == (french if lang == "fr" else english_text)
            # As stored, for an investigator's copy and search; the API keeps it so.
            assert cell.get_attribute("data-detail") == stored_detail
        # A detail left as stored is English: said so to a screen reader on the French page (RGAA 8.7).
        assert shown[worded[-1]].get_attribute("lang") == ("en" if lang == "fr" else None)
        assert shown[worded[0]].get_attribute("lang") is None and shown[worded[-2]].get_attribute("lang") is None
        browser.shot(f"journal-details-{lang}")
    stored_details = [item["detail"] for item in browser.server.api(
        "/api/audit", user=ADMIN, since="2026-11-21", until="2026-11-21")["items"]]
    assert stored_details == [detail for _, detail, _, _ in reversed(WORDED)]
