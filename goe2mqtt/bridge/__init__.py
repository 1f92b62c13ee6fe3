"""The process: wiring and supervision (`process`), the command desk (`desk`), the
bridge's info and its own Home Assistant device (`info`, `ha_device`), memory upkeep,
loop watch, health file, start-up checks and what it remembers (`remembered`)."""
