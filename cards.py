"""QR cards: what a card encodes and how it is drawn."""
import io

import segno

CARD_PREFIX = "INTAKE:"


def card_text(code: str) -> str:
    """The text a card's QR carries; the card pattern accepts it, and bare codes too."""
    return f"{CARD_PREFIX}{code}"


def card_svg(code: str) -> str:
    """A viewBox and no pixel size: the page's CSS sizes it (on screen, or in millimetres on a badge)."""
    out = io.BytesIO()
    segno.make_qr(card_text(code), error="m").save(out, kind="svg", border=2, xmldecl=False, omitsize=True)
    return out.getvalue().decode()


def card_png(code: str, scale: int = 10) -> bytes:
    out = io.BytesIO()
    segno.make_qr(card_text(code), error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
