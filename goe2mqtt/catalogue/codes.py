"""What the go-e codes mean (API v2 key tables, firmware 60.4), and where arrays keep what."""

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
    12: "lock_stuck_open",
    13: "lock_stuck_locked",
    14: "fi_unknown",
    15: "unknown",
    16: "overtemperature",
    17: "no_communication",
    18: "cp_invalid",
    23: "rdc_self_test_failed",
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
    26: "error",
    27: "load_management",
    28: "ocpp",
    29: "reconnect_delay",
    30: "adapter_blocking",
    31: "underfrequency_control",
    32: "unbalanced_load",
    33: "discharging_pv_battery",
    34: "grid_monitoring",
    35: "ocpp_fallback",
    36: "floor_detected",
    37: "ocpp_inoperable",
    38: "undervoltage_control",
    39: "zero_setpoint",
    40: "initializing",
    41: "failsafe_limit",
}
LOGIC_MODES = {3: "default", 4: "eco", 5: "next_trip"}  # 4 was "Awattar", 5 "AutomaticStop"
ROUNDING_MODES = {0: "prefer_power_from_grid", 1: "default", 2: "prefer_power_to_grid"}
UNLOCK_SETTINGS = {0: "normal", 1: "auto_unlock", 2: "always_locked"}
LOCK_STATES = {**UNLOCK_SETTINGS, 3: "force_unlock"}
CABLE_UNLOCK_STATES = {
    0: "unknown",
    1: "unlocked",
    2: "unlock_failed",
    3: "locked",
    4: "lock_failed",
    5: "lock_unlock_power_outage",
}
LOCK_FEEDBACK = {0: "no_problem", 1: "problem_lock", 2: "problem_unlock"}
PHASE_WISHES = {0: "force_3", 1: "wish_1", 2: "wish_3"}
WIFI_STATES = {
    0: "idle",
    1: "no_ssid_available",
    2: "scan_completed",
    3: "connected",
    4: "connect_failed",
    5: "connection_lost",
    6: "disconnected",
    7: "connecting",
    8: "disconnecting",
    9: "no_shield",
    10: "waiting_for_ip",
}
CARD_SLOTS = 10
CAR_CONNECTED_STATES = frozenset({2, 3, 4})
# pha: six booleans, as the bits of API v1's pha: L1-L3 after the contactor, then before it.
PHA_AFTER = (0, 1, 2)
PHA_BEFORE = (3, 4, 5)

# nrg: [U1, U2, U3, UN, I1, I2, I3, P1, P2, P3, PN, Ptotal, pf1, pf2, pf3, pfN], v2 units as-is.
NRG_VOLTAGE = (0, 1, 2)
NRG_CURRENT = (4, 5, 6)
NRG_POWER = (7, 8, 9)
NRG_POWER_TOTAL = 11
NRG_POWER_FACTOR = (12, 13, 14)
