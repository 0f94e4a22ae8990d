from libs.db import run_alembic_env
from services.audit.models import metadata

run_alembic_env(metadata)
