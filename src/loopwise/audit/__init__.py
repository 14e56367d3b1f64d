"""The audit log: every change to the store, in order, hash-chained so that tampering shows."""

from loopwise.audit.log import audit_log, verify
from loopwise.store.entities import AuditRecord, AuditVerification

__all__ = ["AuditRecord", "AuditVerification", "audit_log", "verify"]
