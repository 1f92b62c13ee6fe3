"""The status page's filter and paging (web.cells.Selection) at fleet size, without a process."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from goe2mqtt.web.cells import Selection
from goe2mqtt.web.page import CONTENT_SECURITY_POLICY, SCRIPT, STYLE, _hash
from goe2mqtt.web.view import ChargerRow

FLEET = 10_000


def charger(i: int) -> ChargerRow:
    online = i % 10 != 0  # every tenth offline
    return ChargerRow(
        name=f"c{i:05d}", online=online, offline_reason="" if online else "timeout",
        connection="websocket (local)" if i % 4 == 0 else "polling",
        car_state=2 if i % 3 == 0 else 1,
    )  # fmt: skip


class CountingLook:
    """The names, kinds and rows of a fleet; counts the rows it made."""

    def __init__(self, rows: list[ChargerRow]) -> None:
        self._rows = {row.name: row for row in rows}
        self.rows_made = 0

    def names(self) -> Sequence[str]:
        return list(self._rows)

    def kinds(self) -> Iterable[tuple[str, str, str]]:
        return ((r.name, r.state, r.transport) for r in self._rows.values())

    def row(self, name: str) -> ChargerRow | None:
        self.rows_made += 1
        return self._rows.get(name)


def test_a_filter_by_state_or_transport_makes_only_the_rows_of_its_page() -> None:
    rows = [charger(i) for i in range(FLEET)]
    for query, fits in (
        ({"state": "charging"}, lambda r: r.online and r.car_state == 2),
        ({"state": "online"}, lambda r: r.online),
        ({"state": "offline"}, lambda r: not r.online),
        ({"transport": "websocket"}, lambda r: r.transport == "websocket"),
        ({"state": "idle", "transport": "polling", "page": "3", "q": "c0"},
         lambda r: r.state == "idle" and r.transport == "polling" and "c0" in r.name),
    ):  # fmt: skip
        look = CountingLook(rows)
        selection = Selection.of(query)
        shown, total = selection.pick(look)  # type: ignore[arg-type]
        matching = [r for r in rows if fits(r)]
        start = (selection.page - 1) * selection.size
        assert total == len(matching), query
        assert shown == matching[start : start + selection.size], query
        # The page's rows, not the fleet's (it made all 10 000 before).
        assert look.rows_made == selection.size, query


def test_the_pages_script_and_style_are_allowed_by_their_hash_and_nothing_else_inline() -> None:
    assert f"script-src {_hash(SCRIPT)};" in CONTENT_SECURITY_POLICY
    assert f"style-src {_hash(STYLE)};" in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
