"""The API is described for integrators: every /api/v1 operation has a description in the
OpenAPI page at /docs, and docs/api.md names every scope a key can hold."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tidings.accounts.scopes import SCOPES
from tidings.app import create_app

API_DOC = Path(__file__).parent.parent / "docs" / "api.md"


def test_every_operation_is_described_in_the_openapi_page(sqlite_engine: Engine) -> None:
    client = TestClient(create_app(sqlite_engine))
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    undescribed = [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        if path.startswith("/api/v1/")
        for method, operation in operations.items()
        if not operation.get("description", "").strip() or not operation.get("tags")
    ]
    assert len(paths) > 30
    assert undescribed == []


def test_every_scope_is_documented() -> None:
    text = API_DOC.read_text(encoding="utf-8")
    assert [scope for scope in SCOPES if f"| `{scope}` |" not in text] == []
