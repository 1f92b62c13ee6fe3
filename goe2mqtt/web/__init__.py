"""The operator's surface over HTTP: /metrics, /healthz, /readyz and the status page.

It reads the bridge through BridgeLook (web/view.py), a narrow read-only view the
bridge hands it: it imports nothing of the bridge, the chargers or MQTT.
"""
