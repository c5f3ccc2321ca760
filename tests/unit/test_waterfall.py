"""The waterfall's layout: every hop on one axis, in order, visible, and within the axis."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.test import SimpleTestCase

from relay_app.hops import Stage
from relay_app.waterfall import MIN_BAR_PERCENT, format_duration, tick_step, waterfall

T0 = datetime(2026, 11, 25, 17, 0, tzinfo=UTC)


def ms(value: float) -> datetime:
    return T0 + timedelta(milliseconds=value)


@dataclass(frozen=True)
class FakeHop:
    stage: int
    started_at: datetime
    finished_at: datetime


class WaterfallTests(SimpleTestCase):
    def test_bars_sit_at_their_start_and_span_their_duration_on_a_common_axis(self) -> None:
        hops = [FakeHop(1, ms(0), ms(10)), FakeHop(2, ms(20), ms(50))]
        chart = waterfall(started_at=T0, finished_at=ms(100), hops=hops)
        self.assertEqual(chart.total_ms, 100)
        first, second = chart.bars
        self.assertEqual((first.left, first.width), (0, 10))
        self.assertEqual((second.left, second.width), (20, 30))
        self.assertEqual((second.offset_ms, second.duration_ms), (20, 30))
        self.assertEqual(second.style, "left: 20.000%; width: 30.000%")

    def test_bars_come_in_stage_order_with_their_labels_and_kinds(self) -> None:
        hops = [FakeHop(s.value, ms(s.value), ms(s.value + 1)) for s in reversed(Stage)]
        chart = waterfall(started_at=T0, finished_at=ms(10), hops=hops)
        self.assertEqual([bar.stage for bar in chart.bars], list(Stage))
        self.assertEqual(chart.bars[1].label, "Kafka publish, request topic")
        self.assertEqual(
            [bar.kind for bar in chart.bars],
            ["rest", "kafka", "kafka", "grpc", "grpc", "kafka", "kafka", "rest"],
        )

    def test_a_very_short_hop_stays_visible_and_inside_the_axis(self) -> None:
        hops = [FakeHop(1, ms(0), ms(0.001)), FakeHop(8, ms(999.999), ms(1000))]
        chart = waterfall(started_at=T0, finished_at=ms(1000), hops=hops)
        for bar in chart.bars:
            self.assertEqual(bar.width, MIN_BAR_PERCENT)
            self.assertGreaterEqual(bar.left, 0)
            self.assertLessEqual(bar.left + bar.width, 100)
        self.assertEqual(chart.bars[1].left, 100 - MIN_BAR_PERCENT)

    def test_the_axis_covers_hops_outside_the_transaction_times(self) -> None:
        # Hop 1 starts just before the row is created; a pending transaction has no end.
        hops = [FakeHop(1, ms(-5), ms(0)), FakeHop(2, ms(0), ms(15))]
        chart = waterfall(started_at=T0, finished_at=None, hops=hops)
        self.assertEqual(chart.total_ms, 20)
        self.assertEqual(chart.bars[0].left, 0)
        self.assertEqual(chart.bars[1].left + chart.bars[1].width, 100)

    def test_no_hops_and_no_time_give_an_empty_chart_without_dividing_by_zero(self) -> None:
        chart = waterfall(started_at=T0, finished_at=T0, hops=[])
        self.assertEqual((chart.total_ms, chart.bars), (0, ()))
        self.assertEqual([tick.ms for tick in chart.ticks], [0])

    def test_ticks_fall_on_round_numbers_across_the_axis(self) -> None:
        chart = waterfall(started_at=T0, finished_at=ms(62), hops=[])
        self.assertEqual([tick.ms for tick in chart.ticks], [0, 20, 40, 60])
        self.assertEqual([tick.label for tick in chart.ticks], ["0 ms", "20 ms", "40 ms", "60 ms"])
        self.assertAlmostEqual(chart.ticks[-1].left, 60 / 62 * 100)
        for total, step in [(0.5, 0.1), (6, 1), (7, 2), (62, 20), (250, 50), (5000, 1000)]:
            with self.subTest(total=total):
                self.assertAlmostEqual(tick_step(total), step)
        self.assertEqual(
            waterfall(started_at=T0, finished_at=ms(5000), hops=[]).ticks[-1].label, "5 s"
        )

    def test_durations_read_well_at_every_scale(self) -> None:
        self.assertEqual(format_duration(None), "—")
        self.assertEqual(format_duration(timedelta(microseconds=420)), "0.42 ms")
        self.assertEqual(format_duration(timedelta(milliseconds=61.34)), "61.3 ms")
        self.assertEqual(format_duration(timedelta(seconds=1.25)), "1.25 s")
