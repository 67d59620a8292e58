"""Test fixtures: a migrated store on SQLite and on PostgreSQL, and a CLI runner bound to it.

Every test that takes `engine` runs twice, once per store. Set TIDINGS_SKIP_POSTGRES=1 to
skip the PostgreSQL half locally; CI (CI=true) never skips it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from tidings import migrate
from tidings.config import get_settings
from tidings.db import Base, make_engine

POSTGRES_URL = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _skip_postgres() -> bool:
    return os.environ.get("TIDINGS_SKIP_POSTGRES") == "1" and os.environ.get("CI") != "true"


@pytest.fixture(scope="session", autouse=True)
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Local files (keys, the simulator's inbox, charts) under this test process's own temp
    dir: the working tree's ./var holds a developer's store and is shared by every process
    that runs there, such as the other workers of a parallel run and the servers they start."""
    path = tmp_path_factory.mktemp("var")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TIDINGS_VAR_DIR", str(path))
        get_settings.cache_clear()
        yield path
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("store") / "tidings.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@contextmanager
def _postgres_schema(schema: str) -> Iterator[Engine]:
    """A PostgreSQL store in a schema of its own, with no tables yet, dropped afterwards."""
    if _skip_postgres():
        pytest.skip("TIDINGS_SKIP_POSTGRES=1")
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine = make_engine(POSTGRES_URL, schema=schema)
    yield engine
    engine.dispose()
    with admin.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_store() -> Iterator[Engine]:
    # A schema of its own per test run, so that runs side by side do not meet.
    with _postgres_schema(f"tidings_test_{os.getpid()}") as engine:
        migrate.upgrade(engine)
        yield engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def bare_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A store with no tables yet (a migration test brings it to where it needs): once on
    SQLite, once on PostgreSQL."""
    if request.param == "postgres":
        with _postgres_schema(f"tidings_bare_{os.getpid()}") as engine:
            yield engine
        return
    engine = make_engine(f"sqlite:///{tmp_path / 'tidings.db'}")
    yield engine
    engine.dispose()


def empty_tables(engine: Engine) -> None:
    """Removes every row from every table, keeping the schema. The marks of in-place changes
    stay, as in a new store: the deletes are marked there (`tidings.scancopies`)."""
    kept = {"changed_rows"}
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in kept]
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))
            if _has_sequence(connection):
                connection.execute(text("DELETE FROM sqlite_sequence"))


def _has_sequence(connection: object) -> bool:
    result = connection.execute(  # type: ignore[attr-defined]
        text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
    )
    return result.first() is not None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An empty, migrated store: once on SQLite, once on PostgreSQL."""
    store: Engine = request.getfixturevalue(f"{request.param}_store")
    empty_tables(store)
    yield store


@pytest.fixture
def sqlite_engine(sqlite_store: Engine) -> Iterator[Engine]:
    """An empty, migrated SQLite store, for tests where the engine does not matter."""
    empty_tables(sqlite_store)
    yield sqlite_store


class Cli:
    """Runs `tidings ...` in-process against a given store, as a user would type it."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
        self.engine = engine
        self.workdir = workdir
        monkeypatch.setenv("TIDINGS_DATABASE_URL", engine.url.render_as_string(hide_password=False))
        monkeypatch.setenv("TIDINGS_VAR_DIR", str(workdir / "var"))
        get_settings.cache_clear()

    def __call__(self, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        from tidings.cli import app

        result = CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)
        get_settings.cache_clear()
        return result


@pytest.fixture
def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Cli]:
    """The `tidings` command bound to the test store (both engines)."""
    yield Cli(engine, monkeypatch, tmp_path)
    get_settings.cache_clear()
