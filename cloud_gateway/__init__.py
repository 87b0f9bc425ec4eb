"""The cloud gateway: prices orders, asks Razorpay for UPI QR codes and refunds, serves hubs.

Layers (each module's docstring says who may call it):

* `settings` (one declarative table), `errors` (one hierarchy), `logs`, `metrics`, `ids`;
* `db` + `schema`: SQLite, one writer with group commit; `commands` (per-hub queue), `catalog`
  (pricing), `auth` (hub credentials, JWT);
* `orders` (`state`: the transition table; `service`: the only writer of order state),
  `hub_sync` (boards, idempotent hub events);
* `razorpay_client` (the SDK adapter) and `razorpay_pool` (it, in worker processes);
  `sandbox/` (an offline Razorpay);
* `money/` (webhooks, payment ledger, refunds, reconciler) on top of the order service;
* `http`, `middleware`, `routes/`, `openapi`, `keys`, `app` (`create_app`), `cli`.

`edge_hub` is never imported here: the hub and the gateway share only `protocol/`.
"""
