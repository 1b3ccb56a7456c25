"""Typed SQLAlchemy models, one module per aggregate."""
from .ledger import Account, AccountMonth, Entry, LotUse, PointLot, Transfer, VoucherLot  # noqa: F401
from .org import OrgLevel, OrgUnit  # noqa: F401
from .rewards import Merchant, Reward, Voucher  # noqa: F401
from .rules import Activity, ApprovalVote, NoticeObjection, PointRule, PointRuleVersion, VolunteerYear  # noqa: F401
from .user import RoleGrant, User  # noqa: F401
from .audit import AuditChainHead, AuditRecord  # noqa: F401
from .settlement import PointsRate, SettlementLine, SettlementPayment, SettlementPeriod  # noqa: F401
from .api import ApiToken, IdempotencyKey  # noqa: F401
from .budgets import Budget, BudgetCharge, BudgetFunding  # noqa: F401
from .checkin import CheckinAttendance, CheckinEvent  # noqa: F401
from .app_setting import AppSetting  # noqa: F401
