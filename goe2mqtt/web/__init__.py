"""The operator's surface over HTTP: /metrics, /healthz, /readyz and the status page.

It reads the bridge through BridgeLook (web/view.py), a narrow read-only view the
bridge hands it: it imports nothing of the bridge, the chargers or MQTT. The server
(web/server.py: aiohttp's web, prometheus_client) is imported only when http.enabled.
"""


class HttpUnavailable(Exception):
    """The configured address cannot be listened on; the message names http.listen."""
