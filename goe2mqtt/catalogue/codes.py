"""What the go-e codes mean (API v2 key tables), and where nrg keeps what."""

from __future__ import annotations

CAR_STATES = {
    0: "unknown",
    1: "idle",
    2: "charging",
    3: "waiting_for_car",
    4: "complete",
    5: "error",
    6: "initializing",
}
PHASE_MODES = {0: "auto", 1: "1_phase", 2: "3_phases"}
ACCESS_MODES = {0: "open", 1: "auth_required", 2: "evcms"}
FORCE_STATES = {0: "neutral", 1: "off", 2: "on"}
ERRORS = {
    0: "none",
    1: "fi_ac",
    2: "fi_dc",
    3: "phase",
    4: "overvolt",
    5: "overamp",
    6: "diode",
    7: "pp_invalid",
    8: "gnd_invalid",
    9: "contactor_stuck",
    10: "contactor_missing",
}
CHARGING_REASONS = {
    0: "no_charge_ctrl_data",
    1: "overtemperature",
    2: "access_control_wait",
    3: "force_state_on",
    4: "force_state_off",
    5: "scheduler",
    6: "energy_limit",
    7: "price_low",
    8: "automatic_stop_test_charge",
    9: "automatic_stop_not_enough_time",
    10: "automatic_stop",
    11: "automatic_stop_no_clock",
    12: "pv_surplus",
    13: "fallback_goe_default",
    14: "fallback_goe_scheduler",
    15: "fallback_default",
    16: "fallback_goe_price",
    17: "fallback_price",
    18: "fallback_automatic_stop",
    19: "car_compatibility_keep_alive",
    20: "charge_pause_not_allowed",
    22: "simulate_unplugging",
    23: "phase_switch",
    24: "min_pause_duration",
}
CAR_CONNECTED_STATES = frozenset({2, 3, 4})

# nrg: [U1, U2, U3, UN, I1, I2, I3, P1, P2, P3, PN, Ptotal, pf1, pf2, pf3, pfN], v2 units as-is.
NRG_VOLTAGE = (0, 1, 2)
NRG_CURRENT = (4, 5, 6)
NRG_POWER = (7, 8, 9)
NRG_POWER_TOTAL = 11
