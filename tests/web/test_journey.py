"""The whole loop through the pages only: claim, approve, redeem, scan, confirm, and once only."""
from __future__ import annotations

import re

from tests.factories import yesterday
from tests.web.conftest import hidden_inputs, page_text, use_english


def test_volunteer_claims_staff_approves_volunteer_redeems_cashier_confirms_once(street, client, login, auth, check_ledger):
    # The volunteer claims the building meeting they attended (10 points).
    use_english(client)
    login("vol_a")
    form = client.get("/volunteer/claim")
    resp = client.post(
        "/volunteer/claim",
        data={**hidden_inputs(form), "rule_id": street.meeting.id, "activity_date": yesterday().isoformat(), "note": "1号楼楼栋会议"},
    )
    assert resp.status_code == 302
    claim_id = int(re.search(r'id="claim-(\d+)"', client.get("/volunteer/claims").get_data(as_text=True)).group(1))

    # Their grid's staff approves it from the queue.
    login("staff_a")
    assert "1号楼楼栋会议" in page_text(client.get("/staff/"))
    assert auth.post(f"/staff/claims/{claim_id}/approve").status_code == 302

    # The volunteer sees 10 points and redeems a bag of rice (10 points).
    login("vol_a")
    assert re.search(r'id="available">10<', client.get("/volunteer/").get_data(as_text=True))
    resp = auth.post(f"/volunteer/rewards/{street.rice.id}/redeem")
    assert resp.status_code == 302
    voucher_page = client.get(resp.headers["Location"])
    code = re.search(r'id="fallback-code">([0-9A-Z]{4}-[0-9A-Z]{4})<', voucher_page.get_data(as_text=True)).group(1)
    assert re.search(r'id="available">0<', client.get("/volunteer/").get_data(as_text=True))
    assert re.search(r'id="held">10<', client.get("/volunteer/").get_data(as_text=True))

    # The cashier types the code, sees a valid voucher, confirms.
    login("cashier")
    lookup = auth.post("/merchant/lookup", {"code": code})
    assert lookup.status_code == 200 and "大米 5kg" in page_text(lookup) and "张*华" in page_text(lookup)
    confirm = client.post("/merchant/confirm", data=hidden_inputs(lookup) | {"code": code})
    assert confirm.status_code == 302
    assert "Redeemed: hand over 大米 5kg" in page_text(client.get(confirm.headers["Location"]))

    # The same code again at the same till is refused, saying the cashier redeemed it just now.
    again = auth.post("/merchant/confirm", {"code": code})
    assert again.status_code == 409
    assert "Already redeemed by you" in page_text(again) and "Do not redeem it again." in page_text(again)

    # The volunteer's page tells the same story.
    login("vol_a")
    home = client.get("/volunteer/").get_data(as_text=True)
    assert re.search(r'id="available">0<', home) and re.search(r'id="held">0<', home) and re.search(r'id="earned">10<', home)
    assert "Redeemed" in page_text(client.get("/volunteer/vouchers"))
    history = page_text(client.get("/volunteer/history"))
    assert "Redeemed 大米 5kg at 友谊慈善超市 −10 0" in history
    assert f"Attend a meeting on {yesterday().isoformat()} +10 10" in history
    check_ledger()
