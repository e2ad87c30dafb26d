"""Podium: durable multi-agent workflows."""
