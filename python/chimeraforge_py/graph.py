"""Agent graphs (core::graph): dependencies by index, a topological order that follows a
preferred one, and the critical path. Pure functions over plain lists.

``after[i]`` lists the agents agent ``i`` starts after, by index, each once, in the order
configured.
"""

from __future__ import annotations

from typing import Optional


class GraphError(ValueError):
    """A graph that cannot run (core's GraphError): unknown id, self-dependency or cycle."""


def graph_of(agents: list) -> list:
    """``after`` by index from the agents' ``after`` ids (core's ``Graph::of``)."""
    index = {a["id"]: i for i, a in enumerate(agents)}
    after = []
    for a in agents:
        deps = []
        for d in a.get("after") or []:
            if d == a["id"]:
                raise GraphError(f"agent {a['id']!r} runs after itself")
            if d not in index:
                raise GraphError(f"agent {a['id']!r} runs after {d!r}, which is not an agent of this run")
            if index[d] not in deps:
                deps.append(index[d])
        after.append(deps)
    # A cycle leaves agents that never become ready.
    placed = [False] * len(after)
    for _ in range(len(after)):
        ready = [i for i in range(len(after)) if not placed[i] and all(placed[d] for d in after[i])]
        if not ready:
            stuck = [agents[i]["id"] for i in range(len(after)) if not placed[i]]
            raise GraphError(f"agents {', '.join(stuck)} wait on each other in a cycle")
        placed[ready[0]] = True
    return after


def topological_order(after: list, preferred: list) -> list:
    """At each step the first agent of ``preferred`` not yet placed whose dependencies are all
    placed (core's ``Graph::topological_order``): ``preferred`` itself for independent agents."""
    placed = [False] * len(after)
    order = []
    while len(order) < len(preferred):
        nxt = next(i for i in preferred if not placed[i] and all(placed[d] for d in after[i]))
        placed[nxt] = True
        order.append(nxt)
    return order


def critical_path(after: list, durations: list) -> Optional[tuple]:
    """(ms, agents first to last) of the chain along the dependencies whose durations sum
    highest (core's ``Graph::critical_path``; ties to the chain ending at the lower index);
    None when ``durations`` does not give one finite, non-negative value per agent."""
    import math

    if len(durations) != len(after) or not after or any(not math.isfinite(d) or d < 0.0 for d in durations):
        return None
    order = topological_order(after, list(range(len(after))))
    finish = [0.0] * len(after)
    via: list = [None] * len(after)
    for i in order:
        best = None
        for d in after[i]:
            if best is None or finish[d] > finish[best]:
                best = d
        finish[i] = durations[i] + (finish[best] if best is not None else 0.0)
        via[i] = best
    end = 0
    for i in range(1, len(after)):
        if finish[i] > finish[end]:
            end = i
    agents = [end]
    while via[agents[-1]] is not None:
        agents.append(via[agents[-1]])
    agents.reverse()
    return finish[end], agents
