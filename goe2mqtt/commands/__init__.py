"""A command's way: payload -> validated set calls (`services`, `payloads`), the
results it can end with (`outcomes`), one charger's queue that runs and confirms them
(`runner`), and the journal that survives any crash (`journal`)."""
