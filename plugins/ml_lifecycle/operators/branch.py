"""A branch that follows the run's params.

What ``@task.branch`` does for a function of ``params``, without the Python decorators' import at DAG parse
time (the standard provider's ``PythonOperator`` machinery, about 35 ms per DAG file): the provider's
``BaseBranchOperator`` runs ``choose(params)``, follows the task id it returns, skips the other downstream
tasks and pushes the task id to XCom (``return_value``), as the decorated branch did. As with ``@task``, the
function's docstring becomes the task's ``doc_md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BaseBranchOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class ParamBranchOperator(BaseBranchOperator):
    """Follow the task id(s) that ``choose`` returns for the run's params; the other downstream tasks skip.

    :param choose: the run's params -> the task id (or ids) to follow
    """

    def __init__(self, *, choose: Callable[[Mapping[str, Any]], str | Iterable[str]], **kwargs: Any) -> None:
        if not callable(choose):
            raise TypeError(f"choose must be a function of the run's params, not {type(choose).__name__}")
        super().__init__(**kwargs)
        self.choose = choose
        if choose.__doc__ and not any((self.doc, self.doc_json, self.doc_md, self.doc_rst, self.doc_yaml)):
            self.doc_md = choose.__doc__

    def choose_branch(self, context: Context) -> str | Iterable[str]:
        return self.choose(context["params"])
