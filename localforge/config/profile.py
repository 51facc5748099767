"""The profile stage's settings: the `[profile]` section of the config file.

```toml
[profile]
sensitive_terms = ["Project Falcon", "ACME merger"]   # whole words, any case
sensitive_patterns = ['\\bEMP-\\d{6}\\b']              # Python regular expressions
task_confidence_floor = 0.3                           # below it the task is "general"
task_head = true                                      # weigh in what the embedding says
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
    # both chosen by scripts/train_task_head.py, which prints these: with each source held out in
    # turn, TF-IDF alone labels 59.5% right (the mean of the classes), the head 64.4%; on the
    # hand-written prompts 53.3% and 75.6%. The floor is the one the script chose on held-out
    # sources; the head is off wherever the embedder is not the MiniLM it learnt from
    task_confidence_floor: float = 0.3
    task_head: bool = True
    embedder: str = "all-MiniLM-L6-v2"
    embedder_max_tokens: int = 64

    def __post_init__(self) -> None:
        if not 0.0 <= self.task_confidence_floor <= 1.0:
            raise ValueError("task_confidence_floor must lie between 0 and 1")
        if not 8 <= self.embedder_max_tokens <= 512:
            raise ValueError("embedder_max_tokens must lie between 8 and 512")
