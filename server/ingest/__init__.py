"""Lifts from the trucks into the database: MQTT subscriber, inbox, aggregates, evidence photos, metrics."""
