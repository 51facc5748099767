"""The client side of the command line: talking to a running server, progress, and chat."""
