"""One charger: its loop (`loop`: polls, availability, discovery, commands), the view
that maps a status to entity states (`view`), and its PV surplus feed (`pv_feed`)."""
