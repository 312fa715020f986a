"""Online scoring: the FastAPI service over the registry's champions and the online store.

``create_app(ServingConfig(...))`` builds the app; ``python -m churn_assets.serving`` runs it
with uvicorn from ``CHURN_*`` environment variables (see ``docs/deploy.md``).
"""

from churn_assets.serving.app import create_app
from churn_assets.serving.config import ServingConfig

__all__ = ["ServingConfig", "create_app"]
