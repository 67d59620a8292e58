"""Campaigns: audiences, variants, holdout, schedules and staged rollout."""
