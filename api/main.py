"""``uvicorn api.main:app_from_env --factory``: the app for servers named in the environment.

``quanzi serve`` starts the embedded servers (when no real ones are configured), puts
their addresses in ``QUANZI_*`` variables and runs uvicorn with this factory, so every
worker process connects to the same servers.
"""

from __future__ import annotations

from starlette.applications import Starlette

from api.app import create_app
from api.settings import Settings
from api.telemetry import configure_logging
from domain.errors import StartupError

__all__ = ["app_from_env"]


def app_from_env() -> Starlette:
    settings = Settings()
    configure_logging(settings.effective_log_format)  # QUANZI_LOG_FORMAT: json (default outside development) or text
    if settings.neo4j_uri is None or settings.redis_url is None:
        raise StartupError("QUANZI_NEO4J_URI and QUANZI_REDIS_URL must be set; start the server with 'quanzi serve'")
    return create_app(
        settings,
        graph_uri=settings.neo4j_uri,
        redis_url=settings.redis_url,
        graph_user=settings.neo4j_user,
        graph_password=settings.neo4j_password.get_secret_value(),
        graph_database=settings.neo4j_database,
    )
