"""Errors meant for the person at the terminal: printed as one line, exit status 2."""


class UserError(Exception):
    """Bad input the user can fix (a date, a folder, a spec); the message says how."""
