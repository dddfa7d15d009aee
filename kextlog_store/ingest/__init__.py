"""`kextlog ingest`, one module per concern: the reader threads (readers),
the accounting of every seq (accounting), commits and their ACKs through
outages of the store (committer), upkeep beside the writer (maintenance),
the pipeline that ties them (pipeline), and the daemon around it: settings,
reload, claims and publishing (daemon).  See docs/architecture.md."""
