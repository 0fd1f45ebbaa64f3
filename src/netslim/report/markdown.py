"""The report as Markdown (``report.md``)."""

from __future__ import annotations

from typing import Any

from netslim._table import format_table


def render_markdown(data: dict[str, Any]) -> str:
    """The report as Markdown (figures referenced by their path relative to the run folder; collapsed
    sections as ``<details>``, which GitHub and most viewers fold)."""
    out = [f"# {data['title']}", ""]
    if data.get("subtitle"):
        out += [data["subtitle"], ""]
    for section in data["sections"]:
        body: list[str] = []
        for block in section["blocks"]:
            if block["type"] == "table":
                header = block["header"]
                body.append(
                    format_table(block["rows"], header, align="l" + "r" * (len(header) - 1), markdown=True)
                )
            elif block["type"] == "figure":
                body.append(f"![{block['figure']}]({block['file']})\n\n*{block['caption']}*")
            elif block["type"] == "text":
                body.append(block["text"])
            elif block["type"] == "list":
                body.append("\n".join(f"- {item}" for item in block["items"]))
        if section["collapsed"]:
            out += [f"<details><summary>{section['title']}</summary>", "", *_join(body), "</details>", ""]
        else:
            out += [f"## {section['title']}", "", *_join(body)]
    return "\n".join(out)


def _join(blocks: list[str]) -> list[str]:
    out: list[str] = []
    for b in blocks:
        out += [b, ""]
    return out
