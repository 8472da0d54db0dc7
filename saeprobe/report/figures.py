"""Vega-Lite specifications of the report's figures: lines for curves, bars for
comparisons; every axis titled, every series in a legend."""

from __future__ import annotations

import math

import polars as pl

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
WIDTH, HEIGHT = 520, 280


def _records(table: pl.DataFrame) -> list[dict]:
    """Rows as JSON-ready records, non-finite numbers dropped (Vega cannot draw them)."""
    rows = []
    for row in table.iter_rows(named=True):
        if any(isinstance(v, float) and not math.isfinite(v) for v in row.values()):
            continue
        rows.append(row)
    return rows


def line_chart(
    table: pl.DataFrame,
    *,
    x: str,
    y: str,
    series: str,
    title: str,
    x_title: str,
    y_title: str,
    log_x: bool = False,
) -> dict:
    """One line per `series`, points marked, hover for the values."""
    x_scale = {"type": "log", "base": 2} if log_x else {"zero": False}
    return {
        "$schema": SCHEMA,
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "data": {"values": _records(table.select(x, y, series))},
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": x, "type": "quantitative", "title": x_title, "scale": x_scale},
            "y": {"field": y, "type": "quantitative", "title": y_title, "scale": {"zero": False}},
            "color": {"field": series, "type": "nominal", "title": series},
            "tooltip": [
                {"field": series, "type": "nominal"},
                {"field": x, "type": "quantitative"},
                {"field": y, "type": "quantitative", "format": ".3f"},
            ],
        },
    }


def bar_chart(
    table: pl.DataFrame,
    *,
    category: str,
    value: str,
    title: str,
    value_title: str,
    color: str | None = None,
) -> dict:
    """Horizontal bars, one per `category` (grouped by `color` when given)."""
    encoding = {
        "y": {"field": category, "type": "nominal", "title": None, "sort": None},
        "x": {"field": value, "type": "quantitative", "title": value_title},
        "tooltip": [
            {"field": category, "type": "nominal"},
            {"field": value, "type": "quantitative", "format": ".3f"},
        ],
    }
    columns = [category, value]
    if color:
        encoding["color"] = {"field": color, "type": "nominal", "title": color}
        encoding["yOffset"] = {"field": color}
        columns.append(color)
    return {
        "$schema": SCHEMA,
        "title": title,
        "width": WIDTH,
        "data": {"values": _records(table.select(columns))},
        "mark": "bar",
        "encoding": encoding,
    }


def has_data(spec: dict) -> bool:
    return bool(spec["data"]["values"])


def heatmap(
    table: pl.DataFrame,
    *,
    row: str,
    column: str,
    value: str,
    title: str,
    column_title: str,
    value_title: str,
) -> dict:
    """A grid of `value` by `row` and `column`, each cell coloured and labelled: many probes
    at a few settings (layers, poolings) stay readable where lines would tangle."""
    cell = {
        "y": {"field": row, "type": "nominal", "title": None},
        "x": {"field": column, "type": "ordinal", "title": column_title},
    }
    records = _records(table.select(row, column, value))
    values = [r[value] for r in records]
    middle = (min(values) + max(values)) / 2 if values else 0.0  # dark cells get white text
    return {
        "$schema": SCHEMA,
        "title": title,
        "width": {"step": 48},
        "data": {"values": records},
        "encoding": cell,
        "layer": [
            {
                "mark": "rect",
                "encoding": {
                    "color": {
                        "field": value,
                        "type": "quantitative",
                        "title": value_title,
                        "scale": {"scheme": "viridis"},
                    },
                    "tooltip": [
                        {"field": row, "type": "nominal"},
                        {"field": column, "type": "ordinal"},
                        {"field": value, "type": "quantitative", "format": ".3f"},
                    ],
                },
            },
            {
                "mark": {"type": "text", "fontSize": 10},
                "encoding": {
                    "text": {"field": value, "type": "quantitative", "format": ".2f"},
                    "color": {
                        "condition": {"test": f"datum['{value}'] < {middle}", "value": "white"},
                        "value": "black",
                    },
                },
            },
        ],
    }
