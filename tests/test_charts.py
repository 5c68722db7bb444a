"""The inline SVG charts: where points land, what an empty chart says, and that text is escaped."""

from __future__ import annotations

import datetime as dt
import re

from truepipe.web import charts

MON = dt.date(2025, 3, 3)
FRI = dt.date(2025, 3, 7)


def days(*offsets: int) -> list[dt.date]:
    return [MON + dt.timedelta(days=n) for n in offsets]


def polyline_points(svg: str) -> list[tuple[float, float]]:
    [points] = re.findall(r'<polyline points="([^"]+)"', svg)
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in points.split())]


def wide(svg: str) -> str:
    """The wide drawing of a line chart (it also holds a narrow one for phones)."""
    return svg[svg.index('<svg class="line-chart wide"') : svg.index("</svg>") + len("</svg>")]


def test_the_first_day_sits_on_the_left_edge_and_the_last_on_the_right():
    assert charts.x_for(MON, MON, FRI, left=10, width=80) == 10
    assert charts.x_for(FRI, MON, FRI, left=10, width=80) == 90
    assert charts.x_for(MON + dt.timedelta(days=2), MON, FRI, left=10, width=80) == 50


def test_a_one_day_period_puts_its_day_in_the_middle():
    assert charts.x_for(MON, MON, MON, left=0, width=100) == 50


def test_a_hundred_is_at_the_top_zero_at_the_bottom_and_the_rest_in_proportion():
    assert charts.y_for(100, lo=0, hi=100, top=5, height=50) == 5
    assert charts.y_for(0, lo=0, hi=100, top=5, height=50) == 55
    assert charts.y_for(25, lo=0, hi=100, top=5, height=50) == 42.5


def test_values_outside_the_scale_are_clamped_to_its_edges():
    assert charts.y_for(130, lo=0, hi=100, top=0, height=50) == 0
    assert charts.y_for(-20, lo=0, hi=100, top=0, height=50) == 50


def test_a_sparkline_scales_its_points_into_the_box():
    svg = charts.sparkline([(MON, 100), (FRI, 0)], MON, FRI, width=106, height=26, label="Ravi")
    # 3px of padding on every side: x from 3 to 103, y from 3 (100) to 23 (0).
    assert polyline_points(svg) == [(3.0, 3.0), (103.0, 23.0)]
    assert '<circle cx="103.0" cy="23.0"' in svg  # the last value is marked


def test_sparklines_of_different_people_share_the_calendar():
    early = charts.sparkline([(MON, 50), (MON + dt.timedelta(days=1), 50)], MON, FRI, width=106)
    assert [x for x, _ in polyline_points(early)] == [3.0, 28.0]


def test_points_outside_the_period_are_left_out_and_points_are_put_in_day_order():
    svg = charts.sparkline(
        [(FRI, 80), (MON - dt.timedelta(days=1), 10), (MON, 60)], MON, FRI, width=106, height=26
    )
    assert polyline_points(svg) == [(3.0, 11.0), (103.0, 7.0)]


def test_a_sparkline_takes_the_tone_of_its_last_score():
    assert "spark-good" in charts.sparkline([(MON, 40), (FRI, 95)], MON, FRI)
    assert "spark-fair" in charts.sparkline([(MON, 95), (FRI, 75)], MON, FRI)
    assert "spark-poor" in charts.sparkline([(MON, 95), (FRI, 20)], MON, FRI)


def test_an_empty_sparkline_says_there_are_no_scores():
    svg = charts.sparkline([], MON, FRI, label="Owen")
    assert "<polyline" not in svg and "<circle" not in svg
    assert 'aria-label="Owen: no scores"' in svg
    assert "spark-empty" in svg


def test_a_single_score_is_a_dot_without_a_line():
    svg = charts.sparkline([(MON, 70)], MON, FRI)
    assert "<polyline" not in svg and svg.count("<circle") == 1


def test_a_sparkline_describes_itself_for_screen_readers():
    svg = charts.sparkline([(MON, 40), (FRI, 95.5)], MON, FRI, label="Rita Reyes")
    assert "Rita Reyes: 40 on Mar 03 to 95.5 on Mar 07" in svg


def test_a_line_chart_draws_each_series_with_its_own_colour_and_a_legend():
    svg = charts.line_chart(
        [charts.Series("Ravi", [(MON, 50), (FRI, 100)]), charts.Series("Team", [(MON, 75)], dashed=True)],
        MON,
        FRI,
        width=246,
        height=134,
    )
    drawing = wide(svg)
    # Plot area: x from 34 to 234 (12px right margin), y from 10 (100) to 110 (0).
    assert polyline_points(drawing) == [(34.0, 60.0), (234.0, 10.0)]
    assert f'stroke="{charts.PALETTE[0]}"' in drawing and f'stroke="{charts.PALETTE[1]}"' in drawing
    assert '<circle cx="34.0" cy="35.0"' in drawing  # the team's single point
    assert drawing.count("<circle") == 3
    legend = svg[svg.index("<figcaption>") :]
    assert "Ravi" in legend and "Team" in legend and 'class="swatch dashed"' in legend
    assert "Ravi, Fri Mar 07: 100" in drawing  # each point's tooltip


def test_a_line_chart_is_drawn_for_wide_screens_and_for_phones():
    svg = charts.line_chart([charts.Series("Ravi", [(MON, 50), (FRI, 100)])], MON, FRI)
    assert svg.count("<svg") == 2
    assert 'class="line-chart wide" viewBox="0 0 720 240"' in svg
    assert 'class="line-chart narrow" viewBox="0 0 360 220"' in svg


def test_a_line_chart_labels_the_days_and_the_scale():
    svg = wide(charts.line_chart([], MON, FRI))
    for label in ("Mar 03", "Mar 07", ">0<", ">50<", ">100<"):
        assert label in svg


def test_a_ninety_day_chart_keeps_its_day_labels_few():
    svg = wide(charts.line_chart([], MON, MON + dt.timedelta(days=89)))
    assert len(re.findall(r">[A-Z][a-z]{2} \d\d<", svg)) <= 7


def test_an_empty_line_chart_says_so():
    svg = charts.line_chart([charts.Series("Owen", [])], MON, FRI)
    assert "No scores in this period" in svg
    assert "<polyline" not in svg
    assert "Owen" in svg and "(no scores)" in svg


def test_names_and_titles_are_escaped():
    evil = '<script>alert("x")</script>'
    spark = charts.sparkline([(MON, 10), (FRI, 20)], MON, FRI, label=evil)
    chart = charts.line_chart([charts.Series(evil, [(MON, 10)])], MON, FRI, title=evil)
    for svg in (spark, chart):
        assert "<script>" not in svg
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in svg


def test_tone_names_the_band_a_score_falls_in():
    assert [charts.tone(v) for v in (100, 90, 89.9, 70, 69.9, 0, None)] == [
        "good",
        "good",
        "fair",
        "fair",
        "poor",
        "poor",
        "none",
    ]
