"""``eval rul --plot``: predicted (with its interval) against true remaining life per device,
a PNG through matplotlib when it is installed, otherwise a self-contained SVG (alone or in an
HTML page)."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from twin_stream.domain.detection.rul import RulEstimate
from twin_stream.errors import ConfigError

if TYPE_CHECKING:
    from twin_stream.devtools.evaluation.rul import Unit

__all__ = ["write_plot"]


def write_plot(
    path: Path,
    predictions: dict[str, RulEstimate | None],
    truth: dict[str, float] | None,
    cap: float,
    units: dict[str, Unit] | None = None,
) -> None:
    """Predicted (with its interval) against true RUL per device: a PNG through matplotlib
    when it is installed, otherwise (``.html`` or ``.svg``) a self-contained SVG."""
    names = list(predictions)
    if truth is not None:
        names.sort(key=lambda n: truth[n])
    suffix = path.suffix.lower()
    if suffix == ".png":
        _plot_png(path, names, predictions, truth, cap)
        return
    if suffix not in (".html", ".htm", ".svg"):
        raise ConfigError(f"--plot {path}: the file must end in .png, .html or .svg")
    svg = _svg(names, predictions, truth, cap)
    if suffix == ".svg":
        path.write_text(svg)
        return
    path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>RUL: predicted against true"
        "</title></head><body style='font-family:sans-serif'><h3>Remaining useful life at each "
        f"device's last row (hours{', capped at ' + format(cap, 'g') if cap > 0 else ''})</h3>"
        f"{svg}<p>dots: predicted (bar: interval); crosses: true. Devices in order of true RUL."
        "</p></body></html>\n"
    )


def _points(
    names: list[str],
    predictions: dict[str, RulEstimate | None],
    truth: dict[str, float] | None,
    cap: float,
) -> Iterator[tuple[int, str, RulEstimate | None, float | None]]:
    def c(x: float) -> float:
        return min(x, cap) if cap > 0 else x

    for k, name in enumerate(names):
        e = predictions[name]
        capped = None if e is None else RulEstimate(c(e.rul_h), c(e.low_h), c(e.high_h))
        yield k, name, capped, None if truth is None else c(truth[name])


def _svg(
    names: list[str],
    predictions: dict[str, RulEstimate | None],
    truth: dict[str, float] | None,
    cap: float,
) -> str:
    width, height, left, bottom, top = max(600, 12 * len(names) + 80), 420, 60, 60, 20
    points = list(_points(names, predictions, truth, cap))
    top_value = max(
        [1.0]
        + [e.high_h for _, _, e, _ in points if e is not None]
        + [t for _, _, _, t in points if t is not None]
    )
    plot_w, plot_h = width - left - 20, height - top - bottom

    def x(k: int) -> float:
        return left + (k + 0.5) * plot_w / max(len(names), 1)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}'>",
        f"<line x1='{left}' y1='{y(0):.1f}' x2='{width - 20}' y2='{y(0):.1f}' stroke='black'/>",
        f"<line x1='{left}' y1='{top}' x2='{left}' y2='{y(0):.1f}' stroke='black'/>",
    ]
    for tick in range(6):
        v = top_value * tick / 5
        parts.append(
            f"<text x='{left - 6}' y='{y(v) + 4:.1f}' font-size='11' text-anchor='end'>"
            f"{v:.0f}</text>"
        )
    for k, name, e, t in points:
        label = html.escape(name)
        if e is not None:
            parts.append(
                f"<line x1='{x(k):.1f}' y1='{y(e.low_h):.1f}' x2='{x(k):.1f}' "
                f"y2='{y(e.high_h):.1f}' stroke='#7aa6d6'/>"
                f"<circle cx='{x(k):.1f}' cy='{y(e.rul_h):.1f}' r='3' fill='#1f5fa8'>"
                f"<title>{label}: predicted {e.rul_h:.1f} h ({e.low_h:.1f}-{e.high_h:.1f})"
                "</title></circle>"
            )
        if t is not None:
            parts.append(
                f"<text x='{x(k):.1f}' y='{y(t) + 4:.1f}' font-size='11' fill='#c0392b' "
                f"text-anchor='middle'>×<title>{label}: true {t:.1f} h</title></text>"
            )
    parts.append(
        f"<text x='{left + plot_w / 2:.0f}' y='{height - 15}' font-size='12' "
        "text-anchor='middle'>devices (by true RUL)</text>"
        f"<text x='15' y='{top + plot_h / 2:.0f}' font-size='12' text-anchor='middle' "
        f"transform='rotate(-90 15 {top + plot_h / 2:.0f})'>RUL (h)</text></svg>"
    )
    return "".join(parts)


def _plot_png(
    path: Path,
    names: list[str],
    predictions: dict[str, RulEstimate | None],
    truth: dict[str, float] | None,
    cap: float,
) -> None:
    try:
        import matplotlib  # type: ignore[import-not-found]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            f"--plot {path}: a PNG needs matplotlib, which is not installed; "
            "write .html or .svg instead"
        ) from None
    points = list(_points(names, predictions, truth, cap))
    fig, ax = plt.subplots(figsize=(max(6.0, len(names) * 0.12), 4.0))
    ks = [k for k, _, e, _ in points if e is not None]
    est = [e for _, _, e, _ in points if e is not None]
    ax.errorbar(
        ks,
        [e.rul_h for e in est],
        yerr=[[e.rul_h - e.low_h for e in est], [e.high_h - e.rul_h for e in est]],
        fmt="o",
        ms=3,
        label="predicted",
    )
    if truth is not None:
        ax.plot([k for k, *_ in points], [t for *_, t in points], "rx", label="true")
    ax.set_xlabel("devices (by true RUL)")
    ax.set_ylabel("RUL (h)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
