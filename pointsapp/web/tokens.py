"""The page where anyone with a role makes and revokes their personal API tokens."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from ..domain import tokens
from ..domain.errors import PointsError
from ..extensions import db
from ..forms import ROLE_LABELS, show_domain_error
from ..models.user import ROLE_MERCHANT_STAFF

bp = Blueprint("tokens", __name__, url_prefix="/account/tokens")


class TokenForm(FlaskForm):
    name = StringField(_l("Name (what the token is for)"), validators=[DataRequired(), Length(max=100)])
    role = SelectField(_l("Acts as"), default="")


def _form() -> TokenForm:
    form = TokenForm()
    labels = {**ROLE_LABELS, ROLE_MERCHANT_STAFF: _l("Cashier")}
    roles = sorted({g.role for g in current_user.roles})
    form.role.choices = [SelectChoice("", _("All my roles"))] + [SelectChoice(r, labels.get(r, r)) for r in roles]
    return form


def _page(form: TokenForm, secret: str | None = None, status: int = 200):
    me = current_user._get_current_object()
    return render_template("tokens/list.html", form=form, tokens=tokens.tokens_of(me), secret=secret), status


@bp.route("/", methods=["GET", "POST"])
@login_required
def index():
    """List my tokens; create one and show its secret this once."""
    form = _form()
    if form.validate_on_submit():
        try:
            _token, secret = tokens.create_token(
                current_user._get_current_object(), name=form.name.data, role=form.role.data or None
            )
            db.session.commit()
        except PointsError as exc:
            db.session.rollback()
            return _page(form, status=show_domain_error(form, exc))
        return _page(_form(), secret=secret, status=201)
    return _page(form, status=422 if form.errors else 200)


@bp.route("/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke(token_id: int):
    """Revoke one of my tokens."""
    token = tokens.revoke_token(current_user._get_current_object(), token_id)
    db.session.commit()
    flash(_("The token %(name)s was revoked; programs using it are refused from now on.", name=token.name), "ok")
    return redirect(url_for(".index"))
