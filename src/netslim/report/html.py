"""The report as one self-contained HTML page (``report.html``), from :func:`netslim.report.collect`.

Images are embedded as base64 ``data:`` URIs, so the file can be mailed or archived on its own. Collapsed
sections (per-layer and per-epoch tables, the configuration) are ``<details>`` elements. A small inline
script marks, once the page has loaded, every image that decoded with ``data-loaded="1"`` and its
``data-natural-width``, and sets ``<body data-images-loaded="N">``; the tests read these from the DOM of
a headless browser.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1d2330; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #1f4e79; padding-bottom: .3rem; margin-bottom: .2rem; }
.subtitle { color: #5a6472; margin-top: 0; }
h2 { font-size: 1.2rem; margin-top: 2rem; color: #1f4e79; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #d5dbe5; padding: .25rem .6rem; text-align: right; }
th { background: #eef2f8; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #f8fafc; }
#before-after table { font-size: 1rem; }
figure { margin: 1rem 0; } img { max-width: 100%; border: 1px solid #e3e7ee; }
figcaption { font-size: .85rem; color: #5a6472; max-width: 60rem; }
details { margin: .6rem 0; } summary { cursor: pointer; color: #1f4e79; font-weight: 600; }
.notes li { color: #8a4b00; } .text { color: #5a6472; font-size: .9rem; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var n = 0;
  document.querySelectorAll('img').forEach(function (img) {
    img.setAttribute('data-natural-width', String(img.naturalWidth));
    if (img.complete && img.naturalWidth > 0) { img.setAttribute('data-loaded', '1'); n += 1; }
  });
  document.body.setAttribute('data-images-loaded', String(n));
});
"""


def _table(block: dict[str, Any]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in block["header"])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block["rows"]
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(run_dir: Path, block: dict[str, Any]) -> str:
    path = run_dir / block["file"]
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = html.escape(block["caption"])
    kind = html.escape(block.get("figure", "other"))
    extra = ""
    if block.get("threshold") is not None:
        extra = f' data-threshold="{block["threshold"]:.6g}"'
    return (
        f'<figure data-figure="{kind}"{extra}><img data-figure="{kind}" alt="{html.escape(block["file"])}" '
        f'src="data:image/png;base64,{data}"><figcaption>{caption}</figcaption></figure>'
    )


def _block(run_dir: Path, block: dict[str, Any]) -> str:
    if block["type"] == "table":
        return _table(block)
    if block["type"] == "figure":
        return _figure(run_dir, block)
    if block["type"] == "list":
        items = "".join(f"<li>{html.escape(item)}</li>" for item in block["items"])
        return f'<ul class="notes">{items}</ul>'
    return f'<p class="text">{html.escape(block["text"])}</p>'


def render_html(data: dict[str, Any], run_dir: Path) -> str:
    """The report as a standalone HTML document (figures from ``run_dir`` embedded)."""
    parts = [f"<h1>{html.escape(data['title'])}</h1>"]
    if data.get("subtitle"):
        parts.append(f'<p class="subtitle">{html.escape(data["subtitle"])}</p>')
    for section in data["sections"]:
        sid = html.escape(section["id"])
        title = html.escape(section["title"])
        body = "\n".join(_block(run_dir, b) for b in section["blocks"])
        if section["collapsed"]:
            parts.append(f'<details id="{sid}"><summary>{title}</summary>\n{body}\n</details>')
        else:
            parts.append(f'<section id="{sid}"><h2>{title}</h2>\n{body}\n</section>')
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(data['title'])}</title><style>{CSS}</style><script>{SCRIPT}</script></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
