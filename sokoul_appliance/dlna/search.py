"""ContentDirectory:1 search criteria (CDS:1 section 2.5.5): a parser to a small tree and an
evaluator over an object's properties.

    searchCrit ::= '*' | searchExp
    searchExp  ::= relExp | searchExp 'and'|'or' searchExp | '(' searchExp ')'
    relExp     ::= property binOp quotedVal | property 'exists' ('true'|'false')
    binOp      ::= '=' | '!=' | '<' | '<=' | '>' | '>=' | 'contains' | 'doesNotContain'
                 | 'derivedfrom'

'and' binds tighter than 'or'. String comparisons ignore case (as minidlna's SQL LIKE does);
numbers compare as numbers when both sides are numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Properties = Mapping[str, Sequence[str]]


class SearchCriteriaError(ValueError):
    """Criteria we cannot read (UPnP error 708)."""


@dataclass(frozen=True)
class Rel:
    prop: str
    op: str
    value: str


@dataclass(frozen=True)
class Exists:
    prop: str
    present: bool


@dataclass(frozen=True)
class Logic:
    op: str  # 'and' | 'or'
    left: Node
    right: Node


@dataclass(frozen=True)
class Everything:
    pass


Node = Rel | Exists | Logic | Everything

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) |
        (?P<str>"(?:[^"\\]|\\.)*") |
        (?P<op>!=|<=|>=|=|<|>) |
        (?P<word>[A-Za-z_@][\w:@.\-]*) |
        (?P<star>\*)
    )""",
    re.VERBOSE,
)
_WORD_OPS = {"contains": "contains", "doesnotcontain": "doesNotContain",
             "derivedfrom": "derivedfrom", "exists": "exists"}  # fmt: skip


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SearchCriteriaError(f"cannot read search criteria at {text[pos : pos + 20]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise SearchCriteriaError("search criteria end too early")
        self.i += 1
        return tok

    def expr(self) -> Node:
        node = self.conj()
        while (tok := self.peek()) is not None and tok[0] == "word" and tok[1].lower() == "or":
            self.i += 1
            node = Logic("or", node, self.conj())
        return node

    def conj(self) -> Node:
        node = self.atom()
        while (tok := self.peek()) is not None and tok[0] == "word" and tok[1].lower() == "and":
            self.i += 1
            node = Logic("and", node, self.atom())
        return node

    def atom(self) -> Node:
        kind, text = self.take()
        if kind == "lp":
            node = self.expr()
            if self.take()[0] != "rp":
                raise SearchCriteriaError("a '(' in the search criteria is not closed")
            return node
        if kind != "word":
            raise SearchCriteriaError(f"expected a property name, got {text!r}")
        prop = text
        op_kind, op_text = self.take()
        if op_kind == "op":
            op = op_text
        elif op_kind == "word" and op_text.lower() in _WORD_OPS:
            op = _WORD_OPS[op_text.lower()]
        else:
            raise SearchCriteriaError(f"unknown operator {op_text!r}")
        val_kind, val_text = self.take()
        if op == "exists":
            if val_kind != "word" or val_text.lower() not in ("true", "false"):
                raise SearchCriteriaError("'exists' wants true or false")
            return Exists(prop, val_text.lower() == "true")
        if val_kind != "str":
            raise SearchCriteriaError(f"expected a quoted value after {op!r}")
        value = re.sub(r"\\(.)", r"\1", val_text[1:-1])
        return Rel(prop, op, value)


def parse_criteria(text: str) -> Node:
    """'upnp:class derivedfrom "object.item.videoItem" and dc:title contains "dark"' -> tree."""
    tokens = _tokens(text)
    if not tokens or tokens == [("star", "*")]:
        return Everything()
    parser = _Parser(tokens)
    node = parser.expr()
    extra = parser.peek()
    if extra is not None:
        raise SearchCriteriaError(f"unexpected {extra[1]!r} in search criteria")
    return node


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _compare(op: str, have: str, want: str) -> bool:
    a, b = _number(have), _number(want)
    if a is None or b is None:
        x, y = have.casefold(), want.casefold()
        return {"=": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y,
                ">=": x >= y}[op]  # fmt: skip
    return {"=": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def matches(node: Node, props: Properties) -> bool:
    if isinstance(node, Everything):
        return True
    if isinstance(node, Logic):
        if node.op == "and":
            return matches(node.left, props) and matches(node.right, props)
        return matches(node.left, props) or matches(node.right, props)
    values = props.get(node.prop, ())
    if isinstance(node, Exists):
        return bool(values) == node.present
    want = node.value.casefold()
    if node.op == "contains":
        return any(want in v.casefold() for v in values)
    if node.op == "doesNotContain":
        return not any(want in v.casefold() for v in values)
    if node.op == "derivedfrom":
        return any(v.casefold() == want or v.casefold().startswith(want + ".") for v in values)
    if node.op == "!=":
        return all(_compare("!=", v, node.value) for v in values)
    return any(_compare(node.op, v, node.value) for v in values)


def wants_containers(node: Node) -> bool:
    """Whether any branch could match a container (upnp:class of object.container...)."""
    if isinstance(node, Everything | Exists):
        return True
    if isinstance(node, Logic):
        return wants_containers(node.left) or wants_containers(node.right)
    if node.prop == "upnp:class" and node.op in ("derivedfrom", "="):
        v = node.value.casefold()
        return v in ("object", "object.container") or v.startswith("object.container")
    return True
