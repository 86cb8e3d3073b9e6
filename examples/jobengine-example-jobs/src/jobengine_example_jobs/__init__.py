"""Example job types added from outside the jobengine repository."""
