"""The memory of routed requests: their decisions, profiles and outcomes in sqlite, their
embeddings in the hnswlib index, and an in-memory copy of the outcomes for the k-NN estimate.

sqlite is the truth; the index and the in-memory maps are rebuilt from it when the memory opens.
With `store_prompts` off a route keeps only the prompt's hash, its embedding and its features; a
prompt flagged sensitive is never kept as text. `prune` forgets routes older than a time.

Each route has the scope of its request (a hash of its API key; "" without keys): the neighbours
and the repeated prompts a request is compared with are those of its own scope, so neither the
route a key gets nor the evidence `/api/route` shows depends on what another key asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from localforge.memory.db import Database
from localforge.memory.vectors import VectorIndex

log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86400.0


def prompt_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def delete_routes(db: Database, before: float | None = None) -> list[int]:
    """Delete the routes created before a time (all of them: None) and their outcomes, with
    their bytes overwritten; returns the deleted route ids. Call it inside `db.writing()`: one
    transaction, under the write lock."""
    where, params = ("where created_at < ?", [before]) if before is not None else ("", [])
    db.conn.execute("PRAGMA secure_delete=ON")  # deleted prompts are zeroed, not left in free pages
    ids = [row[0] for row in db.execute(f"select id from routes {where}", params)]
    db.execute(f"delete from outcomes where route_id in (select id from routes {where})", params)
    db.execute(f"delete from routes {where}", params)
    return ids


@dataclass(slots=True)
class Route:
    """What is written for one routed request."""

    request_id: str
    chosen: str
    preset: str = ""
    propensity: float = 1.0
    explored: bool = False
    reason: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)
    prompt: str = ""
    tokens: int = 0
    task: str = "general"
    sensitive: bool = False
    profile: dict[str, Any] = field(default_factory=dict)
    embedding: np.ndarray | None = None
    context: np.ndarray | None = None  # the bandit's feature vector, to learn from later feedback
    created_at: float = 0.0
    scope: str = ""  # the request's Inference.scope


@dataclass(slots=True)
class Neighbour:
    route_id: int
    similarity: float
    created_at: float
    outcomes: dict[str, float]  # model -> latest score


class Memory:
    def __init__(self, db: Database, dimensions: int, index_path: Path | None = None,
                 store_prompts: bool = False) -> None:
        self.db = db
        self.dimensions = dimensions
        self.index_path = index_path
        self.store_prompts = store_prompts
        self.index = VectorIndex(dimensions)
        self._outcomes: dict[int, dict[str, float]] = {}
        self._created: dict[int, float] = {}
        self._ids: dict[str, int] = {}  # request id -> route id
        self._scopes: dict[int, str] = {}  # route id -> scope, for the routes that have one
        self._indexed = Counter[str]()  # vectors in the index per scope

    def open(self) -> str:
        """Load the outcomes and the index; returns "loaded" or "rebuilt" (what happened to it)."""
        for row in self.db.execute("select id, request_id, created_at, scope, embedding is not null from routes"):
            self._ids[row[1]] = row[0]
            self._created[row[0]] = row[2]
            if row[3]:
                self._scopes[row[0]] = row[3]
            if row[4]:
                self._indexed[row[3]] += 1
        for route_id, model, score in self.db.execute(
                "select route_id, model, score from outcomes order by id"):
            self._outcomes.setdefault(route_id, {})[model] = score
        count, max_label = self.db.execute(
            "select count(*), coalesce(max(id), -1) from routes where embedding is not null").fetchone()
        if self.index_path is not None and self.index.load(self.index_path, count, max_label):
            return "loaded"
        self._reindex(count)
        if count:
            log.info("rebuilt the vector index from %d routed requests", count)
        return "rebuilt"

    def _reindex(self, count: int) -> None:
        rows = self.db.execute("select id, embedding from routes where embedding is not null")
        self.index.rebuild(((i, np.frombuffer(blob, dtype=np.float32)) for i, blob in rows), count)

    def prune(self, before: float) -> int:
        """Forget the routes created before a time, their outcomes and their vectors (the index
        is rebuilt and saved without them); returns how many routes went."""
        with self.db.writing():
            gone = set(delete_routes(self.db, before))
        if not gone:
            return 0
        for route_id in gone:
            self._outcomes.pop(route_id, None)
            self._created.pop(route_id, None)
        self._scopes = {r: s for r, s in self._scopes.items() if r not in gone}
        self._indexed = Counter(s for (s,) in self.db.execute("select scope from routes where embedding is not null"))
        self._ids = {request: route for request, route in self._ids.items() if route not in gone}
        self._reindex(len(self._created))
        self.save()
        return len(gone)

    def save(self) -> None:
        if self.index_path is not None:
            self.index.save(self.index_path)

    def record_route(self, route: Route) -> int:
        created = route.created_at or time.time()
        row = {
            "request_id": route.request_id, "created_at": created, "preset": route.preset,
            "chosen": route.chosen, "propensity": route.propensity, "explored": int(route.explored),
            "reason": route.reason, "candidates": json.dumps(route.candidates),
            "removed": json.dumps(route.removed), "prompt_hash": prompt_hash(route.prompt),
            "prompt": route.prompt if self.store_prompts and not route.sensitive else None,
            "tokens": route.tokens,
            "task": route.task, "sensitive": int(route.sensitive), "profile": json.dumps(route.profile),
            "embedding": None if route.embedding is None else route.embedding.astype(np.float32).tobytes(),
            "context": None if route.context is None else route.context.astype(np.float32).tobytes(),
            "scope": route.scope,
        }
        with self.db.writing():
            route_id = int(self._insert("routes", row))
        self._ids[route.request_id] = route_id
        self._created[route_id] = created
        if route.scope:
            self._scopes[route_id] = route.scope
        if route.embedding is not None:
            self.index.add(route_id, route.embedding)
            self._indexed[route.scope] += 1
        return route_id

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        # plain SQL: sqlite-utils' insert inspects the table on every call, which the replay feels
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        cursor = self.db.conn.execute(f"insert into {table} ({columns}) values ({marks})",
                                      list(row.values()))
        return int(cursor.lastrowid or 0)

    def route_id(self, request_id: str) -> int | None:
        return self._ids.get(request_id)

    def route(self, request_id: str) -> dict[str, Any] | None:
        route_id = self._ids.get(request_id)
        if route_id is None:
            return None
        row = dict(self.db.table("routes").get(route_id))
        row["outcomes"] = dict(self._outcomes.get(route_id, {}))
        return row

    def record_outcome(self, route_id: int, model: str, score: float, kind: str,
                       at: float | None = None) -> None:
        row = {"route_id": route_id, "model": model, "score": float(score), "kind": kind,
               "created_at": at or time.time()}
        with self.db.writing():
            self._insert("outcomes", row)
        self._outcomes.setdefault(route_id, {})[model] = float(score)

    def outcome_history(self, route_id: int) -> list[dict[str, Any]]:
        """Every outcome of a route, oldest first: its model, score, kind and time."""
        return [dict(row) for row in self.db.query(
            "select model, score, kind, created_at from outcomes where route_id = ? order by id",
            [route_id])]

    def saving_since(self, since: float) -> tuple[int, float, float]:
        """(routes since a time, their expected cost, the expected cost had each gone to its
        candidate of the highest expected quality): what routing saved against always the best."""
        routes, chosen_cost, best_cost = 0, 0.0, 0.0
        for chosen, candidates in self.db.execute(
                "select chosen, candidates from routes where created_at >= ?", [since]):
            scored = json.loads(candidates)
            if not scored:
                continue
            routes += 1
            best = max(scored, key=lambda c: float(c.get("parts", {}).get("quality", 0.0)))
            best_cost += float(best.get("cost", 0.0))
            chosen_cost += sum(float(c.get("cost", 0.0)) for c in scored if c.get("model") == chosen)
        return routes, chosen_cost, best_cost

    def neighbours(self, embedding: np.ndarray, k: int, scope: str = "") -> list[Neighbour]:
        """The k most similar past requests of a scope that have at least one outcome."""
        if set(self._indexed) <= {scope}:  # one scope in all (no keys): no filter to pay for
            labels, sims = self.index.search(embedding, k)
        else:
            labels, sims = self.index.search(embedding, k, lambda label: self._scopes.get(label, "") == scope,
                                             self._indexed[scope])
        out = []
        for label, sim in zip(labels.tolist(), sims.tolist(), strict=True):
            outcomes = self._outcomes.get(label)
            if outcomes:
                out.append(Neighbour(label, sim, self._created.get(label, 0.0), outcomes))
        return out

    def recent_prompt(self, text: str, within_s: float, now: float | None = None,
                      scope: str = "") -> dict[str, Any] | None:
        """The latest route of a scope for the same prompt within the last `within_s` seconds."""
        since = (now or time.time()) - within_s
        rows = list(self.db.execute(
            "select id, request_id, chosen from routes where prompt_hash = ? and created_at >= ? and scope = ? "
            "order by created_at desc limit 1", [prompt_hash(text), since, scope]))
        return {"id": rows[0][0], "request_id": rows[0][1], "chosen": rows[0][2]} if rows else None

    def spent_since(self, since: float, prices: dict[str, float], scope: str | None = None) -> tuple[float, float]:
        """Dollars spent on the given models since a time, from the recorded expected costs, and
        the part of it spent by the routes of one API key's `scope` (0 without one): one pass
        answers both the server's cap and a key's."""
        total = mine = 0.0
        for chosen, candidates, route_scope in self.db.execute(
                "select chosen, candidates, scope from routes where created_at >= ?", [since]):
            if chosen in prices:
                cost = sum(float(c.get("cost", 0.0)) for c in json.loads(candidates) if c.get("model") == chosen)
                total += cost
                mine += cost if route_scope == scope else 0.0
        return total, mine
