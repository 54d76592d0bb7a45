"""Canary analysis, pure: the metrics a rollout step is judged by and how they are queried."""
