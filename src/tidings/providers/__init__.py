"""SMS providers: the protocol, the registry and the shipped implementations."""

from tidings.providers import aliyun, http, simulator, smpp, tencent, twilio
from tidings.providers.base import SmsProvider, get_provider

__all__ = [
    "SmsProvider",
    "aliyun",
    "get_provider",
    "http",
    "simulator",
    "smpp",
    "tencent",
    "twilio",
]
