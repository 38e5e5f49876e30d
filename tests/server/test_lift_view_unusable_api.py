"""A lift whose camera view was unusable (wire 1.4) says so on ``/api/lifts``.

Found in review: such a lift counts in no street figure, yet the street page's list of contaminated
lifts (``/api/lifts?contaminated=true``) showed it like any other, with nothing telling a manager
why the street's count left it out (an overruled lift says so in ``overruled``)."""

from __future__ import annotations

from tests.server.conftest import Server, publish, wait_for
from tests.server.events import lift_event
from vision.schema import ViewProblem


def test_the_lifts_api_says_which_lifts_were_not_judged(server: Server) -> None:
    blurred = lift_event("benne-01", counts={"battery": 1}, sequence=1).model_copy(
        update={"view_unusable": ViewProblem.blurred})
    seen = lift_event("benne-01", counts={"battery": 1}, sequence=2)
    prefix = server.settings.topic_prefix
    publish(server.broker, [(f"{prefix}/benne-01/lift", e.to_json()) for e in (blurred, seen)])
    headers = server.token("manager")
    page = wait_for(lambda: len((body := server.client.get("/api/lifts", params={"contaminated": "true"},
                                                           headers=headers).json())["items"]) == 2 and body,
                    "the two lifts")
    assert {i["event_id"]: i["view_unusable"] for i in page["items"]} == {
        str(blurred.event_id): "blurred", str(seen.event_id): None}
    one = server.client.get(f"/api/lifts/{blurred.event_id}", headers=headers).json()
    assert one["view_unusable"] == "blurred" and one["contaminated"] is True


def test_a_lift_not_judged_cannot_be_overruled(server: Server) -> None:
    """Overruling says « counts as clean in every figure »: a lift not judged counts in none, so the
    API refuses it as the street page hides the button (it was accepted and audited)."""
    dark = lift_event("benne-02", counts={"battery": 1}, sequence=1).model_copy(
        update={"view_unusable": ViewProblem.dark})
    publish(server.broker, [(f"{server.settings.topic_prefix}/benne-02/lift", dark.to_json())])
    headers = server.token("manager")
    url = f"/api/lifts/{dark.event_id}"
    wait_for(lambda: server.client.get(url, headers=headers).status_code == 200, "the lift")
    answer = server.client.post(f"{url}/overrule", json={"reason": "pas de pile"}, headers=headers)
    assert answer.status_code == 409 and "not judged" in answer.json()["detail"], answer.text
    assert server.client.get(url, headers=headers).json()["overruled"] is None
