"""The nightly job: ingest new captures, retrain, compare with the champion, publish. See :mod:`bugdet.nightly.runner`."""
