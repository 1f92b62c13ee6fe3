"""goe2mqtt: a bridge between go-e EV chargers and MQTT / Home Assistant."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/goe2mqtt/goe2mqtt"
