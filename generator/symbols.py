"""Symbols with a role in generated models: trainable scalars."""

from __future__ import annotations

import sympy

__all__ = ["TrainableScalar"]


class TrainableScalar(sympy.Symbol):
    """A scalar coefficient learned from data, usable anywhere in an equation.

    One symbol name is one shared weight of the generated model, whatever the number of
    terms it appears in; numeric factors multiplying it (sign included) are kept.

    Parameters
    ----------
    name : identifier of the weight.
    init : initial value (default 0.0).
    trainable : False freezes it (it then behaves as a constant saved with the model).

    >>> a = TrainableScalar("a", init=1.0)
    >>> (-2 * a).free_symbols == {a}
    True
    """

    def __new__(cls, name: str, init: float = 0.0, trainable: bool = True, **assumptions):
        from .validation import finite_float

        init = finite_float(init, f"TrainableScalar {name!r}: init")
        obj = sympy.Symbol.__xnew__(cls, name, real=True, **assumptions)
        obj.init = init
        obj.trainable = bool(trainable)
        return obj

    def __getnewargs_ex__(self):
        return (self.name, self.init, self.trainable), {}

    def _hashable_content(self):
        return (*super()._hashable_content(), self.init, self.trainable)
