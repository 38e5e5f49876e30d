"""Targeted sorting reminders: rules, plans, campaigns with human review, sending, letters, effect."""
