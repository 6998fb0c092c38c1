"""Build, push and snapshot the coding-agent sandbox image."""
