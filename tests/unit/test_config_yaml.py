"""The config file is parsed once, by libyaml's parser when PyYAML has it, and still
names a key given twice (with both lines) and the line of a syntax error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
import yaml.composer

from goe2mqtt.config.loading import load_settings
from goe2mqtt.config.problems import ConfigError

CONFIG = (
    "mqtt:\n  host: 127.0.0.1\nchargers:\n"
    "  - name: garage\n    serial: '012345'\n    token: a1b2c3d4e5\n"
    "  - name: carport\n    serial: '067890'\n    token: a1b2c3d4e5\n"
)


@pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")
def test_a_config_is_parsed_by_libyaml_once_not_by_the_pure_python_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 10 000-charger config took ~9.5 s of CPU in the pure-Python parser, twice over
    (once for the duplicate check, once for the values): ~1.4 s now, with the settings."""
    parsed = []
    c_parse = yaml.CSafeLoader.get_single_node  # libyaml's parser: the document's nodes

    def pure(*_: Any) -> Any:
        raise AssertionError("the pure-Python parser ran")

    def count(self: Any) -> Any:
        parsed.append(1)
        return c_parse(self)

    monkeypatch.setattr(yaml.composer.Composer, "compose_document", pure)
    monkeypatch.setattr(yaml.CSafeLoader, "get_single_node", count)
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    settings = load_settings(path, environ={})
    assert [c.name for c in settings.chargers] == ["garage", "carport"]
    assert len(parsed) == 1


def test_a_key_given_twice_is_named_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + "    serial: '067891'\n")
    with pytest.raises(ConfigError, match=r"chargers\[1\]\.serial: given twice \(lines 8 and 10\)"):
        load_settings(path, environ={})


def test_a_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG + "  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line 1[01]"):
        load_settings(path, environ={})


def test_an_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="mqtt"):
        load_settings(path, environ={})


