"""Settings: the only place environment variables are read (prefix TIDINGS_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/tidings.db"


class Settings(BaseSettings):
    """Everything an operator may configure, each with a safe default."""

    model_config = SettingsConfigDict(env_prefix="TIDINGS_", env_file=".env", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the store; SQLite by default, PostgreSQL in production.",
    )
    var_dir: Path = Field(Path("./var"), description="Where local files (SQLite, inboxes) live.")
    default_region: str = Field(
        "CN", description="Region for phone numbers without a country code."
    )
    default_timezone: str = Field("Asia/Shanghai", description="Timezone of members without one.")
    brand_name: str = Field("tidings", description="Brand signature shown as 【品牌】.")
    import_batch_rows: int = Field(200_000, description="Rows read per batch when importing.")
    api_host: str = Field("127.0.0.1", description="Address `tidings serve` binds to.")
    api_port: int = Field(8000, description="Port `tidings serve` binds to.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Returns the process settings, read once from the environment."""
    return Settings()
