"""The HTTP surface: Ollama's API at the root, OpenAI's under /v1. Thin controllers over the pipeline."""
