"""The session ledger: every charge on the books, durably, with its energy, card,
PV share and cost.

Pure logic and its sqlite store: it imports nothing above config, util and the
catalogue. The charger loop feeds it each status it accepts; the bridge publishes
what it says (bridge/ledger_out.py) and the command line reads its file.
"""
