"""The HTTP API (`podium serve`): FastAPI over an engine; see server/app.py (`create_app`).
Nothing is imported here, so `podium.server.tokens` (and `podium token`) load without FastAPI."""

MAX_BODY_BYTES = 1024 * 1024
"""The largest request body the server reads by default (`podium serve --max-body`)."""
