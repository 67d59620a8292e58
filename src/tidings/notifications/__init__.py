"""Transactional messages for integrators, verification codes, message preferences and the
large-purchase notice."""
