"""QR cards: what a card encodes and how it is drawn (PNG and SVG, the name under the code)."""

import io
from xml.sax.saxutils import escape

import segno
from PIL import Image, ImageDraw, ImageFont

CARD_PREFIX = "INTAKE:"
PNG_SCALE = 10
PNG_BORDER = 4
# Names are in every script; Pillow's built-in font has ASCII only. scripts/bootstrap installs DejaVu.
UNICODE_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def card_text(code: str) -> str:
    """The text a card's QR carries; the card pattern accepts it, and bare codes too."""
    return f"{CARD_PREFIX}{code}"


def qr(code: str) -> segno.QRCode:
    return segno.make_qr(card_text(code), error="m")


def svg_of(symbol: segno.QRCode) -> str:
    """A QR alone, with a viewBox and no pixel size: the page's CSS sizes it (on screen, on a badge)."""
    out = io.BytesIO()
    symbol.save(out, kind="svg", border=2, xmldecl=False, omitsize=True)
    return out.getvalue().decode()


def card_svg(code: str) -> str:
    return svg_of(qr(code))


def link_svg(url: str) -> str:
    """A QR a phone's camera opens as a link (the sign-up poster)."""
    return svg_of(segno.make_qr(url, error="m"))


def card_svg_file(code: str, name: str) -> str:
    """A standalone card: the QR with the name and the code printed under it."""
    symbol = qr(code)
    size = symbol.symbol_size(scale=1, border=2)[0]
    out = io.BytesIO()
    symbol.save(out, kind="svg", border=2, xmldecl=False, svgns=True, omitsize=True)
    inner = out.getvalue().decode()
    height = size + 9
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {height}" '
        f'width="{size * 8}" height="{height * 8}">'
        f'<rect width="100%" height="100%" fill="#fff"/>{inner}'
        f'<text x="{size / 2}" y="{size + 3.5}" font-family="sans-serif" font-size="3.2" '
        f'text-anchor="middle">{escape(name)}</text>'
        f'<text x="{size / 2}" y="{size + 7.5}" font-family="monospace" font-size="2.6" '
        f'text-anchor="middle">{escape(code)}</text></svg>'
    )


def card_png(code: str, name: str) -> bytes:
    """The QR with the name and the code printed under it, for phones and printers."""
    out = io.BytesIO()
    qr(code).save(out, kind="png", scale=PNG_SCALE, border=PNG_BORDER)
    symbol = Image.open(io.BytesIO(out.getvalue())).convert("L")
    name_font = font(max(20, symbol.width // 14))
    while name_font.size > 10 and name_font.getlength(name) > symbol.width * 0.95:  # a long name fits the card
        name_font = font(name_font.size - 2)
    code_font = font(max(16, symbol.width // 18))
    card = Image.new("L", (symbol.width, symbol.height + 2 * name_font.size + code_font.size), 255)
    card.paste(symbol, (0, 0))
    draw = ImageDraw.Draw(card)
    middle = symbol.width // 2
    draw.text((middle, symbol.height), name, fill=0, font=name_font, anchor="mt")
    draw.text((middle, symbol.height + int(1.5 * name_font.size)), code, fill=0, font=code_font, anchor="mt")
    result = io.BytesIO()
    card.save(result, format="PNG", optimize=True)
    return result.getvalue()


def font(size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(UNICODE_FONT, size)
    except OSError:
        return ImageFont.load_default(size=size)
