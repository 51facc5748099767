"""The profile of a request: what it asks for, how big it is, how sensitive, what it is like."""
