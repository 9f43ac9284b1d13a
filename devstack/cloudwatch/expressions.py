"""CloudWatch metric math over the time series of a ``GetMetricData`` request (or a metric-math alarm).

A time series is a ``{period start (epoch seconds): value}`` mapping. Supported: numbers, query ids,
``+ - * / ^``, comparisons (``< > <= >= == !=``, giving 1 or 0), ``AND``/``&&``, ``OR``/``||``,
``NOT``/``!``, parentheses, arrays ``[a, b]`` and the functions ABS, CEIL, FLOOR, LOG, LOG10, IF, FILL
(number, ``REPEAT`` or ``LINEAR``), SUM, AVG, MIN, MAX, STDDEV, METRICS, PERIOD, DIFF, RATE and
RUNNING_SUM, with CloudWatch's semantics:

- an operation on two time series yields a point only at the timestamps both have; a scalar applies to
  every point; a point whose result is not a finite number (division by zero) is dropped;
- SUM/AVG/MIN/MAX/STDDEV of an array give one time series (per timestamp, over the series that have a
  point there); of a single time series they give a scalar.

Any other function (SEARCH, ANOMALY_DETECTION_BAND, INSIGHT_RULE_METRIC, ...) raises
:class:`ExpressionError` naming it: the devstack refuses what it cannot evaluate rather than guessing.
"""

from __future__ import annotations

import math
import re
import statistics as pystats
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

Series = dict[float, float]
Value = Union[float, Series, list[Series], str]  # noqa: UP007 - a recursive alias reads better this way

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)|(?P<str>'[^']*'|\"[^\"]*\")|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||<=|>=|==|!=|[-+*/^()<>!,\[\]]))"
)
FUNCTIONS = (
    "ABS", "AVG", "CEIL", "DIFF", "FILL", "FLOOR", "IF", "LOG", "LOG10", "MAX", "METRICS", "MIN", "PERIOD",
    "RATE", "RUNNING_SUM", "STDDEV", "SUM",
)  # fmt: skip


class ExpressionError(ValueError):
    """A metric-math expression the devstack cannot evaluate, with the reason."""


@dataclass
class Context:
    """What an expression sees: the other queries' results, the time grid and the period.

    :param series: results of the queries it may reference, by id.
    :param metrics: the ids of the ``MetricStat`` queries, in request order (for ``METRICS()``).
    :param labels: the label of each query, by id (for ``METRICS('filter')``).
    :param grid: every period start of the request, oldest first (for ``FILL``).
    :param period: the period in seconds.
    """

    series: dict[str, Value]
    metrics: list[str]
    labels: dict[str, str]
    grid: list[float]
    period: int


