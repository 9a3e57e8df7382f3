"""Host-side persistent stores: encrypted secrets and pairing requests (the durable workspace lives with the
message log: ``messages.sqlite``)."""

from .pairing import PairingRequest, PairingStore
from .secrets import SecretStore

__all__ = ["PairingRequest", "PairingStore", "SecretStore"]
