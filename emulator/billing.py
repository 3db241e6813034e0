"""Per-key credit accounts: reserved at task creation, spent on success, refunded on failure;
a chat call's reservation is settled to what it used.

Invariant: ``balance + reserved + spent`` only changes when the control API sets a balance.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InsufficientCredits

__all__ = ["DEFAULT_CREDITS", "Account", "Ledger"]

#: Starting balance of a key nobody configured: generous, so demos never run dry.
DEFAULT_CREDITS = 1_000_000


@dataclass(slots=True)
class Account:
    key: str
    balance: int
    reserved: int = 0
    spent: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "credits": self.balance,
            "reserved": self.reserved,
            "spent": self.spent,
        }


class Ledger:
    """Balances of every key seen, created on first use with the default balance."""

    def __init__(
        self, default_credits: int = DEFAULT_CREDITS, initial: dict[str, int] | None = None
    ):
        self.default_credits = default_credits
        self.initial = dict(initial or {})
        self.accounts: dict[str, Account] = {}
        #: how many times balances were set, reset or restored: the changes no task or call
        #: makes (the state file's autosaver watches it)
        self.edits = 0

    def account(self, key: str) -> Account:
        acct = self.accounts.get(key)
        if acct is None:
            acct = Account(key, self.initial.get(key, self.default_credits))
            self.accounts[key] = acct
        return acct

    def peek(self, key: str) -> Account:
        """The account of ``key`` as it stands, without opening one: a read never registers
        a key (``--only-known-keys`` keeps refusing it)."""
        acct = self.accounts.get(key)
        if acct is None:
            acct = Account(key, self.initial.get(key, self.default_credits))
        return acct

    def knows(self, key: str) -> bool:
        return key in self.accounts or key in self.initial

    def set_balance(self, key: str, credits: int) -> Account:
        acct = self.account(key)
        acct.balance = credits
        self.edits += 1
        return acct

    def reserve(self, key: str, amount: int) -> None:
        """Hold ``amount`` for a new task, or raise 402 and change nothing."""
        acct = self.accounts.get(key) or self.account(key)  # (the call only for a new key)
        if amount > acct.balance:
            raise InsufficientCredits(
                f"Insufficient credits: this request costs {amount} credits and the key has "
                f"{acct.balance}. Set a balance with PUT /_emulator/keys/{key} "
                '{"credits": N}.'
            )
        acct.balance -= amount
        acct.reserved += amount

    def spend(self, key: str, amount: int) -> None:
        acct = self.accounts.get(key) or self.account(key)
        acct.reserved -= amount
        acct.spent += amount

    def settle(self, key: str, reserved: int, actual: int) -> None:
        """Spend ``actual`` for a call that reserved ``reserved``: the difference goes back to
        the balance, or is charged beyond it (even below zero) when the call cost more."""
        acct = self.accounts.get(key) or self.account(key)
        acct.reserved -= reserved
        acct.spent += actual
        acct.balance += reserved - actual

    def refund(self, key: str, amount: int) -> None:
        acct = self.accounts.get(key) or self.account(key)
        acct.reserved -= amount
        acct.balance += amount

    def reset(self) -> None:
        self.accounts.clear()
        self.edits += 1

    def restore(self, accounts: Iterable[Account]) -> None:
        """Replace every account with ``accounts`` (as a saved state had them)."""
        self.accounts.clear()
        self.accounts.update((a.key, a) for a in accounts)
        self.edits += 1
