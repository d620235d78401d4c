"""Pull requests: branches, checks (validation + plan preview), merge rules, merge, revert.

``branches``, ``merge`` and ``revert`` are git work on pygit2 (no PostgreSQL);
``checks`` computes a pull request's checks from a snapshot and observed
state; ``service`` is the thin async layer the API calls, which reads and
writes rows (``engine.db.pulls``), runs the git work in threads and queues
reconciles after a merge.
"""
