"""The memory of routed requests on a real sqlite file and a real hnswlib index: it survives a
reopen, a missing or stale index is rebuilt from sqlite, and store_prompts=false keeps no text."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import anyio.to_thread
import numpy as np

from localforge.memory.db import open_db
from localforge.memory.outcomes import Memory, Route, prompt_hash
from localforge.memory.records import Recorder, RequestRecord

DIM = 8


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def open_memory(folder: Path, store_prompts: bool = True) -> tuple[Memory, str]:
    memory = Memory(open_db(folder / "localforge.db"), DIM, folder / "routes.hnsw", store_prompts)
    return memory, memory.open()


def fill(memory: Memory, n: int = 5) -> None:
    for i in range(n):
        route_id = memory.record_route(Route(f"req-{i}", "model-a", prompt=f"question {i}",
                                             embedding=unit(i)))
        memory.record_outcome(route_id, "model-a", 1.0 if i % 2 == 0 else 0.0, "feedback")


def test_neighbours_carry_their_outcomes_and_survive_a_reopen(tmp_path: Path) -> None:
    memory, state = open_memory(tmp_path)
    assert state == "rebuilt"  # a new database: nothing to load
    fill(memory)
    nearest = memory.neighbours(unit(2), k=3)[0]
    assert nearest.similarity > 0.99 and nearest.outcomes == {"model-a": 1.0}
    memory.save()
    memory.db.conn.close()

    again, state = open_memory(tmp_path)
    assert state == "loaded"
    assert again.neighbours(unit(3), k=1)[0].outcomes == {"model-a": 0.0}
    assert again.route("req-3")["outcomes"] == {"model-a": 0.0}


def test_a_deleted_index_is_rebuilt_from_sqlite(tmp_path: Path) -> None:
    memory, _ = open_memory(tmp_path)
    fill(memory)
    memory.save()
    memory.db.conn.close()
    (tmp_path / "routes.hnsw").unlink()

    again, state = open_memory(tmp_path)
    assert state == "rebuilt"
    assert len(again.index) == 5
    assert again.neighbours(unit(4), k=1)[0].similarity > 0.99


def test_an_index_that_disagrees_with_the_table_is_rebuilt(tmp_path: Path) -> None:
    memory, _ = open_memory(tmp_path)
    fill(memory, 3)
    memory.save()  # the index knows three requests...
    memory.record_route(Route("late", "model-a", embedding=unit(9)))  # ...sqlite has four
    memory.db.conn.close()

    again, state = open_memory(tmp_path)
    assert state == "rebuilt"
    assert len(again.index) == 4


def test_without_store_prompts_only_hashes_and_embeddings_are_kept(tmp_path: Path) -> None:
    memory, _ = open_memory(tmp_path, store_prompts=False)
    memory.record_route(Route("secret", "model-a", prompt="my password is hunter2", embedding=unit(1)))
    row = memory.route("secret")
    assert row["prompt"] is None
    assert row["prompt_hash"] == prompt_hash("my password is hunter2")
    assert row["embedding"] is not None
    raw = (tmp_path / "localforge.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("localforge.db-wal"))
    assert b"hunter2" not in raw


def test_the_same_prompt_again_is_found_within_the_window(tmp_path: Path) -> None:
    memory, _ = open_memory(tmp_path)
    memory.record_route(Route("first", "model-a", prompt="what is 2+2", embedding=unit(1), created_at=1000.0))
    assert memory.recent_prompt("what is 2+2", within_s=300, now=1100.0)["request_id"] == "first"
    assert memory.recent_prompt("what is 2+2", within_s=300, now=2000.0) is None
    assert memory.recent_prompt("something else", within_s=300, now=1100.0) is None


def test_concurrent_writers_on_the_shared_connection_keep_each_others_rows(tmp_path: Path) -> None:
    """The recorder and the routing memory write on one sqlite connection from worker threads.
    A transaction belongs to the connection, not the thread: one writer's rollback (here a route
    recorded twice) must not take the rows another writer has just inserted."""
    db = open_db(tmp_path / "localforge.db")
    recorder = Recorder(db)
    memory = Memory(db, DIM)
    memory.open()
    memory.record_route(Route("taken", "model-a"))
    saves, clashes = 400, 400
    failed: list[BaseException] = []

    def clash() -> None:
        try:
            memory.record_route(Route("taken", "model-a"))  # the unique request id: rolled back
        except sqlite3.IntegrityError:
            return
        failed.append(AssertionError("a duplicate route was accepted"))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(max(saves, clashes)):
                if i < saves:
                    tg.start_soon(recorder.save, RequestRecord(id=f"req-{i}", endpoint="/api/chat",
                                                               requested_model="tiny"))
                if i < clashes:
                    tg.start_soon(anyio.to_thread.run_sync, clash)

    anyio.run(main)
    assert not failed
    kept = {row[0] for row in sqlite3.connect(tmp_path / "localforge.db").execute("select id from requests")}
    assert len(kept) == saves, f"{saves - len(kept)} recorded requests were rolled back by another writer"


def test_a_scope_sees_only_its_own_routes_and_repeats(tmp_path: Path) -> None:
    """Many routes of one key, a few of another and of no key: a search is answered from the
    asking scope only, however few routes it has, and a reopen (or a prune) keeps the scopes."""
    memory, _ = open_memory(tmp_path)
    for i in range(300):
        scope = "b" if i % 100 == 7 else "" if i % 100 == 8 else "a"
        route_id = memory.record_route(Route(f"r{i}", "m", prompt=f"q{i}", embedding=unit(i), scope=scope,
                                             created_at=1000.0 + i))
        memory.record_outcome(route_id, "m", 1.0, "feedback")
    for reopened in (False, True):
        if reopened:
            memory.db.conn.close()
            memory, _ = open_memory(tmp_path)
        b = memory.neighbours(unit(7), 40, "b")
        assert sorted(n.route_id for n in b) == sorted(memory.route_id(f"r{i}") for i in (7, 107, 207))
        assert b[0].similarity > 0.99  # its own near-identical route comes first
        assert len(memory.neighbours(unit(7), 40, "a")) == 40
        assert memory.route_id("r7") not in [n.route_id for n in memory.neighbours(unit(7), 40, "a")]
        assert len(memory.neighbours(unit(8), 40, "")) == 3
        assert memory.neighbours(unit(7), 40, "nobody") == []
    now = 1000.0 + 300
    assert memory.recent_prompt("q7", 1e6, now, scope="b") is not None
    assert memory.recent_prompt("q7", 1e6, now, scope="a") is None  # another key asking it is no repeat
    memory.prune(1000.0 + 150)
    assert sorted(n.route_id for n in memory.neighbours(unit(7), 40, "b")) == [memory.route_id("r207")]


def test_todays_spend_in_all_and_for_one_keys_scope_in_one_pass(tmp_path: Path) -> None:
    memory, _ = open_memory(tmp_path)
    for i, (scope, model, cost, at) in enumerate([("key-a", "cloud", 0.5, 100.0), ("key-b", "cloud", 0.25, 100.0),
                                                  ("key-a", "local", 0.0, 100.0), ("key-a", "cloud", 9.0, 1.0)]):
        memory.record_route(Route(f"spend-{i}", model, candidates=[{"model": model, "cost": cost}],
                                  created_at=at, scope=scope))
    remote = {"cloud": 1.0}
    assert memory.spent_since(50.0, remote, "key-a") == (0.75, 0.5)  # the route before `since` is not counted
    assert memory.spent_since(50.0, remote) == (0.75, 0.0)
    assert memory.spent_since(0.0, remote, "key-b") == (9.75, 0.25)
