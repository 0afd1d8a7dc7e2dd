"""Secrets in links and sessions: the database keeps only their SHA-256, so a copy of it opens nothing."""

import hashlib


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
