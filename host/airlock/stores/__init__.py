"""Host-side persistent stores: encrypted secrets, pairing requests, durable channel workspace."""

from .pairing import PairingRequest, PairingStore
from .secrets import SecretStore
from .workspace import DurableWorkspaceStore

__all__ = ["DurableWorkspaceStore", "PairingRequest", "PairingStore", "SecretStore"]
