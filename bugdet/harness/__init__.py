"""The engine harness: an automated playtest that plays the part of an engine plugin.

``playtest`` streams the playtest world's frames to a running detection service and joins the
answers with exact ground truth; ``report`` turns that run into the HTML playtest report. It
talks to the service over the wire only (``service.client``), as a studio's harness would.
"""
