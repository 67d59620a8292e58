"""Replies: members' texts back to us, stored and linked to the member and the message."""
