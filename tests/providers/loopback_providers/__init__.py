"""Loopback stand-ins for the HTTP providers: each implements its provider's documented
request format and signature check, answers as the provider documents, and posts receipts
and replies back to tidings' /hooks endpoints, all over real HTTP on 127.0.0.1."""
