"""Rate limits of the API, shared with the pages where they guard the same thing."""
from __future__ import annotations

from flask import current_app, g, request
from flask_limiter.util import get_remote_address
from flask_login import current_user

from ..extensions import limiter


def _staff_key() -> str:
    """Return the cashier's key: the same as the redeem page's, so wrong codes count across both."""
    from ..domain.tokens import actor_for_secret

    who = g.get("api_actor")
    if who is None:  # the limit is checked before the blueprint has authenticated the request
        scheme, _sep, secret = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            who = actor_for_secret(secret.strip())
        elif current_user.is_authenticated:
            who = current_user
    return f"staff:{who.id if who is not None else get_remote_address()}"


# Unknown voucher codes (404) cost one attempt each, per cashier; known codes cost nothing.
wrong_code_limit = limiter.shared_limit(
    lambda: current_app.config["FALLBACK_CODE_LIMIT"],
    scope="voucher-code",
    key_func=_staff_key,
    deduct_when=lambda resp: resp.status_code == 404,
    methods=["POST"],
)
