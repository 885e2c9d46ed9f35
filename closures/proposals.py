"""Named closure proposals: published closures of the unclosed PKF terms, chosen by name.

:func:`named_proposal` gives a proposal (terms and theoretical coefficients) by name,
:func:`closure_names` the names that apply to a term, and :func:`close` a whole closure of a
system, ready for :meth:`pkf.SymbolicPKF.set_closure`. The names are
``"quasi-gaussian"`` (:func:`closures.dictionary.quasi_gaussian_proposal`) and ``"P18"``,
the closure of Pannekoucke, Bocquet & Ménard (2018) for the Burgers equation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import sympy as sp

from closures.dictionary import Proposal, quasi_gaussian_proposal
from pkf.expectation import Expectation
from pkf.forms import FORMS, PKFForm

if TYPE_CHECKING:
    from pkf.derivation import SymbolicPKF

__all__ = [
    "CLOSURE_NAMES",
    "PROPOSAL_NAMES",
    "ClosureName",
    "close",
    "closure_names",
    "named_proposal",
]

ClosureName = Literal["none", "zero", "quasi-gaussian", "P18"]
"""What :func:`close` accepts: ``"none"`` and ``"zero"`` (every unclosed term set to 0) or
one of :data:`PROPOSAL_NAMES`."""

#: Every name :func:`close` accepts.
CLOSURE_NAMES: tuple[str, ...] = get_args(ClosureName)
#: The names of published proposals (:func:`named_proposal`).
PROPOSAL_NAMES: tuple[str, ...] = ("quasi-gaussian", "P18")


def named_proposal(
    name: str, pkf: SymbolicPKF, term: sp.Expr, form: PKFForm = "diffusion"
) -> Proposal:
    """The closure proposal ``name`` of an unclosed term, with its theoretical coefficients.

    Parameters
    ----------
    name : {'quasi-gaussian', 'P18'}
        ``"quasi-gaussian"``: the locally Gaussian correlation expanded in the separation
        (:func:`closures.dictionary.quasi_gaussian_proposal`; every term E[eps_f d^a eps_f]
        of one field, 1D to 3D). ``"P18"``: Pannekoucke, Bocquet & Ménard (2018),
        *Parametric covariance dynamics for the nonlinear diffusive Burgers equation*,
        Nonlin. Processes Geophys. 25, 481-495: E[eps d_x^4 eps] ~ 3 g^2 - 2 d_x^2 g, i.e.
        d_x^2 nu / nu^2 + (3/4) / nu^2 - 2 (d_x nu)^2 / nu^3 in diffusion form and
        2 d_x^2 s / s^2 + 3 / s^2 - 4 (d_x s)^2 / s^3 in aspect form; it applies only to the
        term E[eps_f d_x^4 eps_f] of a field f of a 1D system (its derivation assumes one
        spatial coordinate, and the term is a property of the correlation of f alone).
    pkf : pkf.SymbolicPKF
        The system ``term`` belongs to.
    term : sympy.Expr
        One of ``pkf.unclosed_terms``.
    form : {'diffusion', 'aspect', 'metric'}
        The tensor the proposal is written with (``nu``, ``s`` or ``g``; any of them suits
        :meth:`pkf.SymbolicPKF.set_closure`).

    Returns
    -------
    Proposal
        Terms (monomials of the tensor's components and their derivatives) and rational
        coefficients, sorted as in :func:`closures.dictionary.dictionary`.

    Raises
    ------
    ValueError
        Unknown name or form; ``term`` not an unclosed term of ``pkf``; a proposal that does
        not apply to ``term`` (the message names the term and the names that apply).

    Examples
    --------
    >>> from pkf import SymbolicPKF
    >>> t, x, kappa = sp.symbols("t x kappa")
    >>> u = sp.Function("u")(t, x)
    >>> pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    >>> proposal = named_proposal("P18", pkf, pkf.unclosed_terms[0])
    >>> proposal.coefficients
    [3/4, 1, -2]
    >>> proposal.terms  # doctest: +NORMALIZE_WHITESPACE
    [nu_u_xx(t, x)**(-2), Derivative(nu_u_xx(t, x), (x, 2))/nu_u_xx(t, x)**2,
     Derivative(nu_u_xx(t, x), x)**2/nu_u_xx(t, x)**3]
    """
    if name not in PROPOSAL_NAMES:
        raise ValueError(
            f"unknown closure proposal {name!r}; expected one of {', '.join(PROPOSAL_NAMES)}"
        )
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of {', '.join(FORMS)}")
    _check_applies(name, pkf, term)
    if name == "quasi-gaussian":
        return quasi_gaussian_proposal(pkf, term, form)
    return _p18(pkf, term, form)


def closure_names(pkf: SymbolicPKF, term: sp.Expr) -> list[str]:
    """The names of :data:`PROPOSAL_NAMES` that apply to an unclosed term, in that order.

    (``"none"`` and ``"zero"`` of :func:`close` apply to every term and are not listed.)

    Raises
    ------
    ValueError
        If ``term`` is not an unclosed term of ``pkf``.

    Examples
    --------
    >>> from pkf import SymbolicPKF
    >>> t, x, y = sp.symbols("t x y")
    >>> u = sp.Function("u")(t, x)
    >>> pkf = SymbolicPKF(sp.Eq(u.diff(t), u.diff(x, 2) - u.diff(x, 4)))
    >>> [closure_names(pkf, term) for term in pkf.unclosed_terms]
    [['quasi-gaussian', 'P18'], ['quasi-gaussian']]
    """
    _check_unclosed(pkf, term)
    field = _auto_term_field(pkf, term)
    if field is None:
        return []
    names = ["quasi-gaussian"]
    if len(pkf.coordinates) == 1:
        eps, x = pkf.fields[field].epsilon, pkf.coordinates[0]
        if term == Expectation(eps * sp.Derivative(eps, (x, 4))):
            names.append("P18")
    return names


def close(
    pkf: SymbolicPKF,
    name: str,
    form: PKFForm = "diffusion",
    otherwise: Literal["zero"] | None = None,
) -> dict[sp.Expr, sp.Expr]:
    """A closure of every unclosed term of ``pkf`` by name, for ``SymbolicPKF.set_closure``.

    Parameters
    ----------
    pkf : pkf.SymbolicPKF
    name : {'none', 'zero', 'quasi-gaussian', 'P18'}
        ``"none"`` and ``"zero"`` set every term to 0; a proposal name closes every term with
        :func:`named_proposal` (its theoretical coefficients).
    form : {'diffusion', 'aspect', 'metric'}
        The tensor the closures are written with.
    otherwise : {'zero'} or None
        What closes the terms the proposal does not apply to — the cross terms
        E[eps_A d^a eps_B] of a multivariate system, say: ``"zero"`` sets them to 0; None
        (default) makes such a term an error.

    Returns
    -------
    dict
        Unclosed term -> closure expression, in the order of ``pkf.unclosed_terms`` (empty
        for a closed system).

    Raises
    ------
    ValueError
        Unknown name or form, or a proposal that does not apply to one of the terms (the
        message names the term and the names that apply to it).

    Examples
    --------
    >>> from pkf import SymbolicPKF
    >>> t, x, kappa = sp.symbols("t x kappa")
    >>> u = sp.Function("u")(t, x)
    >>> pkf = SymbolicPKF(sp.Eq(u.diff(t), kappa * u.diff(x, 2) - u * u.diff(x)))
    >>> pkf.set_closure(close(pkf, "P18"))
    >>> pkf.to_generator()[-1].rhs.has(sp.Function("closure_u_x4")(t, x))
    False
    """
    if name not in CLOSURE_NAMES:
        raise ValueError(f"unknown closure {name!r}; expected one of {', '.join(CLOSURE_NAMES)}")
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of {', '.join(FORMS)}")
    if otherwise not in (None, "zero"):
        raise ValueError(f"otherwise: expected 'zero' or None, got {otherwise!r}")
    if name in ("none", "zero"):
        return {term: sp.S.Zero for term in pkf.unclosed_terms}
    applies = {term: name in closure_names(pkf, term) for term in pkf.unclosed_terms}
    if otherwise is None:
        for term in pkf.unclosed_terms:  # every term checked before the first is expanded
            _check_applies(name, pkf, term)
    return {
        term: named_proposal(name, pkf, term, form).expression if applies[term] else sp.S.Zero
        for term in pkf.unclosed_terms
    }


# -- internals ---------------------------------------------------------------------------
#: Where each proposal applies, for the error messages.
_SCOPE = {
    "quasi-gaussian": "it closes the terms E[eps_f d^a eps_f] of one field f",
    "P18": "Pannekoucke et al. 2018: only the term E[eps_f d_x^4 eps_f] of a field f of a 1D "
    "system",
}


def _which(pkf: SymbolicPKF, term: sp.Expr) -> str:
    names = closure_names(pkf, term)
    if names:
        return f"the names that apply to it: {', '.join(names)}"
    return "no named proposal applies to it: close it with 'zero' or an expression"


def _check_applies(name: str, pkf: SymbolicPKF, term: sp.Expr) -> None:
    if name not in closure_names(pkf, term):
        raise ValueError(
            f"closure {name} does not apply to {term} ({_SCOPE[name]}); {_which(pkf, term)}"
        )


def _check_unclosed(pkf: SymbolicPKF, term: sp.Expr) -> None:
    if term not in pkf.unclosed_terms:
        raise ValueError(
            f"{term} is not an unclosed term of this system; unclosed terms: {pkf.unclosed_terms}"
        )


def _auto_term_field(pkf: SymbolicPKF, term: sp.Expr) -> str | None:
    """The field f of a term E[eps_f d^a eps_f]; None for a cross term of two fields."""
    for name, field in pkf.fields.items():
        others = [f.epsilon for n, f in pkf.fields.items() if n != name]
        if term.has(field.epsilon) and not any(term.has(e) for e in others):
            return name
    return None


def _p18(pkf: SymbolicPKF, term: sp.Expr, form: PKFForm) -> Proposal:
    """P18 in ``form``: 3 g^2 - 2 d_x^2 g (Pannekoucke et al. 2018) with g = 1/s = 1/(2 nu)
    (1D; ``term`` checked by :func:`closure_names`)."""
    name = _auto_term_field(pkf, term)
    assert name is not None, term
    field = pkf.fields[name]
    (x,) = pkf.coordinates
    g = field.metric[0, 0]
    metric = 3 * g**2 - 2 * sp.Derivative(g, (x, 2))
    in_form = {
        "metric": g,
        "aspect": 1 / field.aspect[0, 0],
        "diffusion": 1 / (2 * field.diffusion[0, 0]),
    }
    return Proposal.from_expression(metric.subs(g, in_form[form]).doit())
