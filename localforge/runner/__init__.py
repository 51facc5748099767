"""Runner processes: each resident llama.cpp model configuration lives in a process of its own, so
a native fault is an error for that model's requests and never an outage of the server."""
