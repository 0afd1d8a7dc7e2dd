"""The one rule for text people give about a person (roster cells, registration answers): one line of
printable text. Control characters (NUL, escape codes, line breaks, tabs) would break the CSV and
manifests built from it, spoof terminal output, or hide part of a name."""

import re

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
REFUSAL = "contains control characters (NUL, escape codes, line breaks)"


def has_control_characters(*values: str) -> bool:
    return any(CONTROL.search(value) for value in values)
