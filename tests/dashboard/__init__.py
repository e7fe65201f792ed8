"""The web dashboard: HTTP behaviour, the command, and a real browser."""
