"""The base of every config section, and the patterns the sections share."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from goe2mqtt.config.environment import EnvText, typed
from goe2mqtt.config.schema import Schema, key_types

# Python's re, where "$" would also match before a final
# newline: "\Z" is the end of the text, so "garage\n" is no name.
NAME_PATTERN = r"^[a-z0-9_-]+\Z"
SERIAL_PATTERN = r"^[0-9]{6}\Z"
# A host name or IPv4 address, or an IPv6 address in brackets; an optional port.
HOST_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?\Z"
# Topic levels we build from these must not contain MQTT wildcards or empty levels.
TOPIC_PATTERN = r"^[^#+/\x00]+(/[^#+/\x00]+)*\Z"
# MQTT holds a topic of at most 65 535 bytes of UTF-8: a key the bridge builds topics
# of (discovery's: prefix, component, base topic, name, key) at up to 4 bytes a
# character, these fit. Longer, the bridge crashed at start-up (paho: Invalid
# subscription filter) where a config error names the key.
TOPIC_MAX_LENGTH = 4096
RESERVED_NAMES = frozenset({"bridge"})
DEFAULT_CLOUD_URL = "https://{serial}.api.v3.go-e.io"
MIN_SCAN_INTERVAL = 1.0  # the charger's values change at most once a second
EXAMPLE_TOKENS = frozenset({"replace-me"})  # config.example.yaml's placeholder


class Section(Schema):
    """Strict (config/schema): YAML already gives real types, so "1883" for a port is a
    mistake worth reporting; text from the environment is converted by the key's type
    first. Unknown keys are refused, and a validated section is frozen."""

    # The keys that name a file or directory: a leading ~ is the home, as in a shell
    # (state_dir: ~/goe2mqtt used as written made a directory named "~" wherever the
    # bridge started). Expanded before any check, so an error shows the path looked at.
    _paths: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        if any(isinstance(value, EnvText) for value in data.values()):
            types = key_types(cls)
            data = {
                key: typed(value, types[key])
                if isinstance(value, EnvText) and key in types
                else value
                for key, value in data.items()
            }
        for key in cls._paths & data.keys():
            if isinstance(data[key], str):
                data[key] = os.path.expanduser(data[key])
        return data
