"""The site controller: one fuse (or import cap) shared by several chargers.

Pure: no I/O and no clock. The meter's payloads are parsed here (`meter`), the room is
shared here (`sharing`), and `controller` decides, at the time it is given, which
current each charger gets and who pauses (`writes`: what goes to one charger, and is
kept written). The bridge feeds it readings and carries its writes through the command
path; the simulator proves it over many seeded days.
"""
