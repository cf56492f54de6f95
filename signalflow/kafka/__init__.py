"""Kafka plumbing shared by the services: client configuration, producers, consumers
that commit only finished work, dead letters, and topic administration."""
