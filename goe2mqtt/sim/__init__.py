"""Stand-ins for the real world: the simulated go-e cloud and chargers (`simulator`,
`charger`, `models`), private brokers (`broker`) and the demo (`demo`). The daemon's
packages never import this one."""
