"""Where shared state lives, chosen by the host config's ``state`` URL (``url``): SQLite in the Airlock home (the
embedded default) or PostgreSQL (``postgres.PgDb``, schema ``pg_schema`` applied by ``migrations``)."""

from .url import DEFAULT_STATE_URL, StateUrl, check_state_url, parse_state_url, redact

__all__ = ["DEFAULT_STATE_URL", "StateUrl", "check_state_url", "parse_state_url", "redact"]
