"""Flows: the menus and short dialogues editors write in YAML (flows/README.md).

definitions: what a flow is; loading: YAML to flows, every problem as file:line;
checks: the graph (dangling links, unreachable steps, endless loops); answers: what a
user may answer an `ask` step; runner: running a step for a user.
"""

from navigator.flows.definitions import (
    ASK_TYPES,
    FLOW_FIELDS,
    MAIN_FLOW,
    STEP_FIELDS,
    Case,
    Choice,
    Flow,
    FlowSet,
    Localized,
    Option,
    Step,
    expression,
    template,
)
from navigator.flows.loading import check_flows, load_flows

__all__ = ["ASK_TYPES", "FLOW_FIELDS", "MAIN_FLOW", "STEP_FIELDS", "Case", "Choice", "Flow",
           "FlowSet", "Localized", "Option", "Step", "check_flows", "expression",
           "load_flows", "template"]
