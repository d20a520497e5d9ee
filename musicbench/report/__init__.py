"""Leaderboards and reports compiled from results."""
