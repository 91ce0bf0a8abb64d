"""Who made a request and what they may do: the access controllers (``ocistore.server.auth``)
produce an ``Identity``, the request (``ocistore.server.http``) carries it. Apart from both so
that neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Access", "Identity"]


@dataclass(frozen=True)
class Access:
    """One grant a request needs: ``repository:<name>:pull``, ``registry:catalog:*``."""

    type: str
    name: str
    action: str

    @property
    def scope(self) -> str:
        return f"{self.type}:{self.name}:{self.action}"


@dataclass(frozen=True)
class Identity:
    """Who made a request and what they may do (``None`` grants: everything)."""

    subject: str
    grants: frozenset[tuple[str, str, str]] | None = None
    #: When the credential stops being valid (a token's ``exp``), as a Unix time; None: no limit.
    expires_at: float | None = None

    def allows(self, access: Access) -> bool:
        if self.grants is None:
            return True
        return (access.type, access.name, access.action) in self.grants or (
            access.type,
            access.name,
            "*",
        ) in self.grants
