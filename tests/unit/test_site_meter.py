"""Grid meter payloads: the three forms, and every hostile value refused with a reason."""

from __future__ import annotations

import pytest

from goe2mqtt.site.meter import MeterInvalid, MeterReading, parse_meter


@pytest.mark.parametrize(
    ("payload", "reading"),
    [
        (b'{"l1": 10.5, "l2": 3, "l3": 0}', MeterReading(currents=(10.5, 3.0, 0.0))),
        (b'{"power": 4200}', MeterReading(power=4200.0)),
        (b"4200.5", MeterReading(power=4200.5)),
        (b'{"l1": 1, "l2": 2, "l3": 3, "power": 1380}',
         MeterReading(currents=(1.0, 2.0, 3.0), power=1380.0)),
    ],
)  # fmt: skip
def test_the_three_forms(payload: bytes, reading: MeterReading) -> None:
    assert parse_meter(payload, exports=False) == reading


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"l1": NaN, "l2": 1, "l3": 1}', "l1: nan is not a finite number"),
        (b"Infinity", "reading: inf is not a finite number"),
        (b"-Infinity", "reading: -inf is not a finite number"),
        (b"1e400", "reading: inf is not a finite number"),
        (b"1" + b"0" * 400, "reading: a number of about 401 digits is not a finite number"),
        (b'"4200"', "reading: '4200' is not a finite number"),
        (b'{"power": "4200"}', "power: '4200' is not a finite number"),
        (b'{"power": true}', "power: True is not a finite number"),
        (b'{"l1": 1001, "l2": 0, "l3": 0}', "l1: 1001 is beyond 1000"),
        (b'{"power": 2e6}', "power: 2000000.0 is beyond 1e+06"),
        (b'{"l1": 1, "l2": 2}', "l3 missing"),
        (b'{"volts": 230}', "neither l1, l2, l3 (A) nor power (W)"),
        (b'{"l1": -3, "l2": 1, "l3": 1}', "l1: -3 is negative, and this meter measures import"),
        (b"-500", "reading: -500 is negative"),
        (b"[1, 2, 3]", "reading: [1, 2, 3] is not a finite number"),
        (b"null", "reading: None is not a finite number"),
        (b"not json", "not JSON"),
        (b"[" * 100_000, "payload of 100000 bytes"),
        (b"[" * 1000, "not JSON"),  # deep nesting: refused, never a RecursionError
    ],
)
def test_hostile_values_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(MeterInvalid) as caught:
        parse_meter(payload, exports=False)
    assert reason in str(caught.value)


def test_a_meter_that_measures_both_ways_may_go_negative() -> None:
    reading = parse_meter(b'{"l1": -12.5, "l2": -3, "l3": 4}', exports=True)
    assert reading.currents == (-12.5, -3.0, 4.0)
    assert parse_meter(b"-5000", exports=True).power == -5000.0
    with pytest.raises(MeterInvalid, match="beyond"):
        parse_meter(b'{"l1": -1500, "l2": 0, "l3": 0}', exports=True)
