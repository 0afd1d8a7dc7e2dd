"""The background processor (filled in by the processor work)."""


def start_in_background(app):
    return None


def stop_background():
    return None