def tokenize(expression: str) -> list[tuple[str, str]]:
    """Split an expression into (kind, text) tokens.

    :raises ExpressionError: on a character that is not part of the language.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = expression.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ExpressionError(
                f"Unexpected character {text[pos:].strip()[:1]!r} at position {pos} of {expression!r}."
            )
        kind = match.lastgroup or "op"
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def referenced_ids(expression: str) -> set[str]:
    """The query ids an expression names (lower-case identifiers that are not functions or keywords)."""
    return {text for kind, text in tokenize(expression) if kind == "name" and text[0].islower()}


def check(expression: str) -> None:
    """Parse an expression without evaluating it.

    :raises ExpressionError: naming what is not supported or malformed.
    """
    _Parser(expression, None).parse()


def evaluate(expression: str, context: Context) -> Value:
    """Evaluate an expression.

    :raises ExpressionError: naming what is not supported or malformed.
    """
    return _Parser(expression, context).parse()


def _finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def _binary(left: Value, right: Value, op: Callable[[float, float], float]) -> Value:
    def apply(a: float, b: float) -> float | None:
        try:
            out = op(a, b)
        except (ZeroDivisionError, OverflowError, ValueError):
            return None
        return out if _finite(out) else None

    if isinstance(left, str) or isinstance(right, str):
        raise ExpressionError("A string can only be an argument of METRICS().")
    if isinstance(left, list):
        return [_binary(s, right, op) for s in left]  # type: ignore[misc]
    if isinstance(right, list):
        return [_binary(left, s, op) for s in right]  # type: ignore[misc]
    if isinstance(left, dict) and isinstance(right, dict):
        out = {t: apply(left[t], right[t]) for t in left if t in right}
    elif isinstance(left, dict):
        out = {t: apply(v, float(right)) for t, v in left.items()}  # type: ignore[arg-type]
    elif isinstance(right, dict):
        out = {t: apply(float(left), v) for t, v in right.items()}
    else:
        result = apply(float(left), float(right))
        if result is None:
            raise ExpressionError("The expression divides a constant by zero.")
        return result
    return {t: v for t, v in out.items() if v is not None}


def _unary(value: Value, op: Callable[[float], float]) -> Value:
    def apply(a: float) -> float | None:
        try:
            out = op(a)
        except (ValueError, OverflowError):
            return None
        return out if _finite(out) else None

    if isinstance(value, str):
        raise ExpressionError("A string can only be an argument of METRICS().")
    if isinstance(value, list):
        return [_unary(s, op) for s in value]  # type: ignore[misc]
    if isinstance(value, dict):
        out = {t: apply(v) for t, v in value.items()}
        return {t: v for t, v in out.items() if v is not None}
    result = apply(float(value))
    if result is None:
        raise ExpressionError("The expression applies a function outside its domain to a constant.")
    return result


def _reduce(name: str, args: list[Value], fn: Callable[[list[float]], float]) -> Value:
    if len(args) != 1:
        raise ExpressionError(f"{name} takes one argument (a time series or an array of time series).")
    arg = args[0]
    if isinstance(arg, list):
        stamps = sorted({t for s in arg for t in s})
        out: Series = {}
        for t in stamps:
            values = [s[t] for s in arg if t in s]
            if values and (name != "STDDEV" or len(values) > 1):
                out[t] = fn(values)
        return out
    if isinstance(arg, dict):
        values = list(arg.values())
        if not values or (name == "STDDEV" and len(values) < 2):
            raise ExpressionError(f"{name} of a time series with too few points has no value.")
        return fn(values)
    raise ExpressionError(f"{name} needs a time series or an array of time series, not a constant.")


class _Parser:
    """Recursive-descent parser that evaluates as it parses (``context`` None: syntax check only)."""

    def __init__(self, expression: str, context: Context | None) -> None:
        self.expression = expression
        self.tokens = tokenize(expression)
        self.pos = 0
        self.context = context

    # -- token helpers ---------------------------------------------------------------------------

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _accept(self, *texts: str) -> str | None:
        token = self._peek()
        if token is not None and token[0] in ("op", "name") and token[1] in texts:
            self.pos += 1
            return token[1]
        return None

    def _expect(self, text: str) -> None:
        if self._accept(text) is None:
            found = self._peek()
            raise ExpressionError(
                f"Expected {text!r} in {self.expression!r}, found {found[1] if found else 'the end'!r}."
            )

    def _calc(self, fn: Callable[[], Value]) -> Value:
        return 0.0 if self.context is None else fn()

    # -- grammar ---------------------------------------------------------------------------------

    def parse(self) -> Value:
        if not self.tokens:
            raise ExpressionError("The expression is empty.")
        value = self._or()
        if self._peek() is not None:
            raise ExpressionError(f"Unexpected {self._peek()[1]!r} in {self.expression!r}.")  # type: ignore[index]
        return value

    def _or(self) -> Value:
        left = self._and()
        while self._accept("OR", "||"):
            right = self._and()
            left = self._calc(lambda a=left, b=right: _binary(a, b, lambda x, y: float(bool(x) or bool(y))))
        return left

    def _and(self) -> Value:
        left = self._not()
        while self._accept("AND", "&&"):
            right = self._not()
            left = self._calc(lambda a=left, b=right: _binary(a, b, lambda x, y: float(bool(x) and bool(y))))
        return left

    def _not(self) -> Value:
        if self._accept("NOT", "!"):
            value = self._not()
            return self._calc(lambda: _unary(value, lambda x: float(not x)))
        return self._compare()

    def _compare(self) -> Value:
        left = self._add()
        ops: dict[str, Callable[[float, float], float]] = {
            "<": lambda x, y: float(x < y),
            ">": lambda x, y: float(x > y),
            "<=": lambda x, y: float(x <= y),
            ">=": lambda x, y: float(x >= y),
            "==": lambda x, y: float(x == y),
            "!=": lambda x, y: float(x != y),
        }
        op = self._accept(*ops)
        if op:
            right = self._add()
            return self._calc(lambda: _binary(left, right, ops[op]))
        return left

    def _add(self) -> Value:
        left = self._mul()
        while True:
            op = self._accept("+", "-")
            if not op:
                return left
            right = self._mul()
            fn: Callable[[float, float], float] = (lambda x, y: x + y) if op == "+" else (lambda x, y: x - y)
            left = self._calc(lambda a=left, b=right, f=fn: _binary(a, b, f))

    def _mul(self) -> Value:
        left = self._unary()
        while True:
            op = self._accept("*", "/")
            if not op:
                return left
            right = self._unary()
            fn: Callable[[float, float], float] = (lambda x, y: x * y) if op == "*" else (lambda x, y: x / y)
            left = self._calc(lambda a=left, b=right, f=fn: _binary(a, b, f))

    def _unary(self) -> Value:
        if self._accept("-"):
            value = self._unary()
            return self._calc(lambda: _unary(value, lambda x: -x))
        if self._accept("+"):
            return self._unary()
        return self._power()

    def _power(self) -> Value:
        base = self._atom()
        if self._accept("^"):
            exponent = self._unary()
            return self._calc(lambda: _binary(base, exponent, lambda x, y: x**y))
        return base

    def _atom(self) -> Value:
        token = self._peek()
        if token is None:
            raise ExpressionError(f"The expression {self.expression!r} ends too early.")
        kind, text = token
        if kind == "num":
            self.pos += 1
            return float(text)
        if kind == "str":
            self.pos += 1
            return text[1:-1]
        if self._accept("("):
            value = self._or()
            self._expect(")")
            return value
        if self._accept("["):
            items = [self._or()]
            while self._accept(","):
                items.append(self._or())
            self._expect("]")
            return self._calc(lambda: self._array(items))
        if kind == "name":
            self.pos += 1
            if text in ("REPEAT", "LINEAR"):
                return text
            if self._peek() == ("op", "("):
                return self._call(text)
            if text[0].islower():
                return self._calc(lambda: self._lookup(text))
            raise ExpressionError(f"{text!r} in {self.expression!r} is neither a query id nor a function call.")
        raise ExpressionError(f"Unexpected {text!r} in {self.expression!r}.")

    # -- values ----------------------------------------------------------------------------------

    def _lookup(self, name: str) -> Value:
        assert self.context is not None
        if name not in self.context.series:
            raise ExpressionError(f"The expression {self.expression!r} refers to {name!r}, which is not a query id.")
        value = self.context.series[name]
        return dict(value) if isinstance(value, dict) else value

    @staticmethod
    def _array(items: list[Value]) -> list[Series]:
        out: list[Series] = []
        for item in items:
            if isinstance(item, list):
                out.extend(item)
            elif isinstance(item, dict):
                out.append(item)
            else:
                raise ExpressionError("An array may only hold time series.")
        return out

    def _call(self, name: str) -> Value:
        if name not in FUNCTIONS:
            raise ExpressionError(
                f"The metric math function {name} is not evaluated by the devstack's CloudWatch "
                f"(supported: {', '.join(FUNCTIONS)})."
            )
        self._expect("(")
        args: list[Value] = []
        if not self._accept(")"):
            args.append(self._or())
            while self._accept(","):
                args.append(self._or())
            self._expect(")")
        return self._calc(lambda: self._apply(name, args))

    def _apply(self, name: str, args: list[Value]) -> Value:
        context = self.context
        assert context is not None
        one = {
            "ABS": abs,
            "CEIL": math.ceil,
            "FLOOR": math.floor,
            "LOG": math.log,
            "LOG10": math.log10,
        }
        if name in one:
            if len(args) != 1:
                raise ExpressionError(f"{name} takes one argument.")
            return _unary(args[0], lambda x: float(one[name](x)))
        reducers: dict[str, Callable[[list[float]], float]] = {
            "SUM": lambda v: float(sum(v)),
            "AVG": lambda v: sum(v) / len(v),
            "MIN": lambda v: float(min(v)),
            "MAX": lambda v: float(max(v)),
            "STDDEV": lambda v: float(pystats.stdev(v)),
        }
        if name in reducers:
            return _reduce(name, args, reducers[name])
        if name == "METRICS":
            wanted = args[0] if args else None
            if wanted is not None and not isinstance(wanted, str):
                raise ExpressionError("METRICS takes no argument or a string to filter labels by.")
            ids = [i for i in context.metrics if wanted is None or wanted in context.labels.get(i, i)]
            return [dict(context.series[i]) for i in ids if isinstance(context.series.get(i), dict)]  # type: ignore[arg-type]
        if name == "PERIOD":
            return float(context.period)
        if name == "IF":
            return self._if(args)
        if name == "FILL":
            return self._fill(args)
        return self._sequence(name, args)

    def _if(self, args: list[Value]) -> Value:
        if len(args) not in (2, 3):
            raise ExpressionError("IF takes (condition, value if true[, value if false]).")
        condition, yes = args[0], args[1]
        no = args[2] if len(args) == 3 else None
        if not isinstance(condition, dict):
            raise ExpressionError("The condition of IF must be a time series.")

        def pick(value: Value | None, t: float) -> float | None:
            if value is None:
                return None
            if isinstance(value, dict):
                return value.get(t)
            if isinstance(value, float | int):
                return float(value)
            raise ExpressionError("IF's values must be time series or numbers.")

        out: Series = {}
        for t, flag in condition.items():
            chosen = pick(yes if flag else no, t)
            if chosen is not None:
                out[t] = chosen
        return out

    def _fill(self, args: list[Value]) -> Value:
        context = self.context
        assert context is not None
        if len(args) != 2:
            raise ExpressionError("FILL takes (time series, value or REPEAT or LINEAR).")
        target, how = args
        if isinstance(target, list):
            return [self._fill([s, how]) for s in target]  # type: ignore[misc]
        if not isinstance(target, dict):
            raise ExpressionError("FILL's first argument must be a time series.")
        out = dict(target)
        known = sorted(target)
        for t in context.grid:
            if t in out:
                continue
            if isinstance(how, float | int):
                out[t] = float(how)
            elif isinstance(how, dict):
                if t in how:
                    out[t] = how[t]
            elif how in ("REPEAT", "LINEAR") and known:
                before = [k for k in known if k < t]
                after = [k for k in known if k > t]
                if how == "REPEAT" or not before or not after:
                    out[t] = target[before[-1]] if before else target[after[0]]
                else:
                    a, b = before[-1], after[0]
                    out[t] = target[a] + (target[b] - target[a]) * (t - a) / (b - a)
            elif how not in ("REPEAT", "LINEAR"):
                raise ExpressionError("FILL's second argument must be a number, a time series, REPEAT or LINEAR.")
        return dict(sorted(out.items()))

    @staticmethod
    def _sequence(name: str, args: Sequence[Value]) -> Value:
        if len(args) != 1 or not isinstance(args[0], dict | list):
            raise ExpressionError(f"{name} takes one time series (or an array).")
        arg: Any = args[0]
        if isinstance(arg, list):
            return [_Parser._sequence(name, [s]) for s in arg]  # type: ignore[misc]
        points = sorted(arg.items())
        out: Series = {}
        running = 0.0
        for i, (t, v) in enumerate(points):
            if name == "RUNNING_SUM":
                running += v
                out[t] = running
            elif i > 0:
                prev_t, prev_v = points[i - 1]
                out[t] = v - prev_v if name == "DIFF" else (v - prev_v) / (t - prev_t)
        return out
