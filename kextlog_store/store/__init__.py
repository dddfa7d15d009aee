"""The store, one module per concern: where the database lives (location),
its schema (schema), how it is opened (engine), its errors in kextlog's
words (errors), the daemon's writes (writer, pid_index), and its upkeep:
migrations (migrate), retention and `kextlog db check` (check).  Reading it
is query/'s; nothing here imports the CLI."""
