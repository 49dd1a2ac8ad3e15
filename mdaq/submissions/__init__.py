"""Submissions from outside the repository: frozen pools with a manifest and pool hash (``pool``), the submission
folder and its method card (``card``), the validator (``validate``) and the export of a registered method's
selection as a submission (``export``). The format is documented in ``docs/submitting.md``."""
