"""The remote backend's tokens and audit log: ``Store`` over the REST API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopwise.errors import AuthenticationError, StoreError, error_from_dict
from loopwise.store.checks import INVALID_TOKEN
from loopwise.store.codec import decode
from loopwise.store.entities import AuditRecord, AuditVerification, Role, Token
from loopwise.store.remote.client import API_PREFIX, RemoteCore, segment

__all__ = ["RemoteAccess"]


def _token(d: Mapping[str, Any]) -> Token:
    return decode(Token, d)


class RemoteAccess(RemoteCore):
    # -- access ---------------------------------------------------------------------------------
    def blob_digests(self, project: str) -> set[str]:
        raise StoreError(
            "Which blobs a project may read is decided by the server that holds them.",
        )

    # -- tokens and audit -------------------------------------------------------------------------
    def create_token(
        self, role: Role | str, project: str | None = None, name: str = ""
    ) -> tuple[Token, str]:
        body = {"role": str(role), "project": project, "name": name}
        result = self._call("POST", "/tokens", body)
        return _token(result["token"]), str(result["secret"])

    def list_tokens(self, include_revoked: bool = False) -> list[Token]:
        rows = self._call("GET", "/tokens", params={"include_revoked": include_revoked})
        return [_token(t) for t in rows]

    def revoke_token(self, token_id: str) -> Token:
        return _token(self._call("DELETE", f"/tokens/{segment(token_id)}"))

    def authenticate(self, secret: str) -> Token:
        """Ask the server whose token ``secret`` is (``GET /whoami`` with it)."""
        if not isinstance(secret, str) or not secret or not secret.isprintable():
            raise AuthenticationError(INVALID_TOKEN)
        response = self._client.http.get(
            f"{API_PREFIX}/whoami", headers={"Authorization": f"Bearer {secret}"}
        )
        if response.status_code == 401:
            raise error_from_dict(response.json(), 401)
        token = self._client.result(response)["token"]
        if token is None:
            raise AuthenticationError("The server did not identify a token.")
        return _token(token)

    def audit_log(
        self, since_ms: int | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditRecord]:
        params: dict[str, Any] = {"after_seq": after_seq, "limit": limit}
        if since_ms is not None:
            params["since_ms"] = since_ms
        return [decode(AuditRecord, r) for r in self._call("GET", "/audit", params=params)]

    def verify_audit(self) -> AuditVerification:
        return decode(AuditVerification, self._call("GET", "/audit/verify"))
