"""The subscriber list when this thread comes back into it: a garbage collection's
finalizer (a client closed) or a signal handler (a reload that delivers, a client
made) may run at any bytecode boundary of its own methods, on the same thread.

A trace function fires each such call at every boundary in turn (h195's method), and
the list is checked afterwards: nothing live dropped, nothing removed kept, no
duplicate, no change left queued, no exception. The first re-entrant design (a flag
that deferred removals only) lost subscribers and raised IndexError for a nested
add or delivery."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest

from mtls import _engine
from mtls._engine import _PRUNE_FLOOR, Subscribers, WeakSubscriber

_CODES = {
    f.__code__
    for f in (
        Subscribers.add,
        Subscribers.remove,
        Subscribers._prune,
        Subscribers._apply,
        Subscribers._notify,
        Subscribers.deliver,
        _engine._alive,
    )
}


class _Owner:
    pass


def _run(kind: str, op: str, boundary: int) -> list[str] | None:
    """One attempt: ``op`` run re-entrantly at the ``boundary``-th bytecode boundary of
    the list's code while it does ``kind``; what went wrong (``None``: no such boundary)."""
    subscribers = Subscribers()
    owners: list[_Owner | None] = [_Owner() for _ in range(_PRUNE_FLOOR + 5)]
    weak = [WeakSubscriber(o, lambda _: None) for o in owners]
    for callback in weak:
        subscribers.add(callback)
    calls: list[str] = []
    victim, other, newcomer = (lambda *_, n=n: calls.append(n) for n in ("victim", "other", "new"))
    subscribers.add(victim)
    subscribers.add(other)
    for i in range(0, len(owners), 2):
        owners[i] = None  # half of them gone: pruning has work
    state = {"seen": 0, "fired": False}

    def fire() -> None:
        state["fired"] = True
        if op == "remove":
            subscribers.remove(victim)
        elif op == "add":
            subscribers.add(newcomer)
        else:
            subscribers.queue(5, 6)
            subscribers.deliver()

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code in _CODES:
            frame.f_trace_opcodes = True
            if event == "opcode":
                state["seen"] += 1
                if state["seen"] == boundary and not state["fired"]:
                    fire()
        return tracer

    sys.settrace(tracer)
    try:
        if kind == "deliver":
            subscribers.queue(0, 1)
            subscribers.deliver()
        else:
            subscribers._prune_at = len(subscribers)  # its add prunes, as it does at times
            subscribers.add(lambda *_: None)
    except Exception as exc:  # what must never happen: said as a finding
        return [f"raised {type(exc).__name__}: {exc}"]
    finally:
        sys.settrace(None)
    if not state["fired"]:
        return None
    listed = subscribers._callbacks
    wrong = []
    if op == "remove" and victim in listed:
        wrong.append("removed, still listed")
    if op == "add" and newcomer not in listed:
        wrong.append("added, not listed")
    if other not in listed or any(w not in listed for w, o in zip(weak, owners, strict=True) if o):
        wrong.append("a live subscriber dropped")
    if len({id(c) for c in listed}) != len(listed):
        wrong.append("listed twice")
    if subscribers._changes or subscribers._applying:
        wrong.append("a change left queued")
    return wrong


@pytest.mark.parametrize("op", ["remove", "add", "deliver"])
@pytest.mark.parametrize("kind", ["add", "deliver"])
def test_a_call_from_inside_the_list_at_any_boundary_is_applied_whole(kind, op):
    found: dict[str, list[int]] = {}
    reached: list[int] = []

    def attempts() -> None:
        # Once without firing: Python 3.12.1 reports opcodes of a code object only
        # after a frame of it has asked for them once (f_trace_opcodes in its call event).
        assert _run(kind, op, 0) is None
        boundary = 1
        while (wrong := _run(kind, op, boundary)) is not None:
            for what in wrong:
                found.setdefault(what, []).append(boundary)
            boundary += 1
        reached.append(boundary)

    # On a thread of its own: sys.settrace there leaves this thread's tracer (pytest-cov's,
    # a debugger's) in place; set here, it ended coverage for every later test.
    worker = threading.Thread(target=attempts, daemon=True)
    worker.start()
    worker.join(120)
    assert reached and reached[0] > 20, reached  # done, and the trace reached the list's code
    assert found == {}, {what: at[:5] for what, at in found.items()}
