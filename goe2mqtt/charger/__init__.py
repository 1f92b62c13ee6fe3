"""One charger: its loop (`loop`: polls, discovery, commands), whether it is there
(`availability`), the view that maps a status to entity states (`view`), and its PV
surplus feed (`pv_feed`)."""
