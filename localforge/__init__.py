"""LocalForge: a drop-in Ollama server that routes each request to the right model."""

__version__ = "0.1.0"

# The version Ollama clients compare against: Copilot needs >= 0.6.4, Open WebUI parses it as
# dotted integers. We report the Ollama API level we implement, not our own package version.
OLLAMA_API_VERSION = "0.12.0"
