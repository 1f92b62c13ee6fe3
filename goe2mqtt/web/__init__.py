"""The operator's surface over HTTP: /metrics, /healthz, /readyz and the status page.

It reads the bridge through BridgeLook (web/view.py), a narrow read-only view the
bridge hands it: it imports nothing of the bridge, the chargers or MQTT. The server
(web/server.py: aiohttp's web, prometheus_client) is imported only when http.enabled.
"""

import mimetypes

# aiohttp's web makes a MimeTypes() for its file responses (which this server does not
# send), and a first MimeTypes() reads the system's table (/etc/mime.types) into
# mimetypes' module state: 0.36 MiB of the daemon's memory, read by nothing here. Marked
# read, the module still reads it at its first guess_type() (that looks at its table,
# not at this flag), and aiohttp's MimeTypes() is the same without it (built-in types).
# Here, before any module of this package imports aiohttp's web.
mimetypes.inited = True


class HttpUnavailable(Exception):
    """The configured address cannot be listened on; the message names http.listen."""
