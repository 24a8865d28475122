"""Connection settings shared by the worker and the ranker: the Redis URL and its secrets.

The URL may carry an ACL user and password (`redis://user:pass@host:6379/0`) and TLS (`rediss://`); a
password can also come from `SEMREC_REDIS_PASSWORD` so it stays out of the process list. Secrets are
`SecretStr` and `redacted()` is what logs and error messages show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from semrec.errors import UserError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***` (user names are kept: they are not secret)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


class RedisSettings(BaseSettings):
    """Where Redis is and how to authenticate. Environment variables use the prefix `SEMREC_`."""

    model_config = SettingsConfigDict(env_prefix="SEMREC_", extra="ignore")

    redis_url: SecretStr = Field(
        SecretStr(DEFAULT_REDIS_URL),
        description="redis:// or rediss:// (TLS) URL, optionally with user:password@ and /db",
    )
    redis_username: str | None = Field(None, description="ACL user (overrides the URL's)")
    redis_password: SecretStr | None = Field(None, description="password (overrides the URL's)")
    redis_ca_cert: Path | None = Field(None, description="CA bundle for rediss:// servers with a private CA")
    redis_timeout_s: float = Field(2.0, gt=0, description="socket connect/read timeout")

    def redacted_url(self) -> str:
        return redact_url(self.redis_url.get_secret_value())

    def client(self, **overrides: Any):
        """A `redis.Redis` returning bytes. Raises UserError for a malformed URL."""
        import redis

        url = self.redis_url.get_secret_value()
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise UserError(f"redis URL must start with redis://, rediss:// or unix:// (got {redact_url(url)})")
        kwargs: dict[str, Any] = {
            "socket_timeout": self.redis_timeout_s,
            "socket_connect_timeout": self.redis_timeout_s,
            "health_check_interval": 30,
        }
        if self.redis_username:
            kwargs["username"] = self.redis_username
        if self.redis_password is not None:
            kwargs["password"] = self.redis_password.get_secret_value()
        if self.redis_ca_cert is not None and url.startswith("rediss://"):
            kwargs["ssl_ca_certs"] = str(self.redis_ca_cert)
        kwargs.update(overrides)
        try:
            return redis.Redis.from_url(url, **kwargs)
        except ValueError as exc:
            raise UserError(f"bad redis URL {redact_url(url)}: {exc}") from None


def redis_settings(url: str | None = None) -> RedisSettings:
    """Settings from the environment, with `url` (a CLI flag) taking precedence when given."""
    settings = RedisSettings()
    if url:
        settings = settings.model_copy(update={"redis_url": SecretStr(url)})
    return settings
