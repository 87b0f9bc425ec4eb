"""Scripted board behaviour: a tiny language for what the customer and the machine do.

A script is a comma-separated list of steps, run in order (``--script`` on the command line,
``parse()`` in Python)::

    buy:cappuccino+extra_shot,wait_paid,vend_ok
    buy:water*3,wait_paid,vend_partial:1,sleep:2,buy:espresso,cancel:0.5

Steps:

==========================  ===================================================================
``buy:P[+OPT...][*QTY]``    the customer picks product P with options and quantity; the board
                            sends ORDER_REQUEST and shows the QR (docs/protocol.md, purchase)
``wait_paid``               (after buy; the default) wait for VEND_APPROVED, then vend
``cancel[:S]``              (after buy) the customer presses cancel S seconds after the QR shows
``expire``                  (after buy) nobody pays; the QR times out on the display
``vend_ok``                 (after wait_paid; the default) every item drops
``vend_fail``               the motor jams, nothing drops: VEND_RESULT FAILED, dispensed 0
``vend_partial:N``          only N items drop: VEND_RESULT FAILED, dispensed N
``reboot_at:STAGE``         the board resets mid-vend at approved|started|dispensing|dispensed
``sleep:S``                 wait S seconds
``junk:RATE`` / ``flip:R``  line noise from now on: junk bytes / bit flips per byte
``reboot``                  reset the board now (new session epoch, flash kept)
``unplug[:S]``              pull the cable; with S, plug it back in after S seconds
``replug``                  plug the cable back in
``logs:N``                  send N LOG frames (telemetry load)
==========================  ===================================================================

Named scenarios (``--scenario NAME``) are scripts in ``SCENARIOS``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

from edge_hub.simboard.model import PlanError, PurchaseState, RebootStage, VendPlan


class ScriptError(ValueError):
    """A script that does not parse; names the step and why."""

    def __init__(self, index: int, step: str, why: str) -> None:
        super().__init__(f"script step {index + 1} {step!r}: {why}")
        self.index = index
        self.step = step
        self.why = why


class Ending(enum.StrEnum):
    """How the customer ends a purchase once the QR is on the display."""

    PAY = "wait_paid"
    CANCEL = "cancel"
    EXPIRE = "expire"


@dataclass(frozen=True)
class Buy:
    product: str
    options: tuple[str, ...] = ()
    quantity: int = 1
    ending: Ending = Ending.PAY
    cancel_after_s: float = 0.0
    plan: VendPlan = field(default_factory=VendPlan)

    @property
    def expected(self) -> frozenset[PurchaseState]:
        """Purchase states that mean the scripted story happened."""
        if self.ending is Ending.CANCEL:
            return frozenset({PurchaseState.CANCELLED})
        if self.ending is Ending.EXPIRE:
            return frozenset({PurchaseState.EXPIRED})
        if self.plan.reboot_at is not None:
            return frozenset({PurchaseState.INTERRUPTED})
        if self.plan.dispense is not None and self.plan.dispense < self.quantity:
            return frozenset({PurchaseState.FAILED})
        return frozenset({PurchaseState.VENDED})


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Noise:
    junk_rate: float | None = None
    flip_rate: float | None = None


@dataclass(frozen=True)
class Reboot:
    pass


@dataclass(frozen=True)
class Unplug:
    replug_after_s: float | None = None


@dataclass(frozen=True)
class Replug:
    pass


@dataclass(frozen=True)
class Logs:
    count: int


Step = Buy | Sleep | Noise | Reboot | Unplug | Replug | Logs

SCENARIOS: dict[str, str] = {
    "happy": "buy:cappuccino+extra_shot,wait_paid,vend_ok",
    "cancel": "buy:espresso,cancel:1",
    "expire": "buy:espresso,expire",
    "jam": "buy:espresso,wait_paid,vend_fail",
    "partial": "buy:water*3,wait_paid,vend_partial:1",
    "reboot-mid-vend": "buy:espresso,wait_paid,reboot_at:started",
    "noisy": "junk:0.002,flip:0.001,buy:cappuccino,wait_paid,vend_ok",
    "unplug": "unplug:2,buy:espresso,wait_paid,vend_ok",
    "tour": (
        "buy:cappuccino+extra_shot,wait_paid,vend_ok,sleep:1,buy:espresso,cancel:2,sleep:1,"
        "buy:water*2,wait_paid,vend_partial:1,sleep:1,buy:espresso,expire"
    ),
}


def scenario(name: str) -> list[Step]:
    try:
        return parse(SCENARIOS[name])
    except KeyError:
        known = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"unknown scenario {name!r} (known: {known})") from None


def parse(text: str) -> list[Step]:
    steps: list[Step] = []
    tokens = [t.strip() for t in text.split(",")]
    if not any(tokens):
        raise ScriptError(0, text, "empty script")
    for index, token in enumerate(tokens):
        name, _, arg = token.partition(":")
        try:
            _apply(steps, name, arg)
        except (ValueError, PlanError) as exc:
            if isinstance(exc, ScriptError):
                raise
            raise ScriptError(index, token, str(exc)) from None
    return steps


def _apply(steps: list[Step], name: str, arg: str) -> None:
    last = steps[-1] if steps else None
    if name == "buy":
        steps.append(_parse_buy(arg))
    elif name in ("wait_paid", "cancel", "expire"):
        if not isinstance(last, Buy) or last.ending is not Ending.PAY or last.plan != VendPlan():
            raise ValueError(f"{name} must follow a buy step")
        ending = Ending(name)
        after = _seconds(arg) if (ending is Ending.CANCEL and arg) else 0.0
        if arg and ending is not Ending.CANCEL:
            raise ValueError(f"{name} takes no argument")
        steps[-1] = replace(last, ending=ending, cancel_after_s=after)
    elif name in ("vend_ok", "vend_fail", "vend_partial", "reboot_at"):
        if not isinstance(last, Buy) or last.ending is not Ending.PAY:
            raise ValueError(f"{name} must follow buy (and wait_paid)")
        steps[-1] = replace(last, plan=_parse_plan(name, arg, last.quantity))
    elif name == "sleep":
        steps.append(Sleep(_seconds(arg)))
    elif name == "junk":
        steps.append(Noise(junk_rate=_rate(arg)))
    elif name == "flip":
        steps.append(Noise(flip_rate=_rate(arg)))
    elif name == "reboot":
        _no_arg(name, arg)
        steps.append(Reboot())
    elif name == "unplug":
        steps.append(Unplug(_seconds(arg) if arg else None))
    elif name == "replug":
        _no_arg(name, arg)
        steps.append(Replug())
    elif name == "logs":
        steps.append(Logs(_count(arg, minimum=1)))
    else:
        raise ValueError("unknown step")


def _parse_buy(arg: str) -> Buy:
    if not arg:
        raise ValueError("buy needs a product, e.g. buy:espresso")
    body, star, qty = arg.partition("*")
    product, *options = body.split("+")
    if not product or any(not o for o in options):
        raise ValueError("empty product or option name")
    quantity = _count(qty, minimum=1, maximum=255) if star else 1
    return Buy(product=product, options=tuple(options), quantity=quantity)


def _parse_plan(name: str, arg: str, quantity: int) -> VendPlan:
    if name == "vend_ok":
        _no_arg(name, arg)
        return VendPlan.ok()
    if name == "vend_fail":
        _no_arg(name, arg)
        return VendPlan.jam(0)
    if name == "vend_partial":
        n = _count(arg, minimum=0)
        if n >= quantity:
            raise ValueError(f"vend_partial:{n} must be less than the quantity {quantity}")
        return VendPlan.jam(n)
    try:
        return VendPlan.reboot(RebootStage(arg))
    except ValueError:
        stages = "|".join(s.value for s in RebootStage)
        raise ValueError(f"reboot_at needs one of {stages}") from None


def _seconds(arg: str) -> float:
    try:
        value = float(arg)
    except ValueError:
        raise ValueError(f"expected seconds, got {arg!r}") from None
    if not 0 <= value < 86400:
        raise ValueError(f"seconds out of range: {value}")
    return value


def _rate(arg: str) -> float:
    try:
        value = float(arg)
    except ValueError:
        raise ValueError(f"expected a rate per byte, got {arg!r}") from None
    if not 0 <= value < 1:
        raise ValueError(f"rate must be in [0, 1), got {value}")
    return value


def _count(arg: str, *, minimum: int, maximum: int = 1_000_000) -> int:
    try:
        value = int(arg)
    except ValueError:
        raise ValueError(f"expected a whole number, got {arg!r}") from None
    if not minimum <= value <= maximum:
        raise ValueError(f"{value} is outside {minimum}..{maximum}")
    return value


def _no_arg(name: str, arg: str) -> None:
    if arg:
        raise ValueError(f"{name} takes no argument")
