"""Small helpers that know nothing of go-e, MQTT or Home Assistant: asyncio timing,
what counts as a number, JSON values, log set-up and redaction, interning."""
