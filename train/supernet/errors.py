"""The errors of the supernet estimator a user can fix (one line, exit 2)."""
from core.errors import UserError


class SupernetError(UserError):
    """A supernet run the user must fix: a checkpoint of other settings, a study without a supernet, ..."""
