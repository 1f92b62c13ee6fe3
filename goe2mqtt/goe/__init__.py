"""Talking to chargers: the go-e API v2 over HTTP (`client`, cloud and local), one
connection pool for a fleet (`pool`), and the seam every way of reaching a charger
plugs into (`transport`). Knows HTTP and go-e's answers, nothing of MQTT."""
