"""``bench detect``: every figure present and sane on small sizes (no timing is asserted)."""

from __future__ import annotations

from typer.testing import CliRunner

from twin_stream.cli import app
from twin_stream.devtools.bench.detect import TARGETS, bench_detect, pump_readings


def test_pump_readings_are_pregenerated_in_time_order() -> None:
    readings = pump_readings(5)
    assert [seq for _, seq, _ in readings] == list(range(5))
    assert readings[0][0] < readings[-1][0]
    assert "motor_current" in readings[0][2]


def test_bench_detect_figures_on_small_sizes() -> None:
    fractions: list[float] = []
    figures = bench_detect(
        events=200,
        warmup=50,
        cold_starts=3,
        serialize_after=100,
        rss_devices=40,
        readings_per_device=20,
        progress=fractions.append,
    )
    for key in ("us_per_event", "cold_start_ms", "rss_mb_10k_devices"):
        assert isinstance(figures[key], float) and figures[key] > 0, key
    assert isinstance(figures["serialized_bytes_per_device"], int)
    assert figures["serialized_bytes_per_device"] > 0
    assert figures["targets"] == TARGETS
    assert set(figures["targets"]) == {
        "us_per_event",
        "cold_start_ms",
        "serialized_bytes_per_device",
        "rss_mb_10k_devices",
    }
    assert figures["rss_devices"] == 40
    assert {"cpu", "cores", "python"} <= set(figures["machine"])
    assert fractions and fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_bench_detect_is_a_command() -> None:
    result = CliRunner().invoke(app, ["bench", "detect", "--help"])
    assert result.exit_code == 0
    assert "--json" in result.output
