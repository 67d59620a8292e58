"""SMS providers: the protocol, the registry and the shipped implementations."""

from tidings.providers import simulator, smpp
from tidings.providers.base import SmsProvider, get_provider

__all__ = ["SmsProvider", "get_provider", "simulator", "smpp"]
