"""The HTTP API (`podium serve`): FastAPI over an engine; see server/app.py."""

from podium.server.app import create_app

__all__ = ["create_app"]
