"""Checks on the graph of flows: links that point nowhere, steps nothing leads to, and
loops of automatic steps that would spin forever without waiting for the user."""

from __future__ import annotations

from collections.abc import Iterator

from navigator.flows.definitions import Flow, FlowSet, Step
from navigator.problems import Problem, did_you_mean

Node = tuple[str, str]  # (flow id, step id)


def check_graph(flow_set: FlowSet) -> list[Problem]:
    problems = list(_dangling_links(flow_set))
    problems.extend(_unreachable_steps(flow_set))
    problems.extend(_loops_without_exit(flow_set))
    return problems


def successors(flow_set: FlowSet, flow: Flow, step: Step) -> Iterator[tuple[Node, str, int]]:
    """Where a step can lead: (node, what leads there, line) for every existing target."""
    def local(step_id: str | None, what: str, line: int) -> Iterator[tuple[Node, str, int]]:
        if step_id and step_id in flow.steps:
            yield (flow.id, step_id), what, line

    yield from local(step.next, "next", step.line_of("next"))
    yield from local(step.otherwise, "else", step.line_of("else"))
    for case in step.cases:
        yield from local(case.goto, "goto", case.line)
    for option in step.options:
        if option.target == "goto":
            yield from local(option.value, "goto", option.line)
        elif option.target == "flow" and option.value in flow_set.flows:
            yield (option.value, flow_set.flows[option.value].start), "flow", option.line
    if step.kind in ("goto", "call") and step.flow in flow_set.flows:
        target = flow_set.flows[step.flow]
        target_step = step.target_step or target.start
        if target_step in target.steps:
            yield (target.id, target_step), "flow", step.line_of("flow")


def _dangling_links(flow_set: FlowSet) -> Iterator[Problem]:
    for flow, step in flow_set.steps():
        local = [(step.next, "next", step.line_of("next")),
                 (step.otherwise, "else", step.line_of("else"))]
        local += [(case.goto, "goto", case.line) for case in step.cases]
        local += [(o.value, "goto", o.line) for o in step.options if o.target == "goto"]
        for target, what, line in local:
            if target and target not in flow.steps:
                yield Problem(step.path, line, f"`{what}` points at missing step {target!r}"
                              f"{did_you_mean(target, flow.steps)}")
        flows = [(o.value, o.line) for o in step.options if o.target == "flow"]
        if step.flow:
            flows.append((step.flow, step.line_of("flow")))
        for target, line in flows:
            if target not in flow_set.flows:
                yield Problem(step.path, line, f"`flow` points at missing flow {target!r}"
                              f"{did_you_mean(target, flow_set.flows)}")
        if step.target_step and step.flow in flow_set.flows:
            steps = flow_set.flows[step.flow].steps
            if step.target_step not in steps:
                yield Problem(step.path, step.line_of("step"), f"`step` points at missing step "
                              f"{step.target_step!r} of flow {step.flow!r}"
                              f"{did_you_mean(step.target_step, steps)}")


def _unreachable_steps(flow_set: FlowSet) -> Iterator[Problem]:
    entries: set[Node] = {(f.id, f.start) for f in flow_set.flows.values()}
    for flow, step in flow_set.steps():
        entries.update(node for node, _, _ in successors(flow_set, flow, step))
    seen: set[Node] = set()
    queue = list(entries)
    while queue:
        node = queue.pop()
        if node in seen:
            continue
        seen.add(node)
        flow = flow_set.flows.get(node[0])
        step = flow.steps.get(node[1]) if flow else None
        if flow and step:
            queue.extend(n for n, _, _ in successors(flow_set, flow, step) if n[0] == flow.id)
    for flow, step in flow_set.steps():
        if (flow.id, step.id) not in seen:
            yield Problem(step.path, step.line, f"step {step.id!r} of flow {flow.id!r} is "
                          "unreachable: nothing leads to it", "warning")


def _loops_without_exit(flow_set: FlowSet) -> Iterator[Problem]:
    """Strongly connected groups of automatic steps with no edge leaving the group."""
    automatic: dict[Node, list[Node]] = {}
    exits: set[Node] = set()
    for flow, step in flow_set.steps():
        if step.waits_for_user:
            continue
        node = (flow.id, step.id)
        automatic[node] = [n for n, _, _ in successors(flow_set, flow, step)]
        if step.kind == "branch" and not step.otherwise:
            exits.add(node)  # no case matches -> the flow ends: a way out
    for group in _strongly_connected(automatic):
        looping = len(group) > 1 or group[0] in automatic[group[0]]
        leaves = any(target not in group for node in group for target in automatic[node])
        if looping and not leaves and not exits.intersection(group):
            first = min(group)
            step = flow_set.flows[first[0]].steps[first[1]]
            names = " → ".join(f"{f}.{s}" for f, s in sorted(group))
            yield Problem(step.path, step.line, f"steps {names} loop forever without waiting "
                          "for the user or ending")


def _strongly_connected(graph: dict[Node, list[Node]]) -> list[list[Node]]:
    """Tarjan's algorithm over the nodes of `graph` (edges to other nodes are ignored)."""
    index: dict[Node, int] = {}
    low: dict[Node, int] = {}
    stack: list[Node] = []
    on_stack: set[Node] = set()
    groups: list[list[Node]] = []

    def visit(node: Node) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(group)

    for node in graph:
        if node not in index:
            visit(node)
    return groups
