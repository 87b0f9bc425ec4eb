"""edge_hub package."""
