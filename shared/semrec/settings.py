"""Connection settings shared by the worker and the ranker: the Redis URL and its secrets.

The URL may carry an ACL user and password (`redis://user:pass@host:6379/0`) and TLS (`rediss://`); a
password can also come from `SEMREC_REDIS_PASSWORD` so it stays out of the process list. Secrets are
`SecretStr` and `redacted()` is what logs and error messages show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from semrec.errors import UserError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


_SECRET_QUERY_KEYS = {"password", "pass", "pwd", "auth", "token", "access_token", "secret"}


def redact_url(url: str) -> str:
    """The URL with any password (in the user info or a `?password=` query) replaced by `***`; user names are
    kept: they are not secret."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # unparsable (e.g. a bad port): show only the scheme
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"
    netloc = parts.netloc
    if password is not None:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        netloc = f"{parts.username or ''}:***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_QUERY_KEYS for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


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
    redis_cluster: bool = Field(False, description="the URL names one node of a Redis Cluster (RedisCluster client)")
    bundle_signing_key: SecretStr | None = Field(
        None, description="HMAC-SHA256 key (>= 32 bytes, never stored in Redis): `semrec publish` signs every "
        "bundle with it and the ranker refuses bundles not signed by it",
    )  # fmt: skip

    def signing_key(self) -> bytes | None:
        if self.bundle_signing_key is None or not self.bundle_signing_key.get_secret_value():
            return None
        from semrec.bundle import check_signing_key

        return check_signing_key(self.bundle_signing_key.get_secret_value().encode())

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
            if self.redis_cluster:
                kwargs.pop("health_check_interval", None)
                return redis.RedisCluster.from_url(url, **kwargs)
            return redis.Redis.from_url(url, **kwargs)
        except ValueError as exc:
            raise UserError(f"bad redis URL {redact_url(url)}: {exc}") from None


def redis_settings(url: str | None = None) -> RedisSettings:
    """Settings from the environment, with `url` (a CLI flag) taking precedence when given."""
    settings = RedisSettings()
    if url:
        settings = settings.model_copy(update={"redis_url": SecretStr(url)})
    return settings
