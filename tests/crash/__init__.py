"""Crash-safety harness: SIGKILL `podium` at random moments and check the durability promise."""
