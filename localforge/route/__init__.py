"""Choosing the model that serves a request: what is known of each model, policies and the router."""
