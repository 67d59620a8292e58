"""Brings a store's schema up to date with the Alembic migrations shipped in the package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from tidings.db import make_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """Returns an Alembic configuration bound to `engine`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    url = engine.url.render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Applies every migration up to `revision`."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    if revision == "head" and engine.dialect.name == "sqlite":
        _restore_import_indexes(engine)


def _restore_import_indexes(engine: Engine) -> None:
    """Builds the indexes a large import that crashed left unbuilt (imports/indexes.py)."""
    from tidings.bulk import bulk_store
    from tidings.imports.indexes import DEFERRING_TABLES, restore_indexes

    with bulk_store(engine) as store:
        if restore_indexes(store, DEFERRING_TABLES):
            store.commit()


def revision(engine: Engine, message: str) -> None:
    """Writes a new migration from the difference between the models and the store."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)


def current_revision(engine: Engine) -> str | None:
    """Returns the store's revision, or None for an empty store."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """Returns the newest revision shipped with the package."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def ready_engine(url: str | None = None) -> Engine:
    """Returns an engine for the configured store, migrated to the newest revision first."""
    engine = make_engine(url)
    if current_revision(engine) != head_revision():
        upgrade(engine)
    return engine
