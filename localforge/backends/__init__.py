"""Model backends: what a backend is (base.py), the registry of every backend's models, and the
built-in llama.cpp backend. A backend never imports the web framework."""
