"""The HTML frame of the management plane's few browser pages."""

from __future__ import annotations

import html


def html_page(title: str, body: str) -> str:
    """Return a small standalone HTML page; ``body`` must be escaped already."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto}}
label{{display:block;margin:.5em 0}}.error{{color:#b00}}</style></head>
<body><h1>{html.escape(title)}</h1>{body}</body></html>"""
