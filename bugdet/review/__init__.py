"""The review app: QA testers refine masks and confirm detector flags in a browser.

``bugdet review --project DIR`` serves :func:`bugdet.review.app.create_app`. Every decision it
takes is written to the same SQLite store the CLI uses (:mod:`bugdet.refine.decisions`, the masks
table, :mod:`bugdet.store.labels`) and committed before the HTTP response is sent, so a response
means the decision is on disk. Detector flags from playtests live in :mod:`bugdet.review.flags`.
"""
