"""The profile stage's settings: the `[profile]` section of the config file.

```toml
[profile]
sensitive_terms = ["Project Falcon", "ACME merger"]   # whole words, any case
sensitive_patterns = ['\\bEMP-\\d{6}\\b']              # Python regular expressions
task_confidence_floor = 0.5                           # below it the task is "general"
embedder = "all-MiniLM-L6-v2"                         # or "sentence-transformers:/path/to/model"
```
"""

from __future__ import annotations

import msgspec


class ProfileSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sensitive_terms: list[str] = []
    sensitive_patterns: list[str] = []
    task_confidence_floor: float = 0.5
    embedder: str = "all-MiniLM-L6-v2"

    def __post_init__(self) -> None:
        if not 0.0 <= self.task_confidence_floor <= 1.0:
            raise ValueError("task_confidence_floor must lie between 0 and 1")
