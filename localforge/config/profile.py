"""The profile stage's settings: the `[profile]` section of the config file.

```toml
[profile]
sensitive_terms = ["Project Falcon", "ACME merger"]   # whole words, any case
sensitive_patterns = ['\\bEMP-\\d{6}\\b']              # Python regular expressions
task_confidence_floor = 0.5                           # below it the task is "general"
task_head = false                                     # refine the task with the embedding head
embedder = "all-MiniLM-L6-v2"                         # or "sentence-transformers:/path/to/model"
embedder_max_tokens = 64                              # word pieces of the request it reads
```

The embedder reads the start of a request only: what a request is about shows in its first
sentences, and MiniLM's cost grows with every token (about 21 MFLOP each), so a cap keeps the
routing decision's slowest cases close to its typical one. Measured on the project's 2-core
machine (`localforge bench overhead`), p99 of the decision: 21 ms at 64, 29 ms at 96, 35 ms at
128 word pieces. A leave-one-out k-NN over 2,500 prompts of the routing data predicted which
prompts need the strong model as well from 64 word pieces as from 256 (APGR 0.626 vs 0.615).
"""

from __future__ import annotations

import msgspec


class ProfileSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    sensitive_terms: list[str] = []
    sensitive_patterns: list[str] = []
    task_confidence_floor: float = 0.5
    # the head over the embedding (scripts/train_task_head.py prints these): right on 80.0% of
    # held-out real prompts where TF-IDF alone is right on 92.0%; better only on sources it never
    # saw (52.1% vs 45.0%) and on the hand-written prompts (79.3% vs 72.4%), so off
    task_head: bool = False
    embedder: str = "all-MiniLM-L6-v2"
    embedder_max_tokens: int = 64

    def __post_init__(self) -> None:
        if not 0.0 <= self.task_confidence_floor <= 1.0:
            raise ValueError("task_confidence_floor must lie between 0 and 1")
        if not 8 <= self.embedder_max_tokens <= 512:
            raise ValueError("embedder_max_tokens must lie between 8 and 512")
