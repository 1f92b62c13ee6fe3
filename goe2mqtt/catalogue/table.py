"""The README's entity table, rendered from the catalogue (`goe2mqtt entities --markdown`).

Pure. A test compares the README with this output, so the table never drifts from
what the bridge publishes and accepts.
"""

from __future__ import annotations

import re

from goe2mqtt.catalogue import ENTITIES, SETTABLE, EntityDescription
from goe2mqtt.catalogue.writes import number_range

START = "<!-- entities:start (goe2mqtt entities --markdown) -->"
END = "<!-- entities:end -->"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _values(entity: EntityDescription) -> str:
    write = entity.write
    if entity.component in ("binary_sensor", "switch"):
        return "`true` / `false`"
    if entity.options:
        return ", ".join(f"`{option}`" for option in entity.options)
    if write is not None and write.kind == "select":
        return "`no_transaction`, `no_card`, each card's name (or `card_N`)"
    if write is not None and write.kind == "time":
        return "`HH:MM`"
    return ""


def _accepts(entity: EntityDescription) -> str:
    write = entity.write
    service = entity.command_service
    if service is None:
        return ""
    topic = f"`cmd/{service}`"
    if write is None or entity.command in ("wallbox_control",):
        return f"{topic} (see Commands)"
    if write.kind == "press":
        return f"{topic}: `PRESS`"
    if write.kind == "number":
        low, high, _ = number_range(write, {})
        shown = f"{_number(low)}..{_number(high)}"
        if write.bounds is not None:
            shown += ", capped by the charger's limits"
        null = f"; `null`: {write.null_means}" if write.null_means else ""
        return f"{topic}: {shown}{null}"
    if write.kind == "switch":
        if write.turn_on:
            return f"{topic}: `false` only ({write.turn_on})"
        return f"{topic}: `true` / `false`"
    if write.kind == "select":
        return f"{topic}: an option"
    if write.kind == "time":
        return f"{topic}: `HH:MM`"
    return f"{topic}: text"


def _component(entity: EntityDescription) -> str:
    details: list[str] = [entity.entity_category] if entity.entity_category else []
    if not entity.enabled_by_default:
        details.append("off by default")
    return entity.component + (f" ({', '.join(details)})" if details else "")


_CARD_KEY = re.compile(r"^(c\d[ne]|cards)$")


def _goe_keys(entity: EntityDescription) -> str:
    keys = [key for key in entity.reads if not key.startswith("@")]
    if sum(1 for key in keys if _CARD_KEY.match(key)) > 2:  # the transaction's card names
        keys = [key for key in keys if not _CARD_KEY.match(key)] + ["c0n..c9n"]
    if entity.write is not None and entity.write.key not in keys:
        keys.append(entity.write.key)
    if any(key.startswith("@") for key in entity.reads):
        keys.append("(bridge)")
    return ", ".join(f"`{key}`" if key != "(bridge)" else key for key in keys)


def entity_table() -> str:
    """Every entity: topic leaf, name, component, go-e keys, unit, values, command."""
    lines = [
        "| leaf | entity | HA component | go-e | unit | values | command: accepts | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for entity in ENTITIES:
        lines.append(
            f"| `{entity.key}` | {entity.name} | {_component(entity)} | {_goe_keys(entity)} "
            f"| {entity.unit or ''} | {_values(entity)} | {_accepts(entity)} | {entity.doc} |"
        )
    return "\n".join(lines) + "\n"


def settable_keys() -> str:
    """The go-e keys the generic set command takes, each with the entity that says how."""
    return ", ".join(f"`{key}` ({entity.key})" for key, entity in sorted(SETTABLE.items()))


def plain() -> str:
    """One line per entity for a terminal: leaf, component, go-e keys, command."""
    rows = [("leaf", "component", "go-e", "command")] + [
        (e.key, _component(e), _goe_keys(e).replace("`", ""), e.command_service or "")
        for e in ENTITIES
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return (
        "\n".join(
            f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip()
            for a, b, c, d in rows
        )
        + f"\n{len(ENTITIES)} entities; --markdown: the README's table with units and values\n"
    )


def markdown() -> str:
    """The block between the README's markers."""
    return (
        f"{START}\n{len(ENTITIES)} entities (the ones whose go-e keys a charger does not report"
        " are not announced for it).\n\n"
        f"{entity_table()}\n"
        f"`cmd/set` takes these go-e keys, in go-e's own units: {settable_keys()}.\n{END}"
    )
