"""One module per command session: parse the options, load the settings, call the job, report.
Which function serves which session is declared in pipeline/catalog.py."""
