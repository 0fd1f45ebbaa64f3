"""The one table formatter (netslim._table): aligned text and Markdown from the same rows."""

from __future__ import annotations

from netslim._table import change_text, count_text, format_table


def test_text_table_aligns_columns_and_rules_the_header() -> None:
    text = format_table([["a", 1.23456, None], ["long name", "x", 12]], ["k", "v", "n"], align="lrr")
    assert text.splitlines() == [
        "k              v   n",
        "---------  -----  --",
        "a          1.235   -",
        "long name      x  12",
    ]


def test_text_table_title_indent_and_extra_rules() -> None:
    text = format_table([["a", "1"], ["b", "2"], ["total", "3"]], title="T", indent="  ", rules_before=(-1,))
    assert text.splitlines() == ["T", "  a      1", "  b      2", "  -----  -", "  total  3"]


def test_markdown_table_marks_alignment_and_escapes_pipes() -> None:
    text = format_table([["a|b", "1"]], ["metric", "value"], align="lr", markdown=True)
    assert text.splitlines() == ["| metric | value |", "| --- | ---: |", "| a\\|b | 1 |"]


def test_counts_and_changes_as_the_tables_print_them() -> None:
    assert [count_text(v) for v in (578810, 999, 1.5e9, None)] == ["578.81K", "999", "1.50G", "n/a"]
    assert change_text(100, 9) == "-91.0%" and change_text(0, 1) == "" and change_text(None, 1) == ""
