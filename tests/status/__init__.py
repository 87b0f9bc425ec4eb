"""Tests of the technician status page (edge_hub/status)."""
