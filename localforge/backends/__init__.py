"""Model backends. A backend never imports the web framework."""
