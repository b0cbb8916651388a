"""Tenant lifecycle: states, operations, health and reconciliation."""
