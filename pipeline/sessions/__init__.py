"""One module per command session: parse the options, load the settings, call the job, report.
pipeline/catalog.py names each session's module; the function there bears the session's name."""
