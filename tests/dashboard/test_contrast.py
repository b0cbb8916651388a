"""The dashboard's colour pairs keep WCAG's 4.5:1 contrast for normal text."""

from __future__ import annotations

import re

import pytest

from zenpro_local.dashboard import STATIC_DIR

# (text, background) pairs the style sheet uses, as custom property names.
PAIRS = [
    ("text", "bg"),
    ("muted", "bg"),
    ("muted", "panel"),
    ("accent", "panel"),
    ("accent", "bg"),
    ("accent-text", "accent"),
    ("danger", "panel"),
    ("ok", "panel"),
    ("warn", "panel"),
]
MINIMUM_RATIO = 4.5


def _colours() -> dict[str, str]:
    css = (STATIC_DIR / "app.css").read_text()
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", css))


def _luminance(colour: str) -> float:
    channels = [int(colour[index : index + 2], 16) / 255 for index in (1, 3, 5)]
    linear = [
        value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4
        for value in channels
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("text, background", PAIRS)
def test_colour_pair_contrast(text: str, background: str):
    colours = _colours()
    lighter, darker = sorted(
        (_luminance(colours[text]), _luminance(colours[background])), reverse=True
    )
    ratio = (lighter + 0.05) / (darker + 0.05)
    assert ratio >= MINIMUM_RATIO, f"--{text} on --{background}: {ratio:.2f}"
