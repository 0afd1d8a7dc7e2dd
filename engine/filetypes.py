"""What a file is, from its first bytes rather than its name: a photo format we keep, or a reason why not.

A cheap check made as a file is received, so a PDF renamed .JPG is refused at upload with the reason; the
scan still decodes every kept file and rejects the damaged ones.
"""

# Enough for every signature below (ISO base media keeps its brand at bytes 8-11).
HEAD_BYTES = 16

# (offset, signature) of the image formats the scan reads.
_IMAGES = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"II*\x00"),  # TIFF, little-endian (and the raw formats built on it)
    (0, b"MM\x00*"),  # TIFF, big-endian
)
# ISO base media brands of HEIF/HEIC stills and sequences (a phone's HEIC photo).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"}
# What people most often upload by mistake, named in the refusal.
_KNOWN_OTHERS = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive inside a photo's name"),
    (b"GIF8", "a GIF image"),
    (b"\x7fELF", "a program"),
    (b"<", "a text or web page"),
)


def refusal(head: bytes) -> str | None:
    """None if `head` (a file's first HEAD_BYTES bytes) starts an image we keep, else why it is refused."""
    if not head:
        return "empty file"
    if any(head.startswith(signature, offset) for offset, signature in _IMAGES):
        return None
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return None
    known = next((name for signature, name in _KNOWN_OTHERS if head.lstrip().startswith(signature)), None)
    return f"not an image: {known or 'not a JPEG, PNG, HEIC, TIFF or WebP file'}"
