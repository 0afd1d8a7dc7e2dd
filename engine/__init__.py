"""The engine: plain Python that knows photos, QR cards and Drive, and nothing of the app.

No Flask, no SQLAlchemy, no import from data, services or the web (import-linter fails the build on one).
grouping.py goes further and does no IO at all: ordered scan results in, people out.
"""
