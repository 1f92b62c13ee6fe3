"""Home Assistant's view: MQTT discovery for every charger's entities and for the bridge itself.

The rules it follows are in ../shared/ha-discovery.md; what it announces comes from the
catalogue, where it announces it from mqtt/topics.
"""
