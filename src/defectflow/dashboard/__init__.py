"""Operator dashboard: review flagged boards, confirm or correct decisions, see the model history."""
