"""Deciding when each request runs and which models stay resident."""
