"""A small tokenizer for the Snowflake statements the stand-in's staging layer parses itself.

Staging statements (``CREATE STAGE``, ``COPY INTO @stage``, ``LIST``...) are recognised and taken apart here
rather than with sqlglot: sqlglot's Snowflake dialect accepts only part of their option syntax, and a
statement sqlglot cannot parse must still get Snowflake's error shape, never a server error. Only the
query nested in ``COPY INTO <location> FROM ( <query> )`` is handed to fakesnow's translation.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from snowflake.connector.errors import ProgrammingError

_TOKEN = re.compile(
    r"""
    (?P<skip>\s+|--[^\n]*|//[^\n]*|/\*.*?\*/)
    |(?P<string>'(?:[^'\\]|''|\\.)*')
    |(?P<stage>@(?:"(?:[^"]|"")*"|[^\s(),;'"=])+)
    |(?P<ident>(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)(?:\.(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*))*)
    |(?P<number>[-+]?\d+(?:\.\d+)?)
    |(?P<punct>[(),=;])
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def syntax_error(message: str) -> ProgrammingError:
    """Snowflake's error for a statement it cannot parse (``001003``, SQL state ``42000``)."""
    return ProgrammingError(msg=f"SQL compilation error:\nsyntax error {message}", errno=1003, sqlstate="42000")


def unsupported(what: str) -> ProgrammingError:
    """Snowflake's error for a feature it does not support (``000002``, SQL state ``0A000``), naming it."""
    return ProgrammingError(
        msg=f"SQL compilation error:\nUnsupported feature '{what}' (not implemented by the devstack's Snowflake "
        "stand-in).",
        errno=2,
        sqlstate="0A000",
    )


@dataclasses.dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is ``string``, ``stage``, ``ident``, ``number``, ``punct`` or ``other``."""

    kind: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper()

    def is_word(self, *words: str) -> bool:
        return self.kind == "ident" and self.upper in words


def tokenize(sql: str) -> list[Token]:
    """The tokens of ``sql`` without whitespace and comments.

    :raises ProgrammingError: an unterminated string or quoted identifier
    """
    tokens = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "other"
        if kind == "skip":
            continue
        text = match.group()
        if kind == "other" and text in "'\"":
            raise syntax_error(f"line 1 at position {match.start()} unexpected end of input (unterminated {text})")
        tokens.append(Token(kind, text, match.start(), match.end()))
    while tokens and tokens[-1].text == ";":
        tokens.pop()
    return tokens


def unquote_string(text: str) -> str:
    """The value of a ``'...'`` literal."""
    body = text[1:-1]
    return re.sub(r"''|\\(.)", lambda m: "'" if m.group() == "''" else m.group(1), body)


def normalise_name(text: str) -> str:
    """One identifier as Snowflake stores it: quoted kept as written, unquoted upper-cased."""
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text.upper()


def split_name(text: str) -> list[str]:
    """The parts of a (qualified) name such as ``db."Sch".stage``, each normalised."""
    parts = re.findall(r'"(?:[^"]|"")*"|[^.]+', text)
    return [normalise_name(p) for p in parts]


class Parser:
    """A cursor over the tokens of one statement.

    :param sql: the statement text.
    """

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.tokens = tokenize(sql)
        self.pos = 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def next(self) -> Token:
        token = self.peek()
        if token is None:
            raise syntax_error("unexpected end of statement")
        self.pos += 1
        return token

    def accept(self, *words: str) -> bool:
        """Consume the words if the next tokens are exactly ``words`` (case-insensitive)."""
        for i, word in enumerate(words):
            token = self.peek(i)
            if token is None or not (token.is_word(word) or token.text == word):
                return False
        self.pos += len(words)
        return True

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            token = self.peek()
            where = f"unexpected '{token.text}'" if token else "unexpected end of statement"
            at = token.start if token else len(self.sql)
            raise syntax_error(f"line 1 at position {at} {where}; expected {' '.join(words)}")

    def name(self) -> str:
        token = self.next()
        if token.kind != "ident":
            raise syntax_error(f"line 1 at position {token.start} unexpected '{token.text}'; expected a name")
        return token.text

    def balanced(self) -> str:
        """The raw text inside the parentheses that start here (the parentheses are consumed)."""
        opening = self.next()
        if opening.text != "(":
            raise syntax_error(f"line 1 at position {opening.start} unexpected '{opening.text}'; expected '('")
        depth = 1
        while True:
            token = self.next()
            if token.text == "(":
                depth += 1
            elif token.text == ")":
                depth -= 1
                if depth == 0:
                    return self.sql[opening.end : token.start]

    def value(self) -> Any:
        """One option value: a string, number, word (``TRUE``/``FALSE`` as bool), or a parenthesised list.

        A parenthesised ``( NAME = value ... )`` becomes a dict of upper-case names; ``( 'a', 'b' )`` a list.
        """
        token = self.peek()
        if token is None:
            raise syntax_error("unexpected end of statement; expected a value")
        if token.text == "(":
            inner = Parser(self.balanced())
            if inner.at_end():
                return []
            second = inner.peek(1)
            if second is not None and second.text == "=":
                return inner.options()
            items = []
            while not inner.at_end():
                items.append(inner.value())
                inner.accept(",")
            return items
        self.pos += 1
        if token.kind == "string":
            return unquote_string(token.text)
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.is_word("TRUE"):
            return True
        if token.is_word("FALSE"):
            return False
        if token.kind == "ident":
            return token.upper
        raise syntax_error(f"line 1 at position {token.start} unexpected '{token.text}'")

    def options(self) -> dict[str, Any]:
        """``NAME = value`` pairs (commas between them optional) up to the end of the tokens."""
        found: dict[str, Any] = {}
        while not self.at_end():
            token = self.next()
            if token.text == ",":
                continue
            if token.kind != "ident":
                raise syntax_error(f"line 1 at position {token.start} unexpected '{token.text}'")
            self.expect("=")
            key = token.upper
            if key in found:
                raise syntax_error(f"line 1 at position {token.start}: option {key} given twice")
            found[key] = self.value()
        return found
