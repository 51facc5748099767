"""What LocalForge remembers: every request, and later the outcomes the router learns from."""
