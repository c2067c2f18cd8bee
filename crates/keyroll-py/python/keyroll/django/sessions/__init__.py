"""Session engines: drop-ins for Django's of the same name that re-sign a
session verified under a non-primary key on the read that found it."""
