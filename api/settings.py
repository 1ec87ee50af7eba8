"""One settings object, from ``QUANZI_*`` environment variables.

Development defaults run everything locally (embedded graph server and Redis under
``.data/``). Outside development the server refuses the default JWT secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.errors import StartupError

__all__ = ["Settings", "DEV_JWT_SECRET"]

DEV_JWT_SECRET = "quanzi-development-secret-do-not-use-in-production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUANZI_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, le=64)

    #: A real Neo4j 5 (bolt:// or neo4j://). Unset: the embedded ArcadeDB server is started.
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr = SecretStr("")
    neo4j_database: str | None = None
    #: A real Redis >= 6. Unset: a local redis-server is started.
    redis_url: str | None = None

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_issuer: str = "quanzi"
    jwt_audience: str = "quanzi-api"

    #: commission (分佣) walks this many levels of the buyer's upline; never more than 3
    max_commission_levels: int = Field(default=2, ge=0, le=3)
    #: KOL rankings are recomputed after this many changes, or this many seconds with any change
    kol_recompute_changes: int = Field(default=1_000, ge=1)
    kol_recompute_seconds: int = Field(default=3_600, ge=1)
    #: segmentation is recomputed after this many changes, or when this many seconds old (stages move with time)
    segmentation_recompute_changes: int = Field(default=5_000, ge=1)
    segmentation_recompute_seconds: int = Field(default=86_400, ge=60)
    #: how often the background jobs look for work (seconds); 0 turns them off
    scheduler_interval: float = Field(default=30.0, ge=0)
    relay_interval: float = Field(default=1.0, gt=0)
    recommendation_ttl_seconds: int = Field(default=600, ge=1)
    #: community health reports: served as is for this long, then refreshed in the background
    health_fresh_seconds: float = Field(default=300.0, ge=0)
    #: the staleness bound: a cached health report expires this long after it was computed
    health_max_age_seconds: int = Field(default=3_600, ge=1)
    #: websockets (graphql-transport-ws): connection_init deadline, subscriptions per connection,
    #: server ping interval, and events buffered per subscriber before a slow one is dropped
    ws_init_timeout_seconds: float = Field(default=3.0, gt=0)
    ws_max_subscriptions: int = Field(default=20, ge=1)
    ws_ping_seconds: float = Field(default=15.0, gt=0)
    subscription_buffer: int = Field(default=1_000, ge=1)
    #: how often webhook deliveries due for (re)sending are looked for (seconds)
    webhook_interval: float = Field(default=0.5, gt=0)
    #: allow webhook URLs on private or local addresses (always allowed in development);
    #: off, registration refuses them and delivery checks where the name resolves (SSRF)
    webhook_allow_private: bool = False

    #: log lines as one JSON object each (``json``) or readable text; unset: text in development, else json
    log_format: Literal["json", "text"] | None = None
    #: the bearer token ``/metrics`` requires outside development (unset there: ``/metrics`` is closed)
    metrics_token: SecretStr | None = None

    #: query limits, each refused before anything runs (0 turns one off); see api/limits.py
    max_query_depth: int = Field(default=10, ge=0)
    max_aliases: int = Field(default=15, ge=0)
    max_tokens: int = Field(default=2_000, ge=0)
    max_body_bytes: int = Field(default=1_048_576, ge=0)
    max_query_cost: int = Field(default=10_000, ge=0)
    mutation_cost: int = Field(default=10, ge=0)
    #: rate limits: token buckets of cost points per principal and per client IP (api/ratelimit.py)
    rate_limit: bool = True
    rate_limit_principal_burst: int = Field(default=20_000, ge=1)
    rate_limit_principal_per_second: float = Field(default=1_000.0, gt=0)
    rate_limit_ip_burst: int = Field(default=60_000, ge=1)
    rate_limit_ip_per_second: float = Field(default=5_000.0, gt=0)
    #: persisted queries: apq (automatic, sha256), safelist (only the manifest's operations) or off
    persisted_queries: Literal["apq", "safelist", "off"] = "apq"
    safelist_path: Path | None = None
    apq_ttl_seconds: int = Field(default=86_400, ge=1)

    data_dir: Path = Path(".data")
    embedded_password: SecretStr = SecretStr("quanzi-embedded-dev")
    demo_members: int = Field(default=10_000, ge=0)
    demo_seed: int = 7
    demo_tenant: str = "demo"

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def effective_log_format(self) -> Literal["json", "text"]:
        return self.log_format or ("text" if self.development else "json")

    def check(self) -> None:
        """Refuse settings that must never reach production."""
        if not self.development and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
            raise StartupError(
                f"QUANZI_ENV={self.env} but QUANZI_JWT_SECRET is the development default; "
                "set a real secret (at least 32 random characters)"
            )
        if not self.development and len(self.jwt_secret.get_secret_value()) < 32:
            raise StartupError("QUANZI_JWT_SECRET must be at least 32 characters outside development")
        if self.rate_limit and self.max_query_cost and min(self.rate_limit_principal_burst,
                                                           self.rate_limit_ip_burst) < self.max_query_cost:
            raise StartupError("the rate limit bursts (QUANZI_RATE_LIMIT_*_BURST) must be at least "
                               "QUANZI_MAX_QUERY_COST, or the most expensive allowed query could never run")
        if self.persisted_queries == "safelist" and self.safelist_path is None:
            raise StartupError("QUANZI_PERSISTED_QUERIES=safelist needs QUANZI_SAFELIST_PATH (a persisted-query manifest)")
        if len(self.embedded_password.get_secret_value()) < 8:
            raise StartupError("QUANZI_EMBEDDED_PASSWORD must be at least 8 characters (the graph server requires it)")
