"""Render the data of :func:`netslim.report.collect` as one self-contained HTML page.

Images are embedded as base64 ``data:`` URIs, so the file can be mailed or archived on its own. A small
inline script marks, once the page has loaded, every image that decoded (``naturalWidth > 0``) with
``data-loaded="1"`` and sets ``<body data-images-loaded="N">``; the tests read these from the DOM of a
headless browser.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from netslim.report import MAX_METRIC_ROWS, fmt, metric_columns

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto; max-width: 1100px;
       color: #1d2330; padding: 0 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #1f4e79; padding-bottom: .3rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; color: #1f4e79; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #d5dbe5; padding: .25rem .6rem; text-align: right; }
th { background: #eef2f8; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #f8fafc; }
figure { margin: 1rem 0; } img { max-width: 100%; border: 1px solid #e3e7ee; }
figcaption { font-size: .8rem; color: #5a6472; } .notes li { color: #8a4b00; }
"""

SCRIPT = """
window.addEventListener('load', function () {
  var n = 0;
  document.querySelectorAll('img').forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { img.setAttribute('data-loaded', '1'); n += 1; }
  });
  document.body.setAttribute('data-images-loaded', String(n));
});
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(run_dir: Path, name: str) -> str:
    data = base64.b64encode((run_dir / name).read_bytes()).decode("ascii")
    alt = html.escape(name)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'
    )


def render_html(data: dict[str, Any], run_dir: Path) -> str:
    """The report as a standalone HTML document (images from ``run_dir`` embedded)."""
    parts = [f"<h1>{html.escape(data['title'])}</h1>"]
    if data["config"]:
        parts += [
            "<h2>Configuration</h2>",
            _table(["key", "value"], [[k, fmt(v)] for k, v in data["config"].items()]),
        ]
    if data["comparison"]:
        rows = [[c["metric"], fmt(c["before"]), fmt(c["after"]), fmt(c["ratio"])] for c in data["comparison"]]
        parts += ["<h2>Before / after</h2>", _table(["metric", "before", "after", "after/before"], rows)]
    if data["results_extra"]:
        parts += [
            "<h2>Results</h2>",
            _table(["key", "value"], [[k, fmt(v)] for k, v in data["results_extra"].items()]),
        ]
    if data["layers"]:
        rows = [
            [r["layer"], str(r["before"]), str(r["after"]), f"{100 * r['kept']:.1f}%"] for r in data["layers"]
        ]
        parts += ["<h2>Channels per layer</h2>", _table(["layer", "before", "after", "kept"], rows)]
    if data["metrics"]:
        cols = metric_columns(data["metrics"])
        rows = [[fmt(r.get(c)) for c in cols] for r in data["metrics"][-MAX_METRIC_ROWS:]]
        parts += ["<h2>Training metrics</h2>", _table(cols, rows)]
    if data["images"]:
        parts += ["<h2>Figures</h2>"] + [_image(run_dir, name) for name in data["images"]]
    if data["problems"]:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in data["problems"])
        parts += ["<h2>Notes</h2>", f'<ul class="notes">{items}</ul>']
    if len(parts) == 1:
        parts.append(
            "<p>This run folder has no config.json, results.json, plan.json, metrics.jsonl "
            "or PNG files yet.</p>"
        )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(data['title'])}</title><style>{CSS}</style><script>{SCRIPT}</script></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
