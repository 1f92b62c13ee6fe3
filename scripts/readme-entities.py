"""Rewrite the README's entity table from the catalogue: python scripts/readme-entities.py"""

from __future__ import annotations

from pathlib import Path

from goe2mqtt.catalogue.table import END, START, markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def main() -> None:
    text = README.read_text()
    start, end = text.index(START), text.index(END) + len(END)
    README.write_text(text[:start] + markdown() + text[end:])


if __name__ == "__main__":
    main()
