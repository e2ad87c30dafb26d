"""The pure core: events, the state fold (apply/replay) and the scheduler (decide). No I/O."""
