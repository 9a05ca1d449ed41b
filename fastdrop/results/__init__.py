"""What a run leaves for later: its result row (`row`: the one schema that writes and reads), the row's
atomic write (`write`), and the live per-epoch curves of the experiment loggers (`loggers`)."""
