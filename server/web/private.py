"""Answers that name households or show their bins are kept by no browser or proxy (``Cache-Control: no-store``).

One rule, owned here: a route that serves household data or photos is a ``NoStoreRoute``, either
for a whole router (``APIRouter(route_class=NoStoreRoute)``: the dashboard's pages, the reminders)
or for one route of a router that is not private as a whole (``private_get``: the evidence and
labelling photos). The header used to be written by hand in five places, and a new photo route
that forgot it let an office browser keep a household's bin in its disk cache, readable after
the session ended and seen outside the audit log. ``tests/server/test_private_routes.py`` walks
the app's routes and fails on a photo or page route that is not declared private or public.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

NO_STORE = "no-store"
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


class NoStoreRoute(APIRoute):
    """A route whose every answer its handler returns says ``no-store``, whatever kind of response
    (JSON, a template, a ``FileResponse``). Cooperative: a reminders route combines it with its
    translation (``server.reminders.private_route``)."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            response: Response = await handler(request)
            response.headers["Cache-Control"] = NO_STORE
            return response

        return route


def private_get(router: APIRouter, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """``@router.get(path, ...)`` for one private route of a router that is not private as a whole."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(path, endpoint, methods=["GET"], route_class_override=NoStoreRoute, **options)
        return endpoint

    return register
