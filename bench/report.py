"""The benchmark report: a printed table, `bench.json` and `bench.png`.

The plot has four panels against concurrency (requests/s, generated tokens/s,
TTFT p50/p95, end-to-end p50/p95), service and reference on each, with the
service/reference ratio of every figure in the table and the JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.load import LevelResult

# (field, label, higher is better)
FIGURES = [
    ("requests_per_s", "requests/s", True),
    ("tokens_per_s", "tokens/s", True),
    ("ttft_p50_s", "TTFT p50 s", False),
    ("ttft_p95_s", "TTFT p95 s", False),
    ("e2e_p50_s", "e2e p50 s", False),
    ("e2e_p95_s", "e2e p95 s", False),
]


def ratios(service: LevelResult, reference: LevelResult) -> dict[str, float]:
    """service / reference for each figure (throughput: > 1 is better; latency: < 1)."""
    return {name: getattr(service, name) / getattr(reference, name) for name, _, _ in FIGURES}


def load_table(service: Sequence[LevelResult], reference: Sequence[LevelResult]) -> str:
    """Markdown: one row per (concurrency, path), then the ratio row."""
    head = "| concurrency | path | " + " | ".join(label for _, label, _ in FIGURES) + " |"
    rows = [head, "|" + "---|" * (len(FIGURES) + 2)]
    by_c = {r.concurrency: r for r in reference}
    for s in service:
        ref = by_c.get(s.concurrency)
        rows.append(_row(s.concurrency, "service", s))
        if ref is None:
            continue
        rows.append(_row(s.concurrency, "reference", ref))
        cells = [f"**{v:.2f}×**" for v in ratios(s, ref).values()]
        rows.append(f"| {s.concurrency} | service/reference | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _row(concurrency: int, path: str, r: LevelResult) -> str:
    cells = []
    for name, _, _ in FIGURES:
        value = getattr(r, name)
        cells.append(f"{value:.1f}" if name == "tokens_per_s" else f"{value:.3g}")
    return f"| {concurrency} | {path} | " + " | ".join(cells) + " |"


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")


def plot(path: Path, service: Sequence[LevelResult], reference: Sequence[LevelResult]) -> None:
    """Four panels against concurrency; log y so both paths stay readable."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), dpi=80)
    ttft = [("ttft_p50_s", "-"), ("ttft_p95_s", "--")]
    e2e = [("e2e_p50_s", "-"), ("e2e_p95_s", "--")]
    panels = [
        (axes[0, 0], "requests/s", [("requests_per_s", "-")]),
        (axes[0, 1], "generated tokens/s", [("tokens_per_s", "-")]),
        (axes[1, 0], "TTFT s (p50 solid, p95 dashed)", ttft),
        (axes[1, 1], "end-to-end s (p50 solid, p95 dashed)", e2e),
    ]
    for ax, title, series in panels:
        for results, label, colour in ((service, "service", "C0"), (reference, "reference", "C3")):
            xs = [r.concurrency for r in results]
            for name, style in series:
                ax.plot(
                    xs,
                    [getattr(r, name) for r in results],
                    style,
                    marker="o",
                    color=colour,
                    label=label if style == "-" else None,
                )
        ax.set_title(title, fontsize=10)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks([r.concurrency for r in service], [str(r.concurrency) for r in service])
        ax.set_xlabel("concurrent requests")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("pandagpt serve vs reference PandaGPT (transformers + peft, one at a time)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
