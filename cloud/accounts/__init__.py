"""Staff accounts of the alert service: users, argon2 passwords, session tokens, roles, care teams,
login rate limit (growing delays, admin unlock).

- :mod:`cloud.accounts.passwords`: :class:`PasswordHasher` (argon2id via argon2-cffi, off the event loop);
- :mod:`cloud.accounts.tokens`: opaque bearer tokens; only their SHA-256 is stored;
- :mod:`cloud.accounts.roles`: :class:`Role` and the rules for user names and passwords;
- :mod:`cloud.accounts.ratelimit`: :class:`LoginRateLimiter`, growing delays per user name and address,
  failures counted in the database so that every API process enforces one limit;
- :mod:`cloud.accounts.service`: :class:`Accounts`, sign-in, sign-out, token check, user management.
"""

from cloud.accounts.passwords import PasswordHasher
from cloud.accounts.ratelimit import LoginRateLimiter
from cloud.accounts.roles import AccountError, Role, validate_password, validate_team, validate_username
from cloud.accounts.service import Accounts, BadCredentials, LoginResult, RateLimited, UserExists
from cloud.accounts.tokens import hash_token, new_token

__all__ = [
    "AccountError", "Accounts", "BadCredentials", "LoginRateLimiter", "LoginResult", "PasswordHasher", "RateLimited",
    "Role", "UserExists", "hash_token", "new_token", "validate_password", "validate_team",
    "validate_username",
]
