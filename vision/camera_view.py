"""Whether the hopper camera's view could be judged (wire 1.4): part of the wire contract,
re-exported by ``vision.schema``; pydantic and the standard library only.

A dirty lens, a bag stuck on it, a camera knocked out of aim, hopper lights out at night or a USB
camera delivering the same frame again: the detector then sees nothing, and a lift sent as clean
would count as a clean bin. The truck measures each lift's frames (``vision.view``) and says when
the view was unusable and why; the server counts such a lift apart, never as a clean one.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_VIEW_LIFTS = 2**63 - 1  # consecutive lifts, a heartbeat counter (64-bit)


class ViewProblem(StrEnum):
    """Why a lift's view was unusable: most of its frames were ``dark`` (lights out), ``bright``
    (over-exposed), ``flat`` (no contrast: a bag or grime over the lens), ``blurred`` (out of focus,
    a smeared lens) or ``frozen`` (the same picture again: a stuck camera)."""

    dark = "dark"
    bright = "bright"
    flat = "flat"
    blurred = "blurred"
    frozen = "frozen"


class CameraView(BaseModel):
    """The heartbeat's camera view: the last lift's verdict and for how many lifts in a row."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    problem: ViewProblem | None = Field(default=None, description="Why the view is unusable; None: usable")
    lifts: int = Field(default=0, ge=0, le=MAX_VIEW_LIFTS,
                       description="Lifts in a row with this problem (0 when usable)")
    since: AwareDatetime | None = Field(default=None, description="When the first of them began (UTC)")

    def after(self, problem: ViewProblem | None, started_at: AwareDatetime) -> CameraView:
        """The view once a lift that began at ``started_at`` was judged ``problem`` (None: usable):
        the run goes on with the same problem, starts again with another, ends with a usable lift."""
        if problem is None:
            return CameraView()
        if problem == self.problem:
            return self.model_copy(update={"lifts": self.lifts + 1})
        return CameraView(problem=problem, lifts=1, since=started_at)
