"""The base of every config section, and the patterns the sections share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from goe2mqtt.config.environment import EnvText, typed

# Python's re (Section's regex_engine), where "$" would also match before a final
# newline: "\Z" is the end of the text, so "garage\n" is no name.
NAME_PATTERN = r"^[a-z0-9_-]+\Z"
SERIAL_PATTERN = r"^[0-9]{6}\Z"
# A host name or IPv4 address, or an IPv6 address in brackets; an optional port.
HOST_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?\Z"
# Topic levels we build from these must not contain MQTT wildcards or empty levels.
TOPIC_PATTERN = r"^[^#+/\x00]+(/[^#+/\x00]+)*\Z"
RESERVED_NAMES = frozenset({"bridge"})
DEFAULT_CLOUD_URL = "https://{serial}.api.v3.go-e.io"
MIN_SCAN_INTERVAL = 1.0  # the charger's values change at most once a second
EXAMPLE_TOKENS = frozenset({"replace-me"})  # config.example.yaml's placeholder


class Section(BaseModel):
    # strict: YAML already gives real types, so "1883" for a port is a mistake worth
    # reporting; text from the environment is converted by the key's type first.
    # python-re: the patterns are matched by the re module the process has loaded anyway;
    # pydantic-core's own regex engine compiled them into 0.5 MiB of the daemon's memory
    # (bench/idle_rss.py, issue 32).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, regex_engine="python-re")

    @model_validator(mode="before")
    @classmethod
    def _environment_text(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        fields = cls.model_fields
        return {
            key: typed(value, fields[key].annotation)
            if isinstance(value, EnvText) and key in fields
            else value
            for key, value in data.items()
        }
