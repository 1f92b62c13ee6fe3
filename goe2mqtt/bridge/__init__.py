"""The process: wiring and supervision (`process`), the command desk (`desk`),
the results' way out to the broker (`results`), the
bridge's info (`info`), memory upkeep,
loop watch, health file, start-up checks and what it remembers (`remembered`)."""
