"""Every error sentence follows the house style of :mod:`agent.errors`.

The sentence starts in lower case (unless its first word is a name or an acronym, such as
"ISA-L" or "OSD", or a placeholder) and has no final period. Checked on the source of
``agent/``: the first argument, when it is a string literal or an f-string (placeholders
rendered as ``{}``), of every ``raise X(...)``, of every ``super().__init__(...)``, and of
every call of an exception class ``agent/`` defines (an error built and returned, say).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "agent"


def render(node: ast.expr) -> str | None:
    """The text of a string literal or f-string, ``{}`` for each placeholder; else None."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(value.value)
            else:
                parts.append("{}")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = render(node.left), render(node.right)
        return None if left is None or right is None else left + right
    return None


def _is_super_init(call: ast.Call) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "__init__"
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "super"
    )


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def exception_classes(sources: list[str]) -> set[str]:
    """Names of the classes these modules define that derive from an exception."""
    classes = [
        node
        for source in sources
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ClassDef)
    ]
    found: set[str] = set()
    while True:
        more = {
            cls.name
            for cls in classes
            for base in cls.bases
            if (name := ast.unparse(base).rsplit(".", 1)[-1]) in found
            or name.endswith(("Error", "Exception"))
        }
        if more <= found:
            return found
        found |= more


def messages(source: str, exceptions: frozenset[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, text) of every message the style applies to in one module's source."""
    calls: dict[int, ast.Call] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            calls[id(node.exc)] = node.exc
        elif isinstance(node, ast.Call) and (
            _is_super_init(node) or _called_name(node) in exceptions
        ):
            calls[id(node)] = node
    out = []
    for call in calls.values():
        if call.args and (text := render(call.args[0])) is not None:
            out.append((call.args[0].lineno, text))
    return sorted(out)


def agent_messages() -> list[tuple[str, int, str]]:
    """(file, line, text) of every message in ``agent/``."""
    paths = sorted(ROOT.rglob("*.py"))
    exceptions = frozenset(exception_classes([path.read_text() for path in paths]))
    return [
        (str(path.relative_to(ROOT.parent)), line, text)
        for path in paths
        for line, text in messages(path.read_text(), exceptions)
    ]


def _is_name(word: str) -> bool:
    """An acronym or a name that keeps its capital: "ISA-L", "OSD", "GF(2^8)", "Reed-Solomon".

    A lone capital ("A", "I") is an ordinary word; so is a capitalised word whose hyphenated
    parts are otherwise lower case ("Erasure-code").
    """
    letters = [c for c in word if c.isalpha()]
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return True
    if any(c.isdigit() for c in word):
        return True
    return "-" in word and any(c.isupper() for c in word[1:])


def problems(text: str) -> list[str]:
    """What is wrong with one message; empty when it follows the style."""
    found = []
    words = text.split()
    first = words[0] if words else ""
    if first[:1].isupper() and not _is_name(first):
        found.append(f"starts with the capitalised word {first!r}")
    if text.rstrip().endswith("."):
        found.append("ends with a period")
    return found


def test_every_error_sentence_follows_the_style() -> None:
    bad = [
        f"{where}:{line}: {problem}: {text!r}"
        for where, line, text in agent_messages()
        for problem in problems(text)
    ]
    assert not bad, "error sentences off the style of agent/errors.py:\n" + "\n".join(bad)


def test_the_walk_finds_the_messages() -> None:
    found = {text for _, _, text in agent_messages()}
    assert len(found) > 100
    assert "the last voter of a cluster cannot be removed" in found  # raise X("...")
    assert "leadership is being handed to node {}, so writes are paused" in found  # super()
    assert any(text.startswith("ISA-L could not {} the shards") for text in found)  # returned


def test_the_checker_flags_and_accepts() -> None:
    assert problems("The disk is full.") == [
        "starts with the capitalised word 'The'",
        "ends with a period",
    ]
    assert problems("A disk is full") == ["starts with the capitalised word 'A'"]
    assert problems("Erasure-code plugin 'x' is unknown") != []
    assert problems("the disk is full") == []
    assert problems("ISA-L cannot load") == []
    assert problems("OSD 3 is down") == []
    assert problems("{} is down") == []
    assert problems("") == []


def test_the_source_walk_sees_raise_and_super_init() -> None:
    source = (
        "class E(Exception):\n"
        "    def __init__(self, n):\n"
        "        super().__init__(f'Only {n} left.')\n"
        "def f(n):\n"
        "    raise E('the ' + 'disk')\n"
        "def g():\n"
        "    raise ValueError(len('Not a message.'))\n"
        "def h():\n"
        "    return E('Built here.')\n"
    )
    assert exception_classes([source]) == {"E"}
    assert messages(source) == [(3, "Only {} left."), (5, "the disk")]
    assert messages(source, frozenset({"E"}))[-1] == (9, "Built here.")
