"""Skip connections across blocks: a stack of tensors, pushed on the way down, popped on
the way up (a UNet's skips)::

    skips = stack()                 ->  skips = []    (stack(a, b, dim=0) is torch.stack)
    push(skips, x)                  ->  skips.append(x)
    x = cat(x, pop(skips), dim=1)   ->  x = torch.cat([x, skips.pop()], dim=1)
    x = down_blocks(x, temb, skips) ->  for block in self.down_blocks:
                                            x = block(x, temb, skips)   (blocks push onto it)

In the IR a stack is a chain of versions: ``stack_new``, then one node per change
(``stack_push``, ``stack_after`` a ``stack_pop`` or a call that changes it), each reading
the one before, so passes never reorder or merge them. Shape inference follows the chain
with the stack's contents (a tuple of shapes), so a pop is checked against what was pushed.
"""

from __future__ import annotations

from archcc.parser.expr import Call, Effect, Name

STACK_BUILTINS = ("stack", "pop")
VERSIONS = ("stack_new", "stack_push", "stack_after")  # nodes standing for a stack (not a tensor)
EFFECTS = ("stack_push", "stack_pop")  # never removed, merged or moved


def call_builtin(fwd, e: Call) -> str:
    """``stack()`` (a new, empty stack) or ``pop(s)`` (its last tensor, removed)."""
    if e.kwargs or len(e.args) != (0 if e.func == "stack" else 1):
        fwd.fail(e.pos, "stack() takes no arguments" if e.func == "stack" else
                 "pop() takes one stack: pop(skips)")
    if e.func == "stack":
        return fwd.node("stack_new", [], e.pos, stack=None)
    name, version = _stack(fwd, e.args[0], "pop", e)
    node = fwd.node("stack_pop", [version], e.pos, stack=name)
    fwd.vars[name] = fwd.node("stack_after", [node], e.pos, stack=name, arg=0)
    return node


def effect(fwd, statement: Effect) -> None:
    """``push(s, x)``: the only call written for its effect alone."""
    e = statement.call
    if e.func != "push":
        fwd.fail(e.pos, f"a bare {e.func}(...) computes a value nobody reads",
                 "assign it (y = ...); only push(stack, x) stands alone")
    if e.kwargs or len(e.args) != 2:
        fwd.fail(e.pos, "push() takes a stack and a tensor: push(skips, x)")
    name, version = _stack(fwd, e.args[0], "push", e)
    fwd.vars[name] = fwd.node("stack_push", [version, fwd.expr(e.args[1])], e.pos, stack=name)


def _stack(fwd, arg, func: str, call: Call) -> tuple[str, str]:
    """The variable a push/pop names and its current version."""
    if not isinstance(arg, Name) or arg.id not in fwd.vars:
        fwd.fail(call.pos, f"{func}() needs a stack variable first: {func}(skips, ...)",
                 "make one with skips = stack(), or take it as a block input")
    fwd.stacks.add(arg.id)
    return arg.id, fwd.vars[arg.id]


def after_call(fwd, call: Call, node: str, positions: list[int], names: list[str]) -> None:
    """A call that was given stacks changed them: each stack variable passed (at
    ``positions`` of the call's inputs) continues from a version after the call."""
    for position, name in zip(positions, names, strict=True):
        fwd.vars[name] = fwd.node("stack_after", [node], call.pos, stack=name, arg=position)
