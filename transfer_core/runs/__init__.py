"""The run store on disk: one folder per run, written atomically, readable after any crash."""
