"""Who may change workflows from the dashboard: sessions, the access token and CSRF tokens.

Reading is open to whoever reaches the port (it binds 127.0.0.1 unless told otherwise). Changing
anything needs the configured token, sent either once through the login form (the session is then
trusted) or on each request as ``Authorization: Bearer <token>``. Every browser gets a session
cookie (HttpOnly, SameSite=Strict) holding only a random id; the session's CSRF token is put in
every form and checked on every POST from a browser, so another site cannot post on a logged-in
user's behalf. Sessions live in this process's memory: a restart logs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field

COOKIE = "liteflow_session"
SESSION_LIFETIME = 12 * 3600.0  # seconds a session lasts without use
MAX_SESSIONS = 10_000  # past this, the least recently used are forgotten (a flood of cookie-less requests)


@dataclass
class Session:
    id: str
    csrf: str
    authenticated: bool = False
    last_used: float = field(default_factory=time.monotonic)


class Sessions:
    """The dashboard's sessions, by the random id in the cookie."""

    def __init__(self, token: str | None) -> None:
        self.token = token or None
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    @property
    def read_only(self) -> bool:
        return self.token is None

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None."""
        if not session_id:
            return None
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or now - session.last_used > SESSION_LIFETIME:
                self._sessions.pop(session_id, None)
                return None
            session.last_used = now
            return session

    def create(self) -> Session:
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = sorted(self._sessions.values(), key=lambda s: s.last_used)[: MAX_SESSIONS // 10]
                for old in oldest:
                    del self._sessions[old.id]
            self._sessions[session.id] = session
        return session

    def renew(self, session: Session, *, authenticated: bool) -> Session:
        """Replace ``session`` with a fresh one (new id, new CSRF token) when its rights change, so
        an id planted before login is worth nothing after it."""
        with self._lock:
            self._sessions.pop(session.id, None)
        fresh = self.create()
        fresh.authenticated = authenticated
        return fresh

    def drop(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    def token_matches(self, given: str | None) -> bool:
        """Whether ``given`` is the configured token (compared in constant time)."""
        if self.token is None or not given:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def bearer_matches(self, authorization: str | None) -> bool:
        scheme, _, credentials = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(credentials.strip())


def csrf_matches(session: Session | None, given: str | None) -> bool:
    return session is not None and bool(given) and hmac.compare_digest(str(given).encode(), session.csrf.encode())
