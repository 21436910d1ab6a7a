"""Workflow orchestration: the embedded Redis Streams runner and the Hatchet workflows."""
