"""``view:`` of the truck's settings: when the hopper camera's view counts as unusable (``vision.view``).

The defaults come from 450 real photos of ../shared/datasets and synthetic dark, over-exposed,
blurred and covered copies of them (``bench/view.py``, numbers in docs/edge.md, *Camera view*):
none of the real photos, nor their grey-scale (infrared) copies, is judged unusable.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vision.view import ViewLimits

_DEFAULT = ViewLimits()


class ViewSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="Measure each lift's frames and say when the view was unusable")
    # the darkest real photo measured 47; the same photos at 8 % of their light 3 to 16
    dark_below: float = Field(default=_DEFAULT.dark_below, ge=0, le=255, description="Mean grey level of a dark frame")
    # the brightest real photo measured 208; over-exposed copies 214 to 252
    bright_above: float = Field(default=_DEFAULT.bright_above, ge=0, le=255,
                                description="Mean grey level of an over-exposed frame")
    # real photos 0.17 to 0.95; a bag or grime over the lens (a blurred copy under a grey veil) 0.00 to 0.13
    flat_below: float = Field(default=_DEFAULT.flat_below, ge=0, le=10,
                              description="Contrast (standard deviation over mean grey level) of a covered lens")
    # real photos 0.27 to 3.72; copies blurred by a Gaussian of 1/20 of the frame 0.06 to 0.44
    blurred_below: float = Field(default=_DEFAULT.blurred_below, ge=0, le=100,
                                 description="Sharpness (Laplacian's standard deviation over the grey levels') of a "
                                             "blurred frame")
    # the same frame again differs by 0; sensor noise alone (2 grey levels) by about 1
    frozen_below: float = Field(default=_DEFAULT.frozen_below, ge=0, le=255,
                                description="Mean grey-level change from the frame before of a frozen camera")
    unusable_share: float = Field(default=_DEFAULT.unusable_share, ge=0, lt=1,
                                  description="A lift is unusable when more than this share of its frames is")

    @model_validator(mode="after")
    def _ordered(self) -> ViewSettings:
        if self.dark_below >= self.bright_above:
            raise ValueError(f"dark_below {self.dark_below} must be under bright_above {self.bright_above}: "
                             "every frame would be dark or over-exposed")
        return self

    def limits(self) -> ViewLimits:
        return ViewLimits(**self.model_dump(exclude={"enabled"}))
