from libs.db import run_alembic_env
from services.mapping.models import metadata

run_alembic_env(metadata)
