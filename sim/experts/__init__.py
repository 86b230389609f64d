"""Scripted experts that use privileged simulator state and label each step with its subtask."""