def test_a_number_where_text_belongs_says_to_quote_it(tmp_path: Path) -> None:
    """YAML reads `password: 987654321` as a number: 'Input should be a valid string'
    left the user to guess why their password was not one. The value is never echoed."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "mqtt: {host: 127.0.0.1, password: 987654321}\n"
        "chargers: [{name: garage, serial: '012345', token: 4711081500}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    assert caught.value.problems == (
        'mqtt.password: must be text: quote it in YAML ("...")',
        'chargers[0].token: must be text: quote it in YAML ("...")',
    )
    assert "987654321" not in str(caught.value)
    assert "4711081500" not in str(caught.value)


@pytest.mark.parametrize("name", ["on", "no", "123", "2026-06-01"])
def test_a_name_yaml_reads_as_no_text_says_to_quote_it(tmp_path: Path, name: str) -> None:
    """A charger named on (or no, 123, a date) is what the pattern allows; YAML 1.1 reads
    it as true (false, a number, a date), and the problem said "use only a-z, 0-9, _ and
    -": the name the user wrote is just that. The problem says to quote it."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "mqtt: {host: 127.0.0.1}\n"
        f"chargers: [{{name: {name}, serial: '012345', token: abcdefghijklmnop}}]\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    assert caught.value.problems == (
        'chargers[0].name: must be text: quote it in YAML ("..."); use only a-z, 0-9, _ and'
        " - (it becomes an MQTT topic level)",
    )
    # Quoted, it is the name.
    config.write_text(config.read_text().replace(f"name: {name}", f'name: "{name}"'))
    assert load_settings(config, {}).chargers[0].name == name


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("tariff: {price_per_kwh: 0.3, currency: euro}",
         "tariff.currency: must be a 3-letter ISO 4217 code in capitals, e.g. EUR"),
        ("tariff: {price_topic: 'prices/#'}",
         "tariff.price_topic: must be an MQTT topic without wildcards (+, #) or empty levels"),
    ],
)  # fmt: skip
def test_a_pattern_is_said_in_words_not_as_a_regular_expression(
    tmp_path: Path, section: str, problem: str
) -> None:
    """'String should match pattern ^[A-Z]{3}$' is pydantic's, not the user's, language."""
    config = tmp_path / "config.yaml"
    config.write_text(f"{CONFIG}{section}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    assert caught.value.problems == (problem,)


def test_a_syntax_error_says_what_yaml_found_and_names_a_tab(tmp_path: Path) -> None:
    """`invalid YAML at line 2` alone left a newcomer to guess; a tab, the usual culprit
    of a hand-edited config, looks like spaces in an editor."""
    path = tmp_path / "config.yaml"
    path.write_text("mqtt:\n\thost: 127.0.0.1\nchargers: []\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}: invalid YAML at line 2, column 1: ")
    assert "cannot start any token" in problem
    assert problem.endswith("(a tab: YAML indents with spaces)")


@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"])
def test_a_syntax_error_never_quotes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader: str
) -> None:
    """A token written unquoted as `!...!` is a YAML tag: the pure-Python parser's
    words for it quote the token's start. The error says what broke, not the value."""
    if not hasattr(yaml, loader):
        pytest.skip(f"PyYAML without {loader}")
    monkeypatch.setattr("goe2mqtt.config.loading._Loader", getattr(yaml, loader))
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("token: a1b2c3d4e5", "token: !s3cr3tt0k3n!x", 1))
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    (problem,) = caught.value.problems
    assert "invalid YAML at line 6, column 12: found undefined tag handle" in problem
    assert "s3cr3t" not in problem


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("tariff: {price_per_kwh: 030}",
         "tariff.price_per_kwh: 030 has a leading zero, which YAML reads as the octal number"
         ' 24: write 30, or 24 if octal was meant (or "030" in quotes if it is text, such as'
         " a serial)"),
        ("tariff: {price_per_kwh: -0_30}",
         "tariff.price_per_kwh: -0_30 has a leading zero, which YAML reads as the octal"
         ' number -24: write -30, or -24 if octal was meant (or "-0_30" in quotes if it is'
         " text, such as a serial)"),
        ("tariff: {price_per_kwh: 00.3}",
         "tariff.price_per_kwh: 00.3 has a leading zero (YAML reads such a number without a"
         " dot as octal): write 0.3"),
        ("tariff: {pv_price_per_kwh: 07}",
         "tariff.pv_price_per_kwh: 07 has a leading zero, which YAML reads as the octal"
         ' number 7: write 7 (or "07" in quotes if it is text, such as a serial)'),
    ],
)  # fmt: skip
def test_a_number_with_a_leading_zero_is_refused_naming_its_key(
    tmp_path: Path, line: str, problem: str
) -> None:
    """YAML 1.1 reads 030 as octal 24: a price of 24 where 30 was meant, silently."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG + line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert caught.value.problems == (f"{config}: {problem}",)


def test_a_serial_with_a_leading_zero_is_told_to_be_quoted(tmp_path: Path) -> None:
    """serial: 012345 unquoted is octal 5349 to YAML: the number's advice ("write 12345")
    would lead a newcomer astray, a serial is text of six digits."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace("serial: '012345'", "serial: 012345"))
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert caught.value.problems == (
        f"{config}: chargers[0].serial: 012345 unquoted is a number to YAML (octal 5349):"
        ' quote the serial, serial: "012345"',
    )


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ("  port: 01883\n",
         "mqtt.port: 01883 has a leading zero, which YAML reads as text here (8 and 9 are no"
         " octal digits): write 1883"),
        ("  keepalive: -0_90\n",
         "mqtt.keepalive: -0_90 has a leading zero, which YAML reads as text here (8 and 9"
         " are no octal digits): write -90"),
        ('  port: "01883"\n',
         "mqtt.port: 01883 has a leading zero, which YAML reads as text here (8 and 9 are no"
         " octal digits): write 1883"),
        ('  port: "017"\n',
         "mqtt.port: 017 is quoted text with a leading zero: write 17, no quotes"),
        ("  bulk_rate: '09.5'\n",
         "mqtt.bulk_rate: 09.5 is quoted text with a leading zero: write 9.5, no quotes"),
    ],
)  # fmt: skip
def test_digits_with_a_leading_zero_that_yaml_left_text_name_the_key_and_the_number(
    tmp_path: Path, lines: str, problem: str
) -> None:
    """YAML 1.1 reads port: 01883 as text (neither octal nor decimal); the generic "must
    be a whole number, not text" did not say why."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace("  host: 127.0.0.1\n", "  host: 127.0.0.1\n" + lines))
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert caught.value.problems == (problem,)


def test_a_serial_with_an_8_or_9_unquoted_stays_text_and_a_quoted_port_is_still_text(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace("'067890'", "067890").replace(
        "  host: 127.0.0.1\n", '  host: 127.0.0.1\n  port: "1883"\n'))  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert caught.value.problems == (
        "mqtt.port: must be a whole number, not text (no quotes, units or commas: 2000)",
    )
    config.write_text(CONFIG.replace("'067890'", "067890"))
    assert load_settings(config, environ={}).chargers[1].serial == "067890"


def test_zero_and_numbers_below_one_and_quoted_text_are_not_leading_zeros(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        CONFIG.replace("'012345'", '"012345"')
        + "tariff: {price_per_kwh: 0.30, pv_price_per_kwh: 0}\n"
    )
    settings = load_settings(config, environ={})
    assert settings.tariff.price_per_kwh == 0.3
    assert settings.chargers[0].serial == "012345"


def test_a_secret_with_a_leading_zero_is_refused_without_its_value(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.replace("token: a1b2c3d4e5", "token: 0123", 1))
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert caught.value.problems == (
        f'{config}: chargers[0].token: must be text: quote it in YAML ("...")',
    )
    assert "0123" not in str(caught.value)
    assert "83" not in str(caught.value)  # its octal value
