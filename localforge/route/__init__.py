"""Choosing the model that serves a request: the registry of models, policies and the router."""
