"""Submissions from outside the repository: frozen pools with a manifest and pool hash (``pool``), the submission
folder and its method card (``card``), the validator (``validate``), the export of a registered method's selection
as a submission (``export``), the reuse plan and tiers (``recipe``) and the ``submission`` stage (``stage``). The
format and the road to the leaderboard are documented in ``docs/submitting.md``."""
