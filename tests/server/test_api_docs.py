"""``/docs``, the API's interactive reference, from this server alone.

It loaded Swagger UI's script and style from cdn.jsdelivr.net (FastAPI's default, a floating
``@5``, no integrity check) on the dashboard's own origin, outside the content security policy:
blank offline, and a CDN that served other code could act with an admin's session. ReDoc
(``/redoc``) loaded the same way and is not served: ``/docs`` is the documented reference.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import load_settings
from server.web.dashboard import missing_vendor_files


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    if missing_vendor_files():
        pytest.skip("dashboard libraries missing: run `make dashboard-assets`")
    data: Path = tmp_path_factory.mktemp("docs")
    settings = load_settings(None, env={}, data_dir=data, dev=True)
    return TestClient(create_app(settings, start_ingest=False))


def test_docs_load_every_file_from_this_server(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert "//" not in "".join(re.findall(r"(?:src|href)=['\"]([^'\"]+)", page.text)), page.text
    assert "jsdelivr" not in page.text and "https://" not in page.text.replace("https://swagger.io", "")
    files = re.findall(r"(?:src|href)=['\"](/static/[^'\"]+)", page.text)
    assert any(f.endswith(".js") for f in files) and any(f.endswith(".css") for f in files), files
    for path in files:
        answer = client.get(path)
        assert answer.status_code == 200 and len(answer.content) > 100, path
    # Swagger UI asks validator.swagger.io to check the document unless told not to.
    assert '"validatorUrl": null' in page.text
    assert client.get("/openapi.json").status_code == 200


def test_redoc_is_not_served(client: TestClient) -> None:
    assert client.get("/redoc").status_code == 404
