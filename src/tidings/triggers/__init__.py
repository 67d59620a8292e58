"""Lifecycle and event triggers: standing rules that send a member a message by themselves."""
