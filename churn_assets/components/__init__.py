"""Components: the repeated shapes of the project, instantiated from YAML under ``defs/``."""

from churn_assets.components.dataset import ChurnDataset

__all__ = ["ChurnDataset"]
