"""The base of every config section, and the patterns the sections share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from goe2mqtt.config.environment import EnvText, typed

NAME_PATTERN = r"^[a-z0-9_-]+$"
SERIAL_PATTERN = r"^[0-9]{6}$"
# A host name or IPv4 address, or an IPv6 address in brackets; an optional port.
HOST_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$"
# Topic levels we build from these must not contain MQTT wildcards or empty levels.
TOPIC_PATTERN = r"^[^#+/\x00]+(/[^#+/\x00]+)*$"
RESERVED_NAMES = frozenset({"bridge"})
DEFAULT_CLOUD_URL = "https://{serial}.api.v3.go-e.io"
MIN_SCAN_INTERVAL = 1.0  # the charger's values change at most once a second
EXAMPLE_TOKENS = frozenset({"replace-me"})  # config.example.yaml's placeholder


class Section(BaseModel):
    # strict: YAML already gives real types, so "1883" for a port is a mistake worth
    # reporting; text from the environment is converted by the key's type first.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

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
